"""Plan subscriptions remember that they end with the current period (cancelled in the billing portal).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

``customer.subscription.updated`` carries ``cancel_at_period_end``; the subscription summary shows it.
Existing rows are not ending (false).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan_subscriptions") as batch:
        batch.add_column(sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("plan_subscriptions") as batch:
        batch.drop_column("cancel_at_period_end")
