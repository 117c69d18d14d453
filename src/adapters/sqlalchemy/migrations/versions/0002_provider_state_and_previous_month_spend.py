"""Plan subscriptions remember when the provider sent the state last applied; wallets keep the
previous month's spend.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

* ``plan_subscriptions.provider_state_at`` (the applied event's ``created``): a late event about an
  older state is recognised and ignored (ADR 0008).
* ``wallets.spent_previous_month_micros``: a debit that started before the month turned and commits
  after the new month's first one is checked against, and booked on, its own month's cap. Existing
  wallets start it at 0 (the spend of the month before their last debit's is not recorded anywhere
  else); the column then has no default, like every other counter.
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
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("spent_previous_month_micros", sa.BigInteger(), nullable=False,
                                   server_default=sa.text("0")))
    with op.batch_alter_table("wallets") as batch:
        batch.alter_column("spent_previous_month_micros", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.drop_column("spent_previous_month_micros")
    with op.batch_alter_table("plan_subscriptions") as batch:
        batch.drop_column("provider_state_at")
