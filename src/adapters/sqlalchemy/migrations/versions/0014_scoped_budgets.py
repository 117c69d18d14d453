"""Nested budgets per project and per API token (issue 21, ADR 0017).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05

A ``spend_budgets`` table (one row per organization, scope and scope id: the caps, the scope's
UTC day/month spend counters and what its active holds reserve), the wallet's ``scoped_budgets``
count (the usage path reads budgets only when it is above zero) and the API token that reported a
usage event or placed a hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("scoped_budgets", sa.Integer(), nullable=False, server_default="0",
                                   comment="how many spend_budgets rows the organization has (ADR 0017)"))
        batch.create_check_constraint(op.f("ck_wallets_scoped_budgets_not_negative"), "scoped_budgets >= 0")
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("token_id", sa.Uuid(), nullable=True,
                                   comment="the API token that reported it (ADR 0017)"))
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("token_id", sa.Uuid(), nullable=True))
    op.create_table(
        "spend_budgets",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False, comment="project or token (ADR 0017)"),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("daily_micros", sa.BigInteger(), nullable=True),
        sa.Column("monthly_micros", sa.BigInteger(), nullable=True),
        sa.Column("spend_day", sa.Date(), nullable=True),
        sa.Column("spent_today_micros", sa.BigInteger(), nullable=False),
        sa.Column("spent_yesterday_micros", sa.BigInteger(), nullable=False),
        sa.Column("spend_month", sa.String(length=7), nullable=True),
        sa.Column("spent_month_micros", sa.BigInteger(), nullable=False),
        sa.Column("spent_previous_month_micros", sa.BigInteger(), nullable=False),
        sa.Column("held_micros", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("scope IN ('project', 'token')", name=op.f("ck_spend_budgets_budget_scope_known")),
        sa.CheckConstraint("held_micros >= 0", name=op.f("ck_spend_budgets_budget_held_not_negative")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_spend_budgets_organization_id_organizations")),
        sa.PrimaryKeyConstraint("organization_id", "scope", "scope_id", name=op.f("pk_spend_budgets")),
    )


def downgrade() -> None:
    op.drop_table("spend_budgets")
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("token_id")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("token_id")
    with op.batch_alter_table("wallets") as batch:
        batch.drop_constraint(op.f("ck_wallets_scoped_budgets_not_negative"), type_="check")
        batch.drop_column("scoped_budgets")
