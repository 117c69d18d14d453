"""Holds for calls of unknown cost (issue 21, ADR 0011).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

A ``holds`` table (one row per hold, closed by a conditional update on ``status = 'active'``), the
wallet's ``held_micros`` (the sum of the active holds, which the spend guard counts as spent
against every cap) and the organization's rule for settling above a hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("held_micros", sa.BigInteger(), nullable=False, server_default="0",
                                   comment="sum of the active holds' amounts (ADR 0011)"))
        batch.create_check_constraint(op.f("ck_wallets_held_micros_not_negative"), "held_micros >= 0")
    with op.batch_alter_table("billing_settings") as batch:
        batch.add_column(sa.Column("hold_overrun", sa.Text(), nullable=False, server_default="cap_at_hold"))
    op.create_table(
        "holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("max_quantity", sa.BigInteger(), nullable=True),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("settled_quantity", sa.BigInteger(), nullable=True),
        sa.Column("charged_micros", sa.BigInteger(), nullable=False),
        sa.Column("uncharged_micros", sa.BigInteger(), nullable=False),
        sa.Column("overrun", sa.Text(), nullable=True),
        sa.Column("overrun_denial", sa.Text(), nullable=True),
        sa.CheckConstraint("amount_micros > 0", name=op.f("ck_holds_hold_amount_positive")),
        sa.CheckConstraint("charged_micros >= 0", name=op.f("ck_holds_hold_charge_not_negative")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_holds_organization_id_organizations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    op.create_index("ix_holds_organization_id_status", "holds", ["organization_id", "status"])
    op.create_index("ix_holds_active_expiry", "holds", ["expires_at"], sqlite_where=sa.text("status = 'active'"),
                    postgresql_where=sa.text("status = 'active'"))


def downgrade() -> None:
    op.drop_index("ix_holds_active_expiry", table_name="holds")
    op.drop_index("ix_holds_organization_id_status", table_name="holds")
    op.drop_table("holds")
    with op.batch_alter_table("billing_settings") as batch:
        batch.drop_column("hold_overrun")
    with op.batch_alter_table("wallets") as batch:
        batch.drop_constraint(op.f("ck_wallets_held_micros_not_negative"), type_="check")
        batch.drop_column("held_micros")
