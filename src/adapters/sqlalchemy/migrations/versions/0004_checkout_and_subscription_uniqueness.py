"""One plan subscription per provider subscription id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

``plan_subscriptions.provider_subscription_id`` becomes UNIQUE (NULLs allowed: a subscription the
provider has not named yet), so the database itself refuses a second subscription for one
provider subscription, whatever a missed lock lets through (issue 14, ADR 0009).

A database that already holds duplicates (concurrent checkout completions before this release
doubled subscriptions and their grants) cannot take the index: the upgrade stops and names them,
since which copy to keep, and which grants to reverse, is a decision about money for a person.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_plan_subscriptions_provider_subscription_id"


def upgrade() -> None:
    if not context.is_offline_mode():  # rendering DDL only (``--sql``): there are no rows to look at
        _refuse_duplicates()
    with op.batch_alter_table("plan_subscriptions") as batch:
        batch.drop_index(INDEX)
        batch.create_index(INDEX, ["provider_subscription_id"], unique=True)


def _refuse_duplicates() -> None:
    duplicated = op.get_bind().execute(sa.text(
        "SELECT provider_subscription_id, COUNT(*) FROM plan_subscriptions "
        "WHERE provider_subscription_id IS NOT NULL GROUP BY provider_subscription_id HAVING COUNT(*) > 1 "
        "ORDER BY provider_subscription_id")).all()
    if duplicated:
        listed = ", ".join(f"{provider_id} ({count} rows)" for provider_id, count in duplicated[:20])
        raise RuntimeError(
            "plan_subscriptions holds several rows for one provider subscription id, which revision 0004 "
            f"makes unique: {listed}. Keep one subscription per id (reverse the extra grants with "
            "compensating ledger entries), then migrate again.")


def downgrade() -> None:
    with op.batch_alter_table("plan_subscriptions") as batch:
        batch.drop_index(INDEX)
        batch.create_index(INDEX, ["provider_subscription_id"], unique=False)
