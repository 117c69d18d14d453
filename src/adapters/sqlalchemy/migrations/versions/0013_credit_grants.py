"""Credit grants as a projection of the ledger (issue 21, ADR 0016).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

``grants`` (one row per credit: source, amount, remaining, expiry, priority, the transactions that
created and expired it), ``grant_movements`` (what each ledger transaction did to which grant),
``grant_cursors`` (per organization: the last allocated ledger sequence and the usage no grant
paid) and ``grant_terms`` (source, expiry and priority of a credit posted with non-default terms,
by its ledger idempotency key). Existing ledgers are allocated by the first catch-up.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQUENCE64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OPEN = "expired_by IS NULL AND remaining_micros > 0 AND expires_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("remaining_micros", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True, comment="the ledger transaction that created the grant"),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("expired_by", sa.Uuid(), nullable=True,
                  comment="the grant_expiry transaction that took its remaining"),
        sa.CheckConstraint("amount_micros > 0", name=op.f("ck_grants_grant_amount_positive")),
        sa.CheckConstraint("remaining_micros >= 0 AND remaining_micros <= amount_micros",
                           name=op.f("ck_grants_grant_remaining_in_range")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_grants_organization_id_organizations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    op.create_index("ix_grants_organization_id_created_at", "grants", ["organization_id", "created_at"])
    op.create_index("ix_grants_open_expiry", "grants", ["expires_at"], sqlite_where=sa.text(_OPEN),
                    postgresql_where=sa.text(_OPEN))
    op.create_table(
        "grant_movements",
        sa.Column("seq", SEQUENCE64, autoincrement=True, nullable=False, comment="allocation order"),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=True, comment="NULL: the credit line (usage no grant paid)"),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_grant_movements_organization_id_organizations")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_grant_movements")),
    )
    op.create_index("ix_grant_movements_organization_id_transaction_id", "grant_movements",
                    ["organization_id", "transaction_id"])
    op.create_table(
        "grant_cursors",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False, comment="last allocated ledger_transactions.seq"),
        sa.Column("uncovered_micros", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("uncovered_micros >= 0", name=op.f("ck_grant_cursors_grant_uncovered_not_negative")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_grant_cursors_organization_id_organizations")),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_grant_cursors")),
    )
    op.create_table(
        "grant_terms",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False, comment="the crediting ledger transaction's key"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_grant_terms_organization_id_organizations")),
        sa.PrimaryKeyConstraint("organization_id", "idempotency_key", name=op.f("pk_grant_terms")),
    )


def downgrade() -> None:
    op.drop_table("grant_terms")
    op.drop_table("grant_cursors")
    op.drop_index("ix_grant_movements_organization_id_transaction_id", table_name="grant_movements")
    op.drop_table("grant_movements")
    op.drop_index("ix_grants_open_expiry", table_name="grants")
    op.drop_index("ix_grants_organization_id_created_at", table_name="grants")
    op.drop_table("grants")
