"""Plan subscriptions remember when the provider sent the state last applied.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Provider events arrive out of order; ``provider_state_at`` (the applied event's ``created``) lets a
late event about an older state be recognised and ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan_subscriptions") as batch:
        batch.add_column(sa.Column("provider_state_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan_subscriptions") as batch:
        batch.drop_column("provider_state_at")
