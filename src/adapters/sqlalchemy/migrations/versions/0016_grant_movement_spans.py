"""Grant movements are stored as spans of the ledger: a run of single-grant draws is one row.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

ADR 0016 (addendum of the fourteenth pass of issue 16). ``grant_movements`` gains
``first_sequence`` and ``last_sequence``, the ledger append sequences a row covers. A row that covers
one sequence is that transaction's movement on one grant, as every row was before this revision.
A row that covers more is a run: consecutive transactions of the organization that each drew
their whole balance delta from one grant, summed. Existing rows are each one transaction's: both
columns get its ``seq``. A row whose transaction is not in the ledger gets 0, so reconcile still
reports it. Reads go by sequence now: the index on ``(organization_id, transaction_id)`` makes way
for one on ``(organization_id, last_sequence)``. A downgrade writes each run back as one row per
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELTA = ("(SELECT coalesce(sum(p.amount_micros), 0) FROM ledger_postings p WHERE p.transaction_seq = t.seq "
          "AND p.account IN ('unbilled_usage', 'wallet'))")
"""A transaction's balance delta (``billing_core.ledger.BALANCE_ACCOUNTS``, as of this revision)."""
_SEQ_OF_TRANSACTION = ("coalesce((SELECT t.seq FROM ledger_transactions t "
                       "WHERE t.id = grant_movements.transaction_id), 0)")


def upgrade() -> None:
    with op.batch_alter_table("grant_movements") as batch:
        batch.add_column(sa.Column("first_sequence", sa.BigInteger(), nullable=True,
                                   comment="ledger_transactions.seq the span starts at"))
        batch.add_column(sa.Column("last_sequence", sa.BigInteger(), nullable=True,
                                   comment="where it ends: greater for a run of draws from one grant"))
    op.execute(f"UPDATE grant_movements SET first_sequence = {_SEQ_OF_TRANSACTION}")  # noqa: S608  # nosec B608
    op.execute("UPDATE grant_movements SET last_sequence = first_sequence")
    op.drop_index("ix_grant_movements_organization_id_transaction_id", table_name="grant_movements")
    with op.batch_alter_table("grant_movements") as batch:
        batch.alter_column("first_sequence", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("last_sequence", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("transaction_id", existing_type=sa.Uuid(), existing_nullable=False,
                           comment="the (first) transaction the span covers")
        batch.create_check_constraint(op.f("ck_grant_movements_grant_movement_span_in_order"),
                                      "first_sequence <= last_sequence")
    op.create_index("ix_grant_movements_organization_id_last_sequence", "grant_movements",
                    ["organization_id", "last_sequence"])


def downgrade() -> None:
    # Each run back into one row per transaction: a transaction's movement in a run is its balance
    # delta, summed from its postings (a transaction of delta 0 inside a run had none).
    op.execute(  # constants only
        "INSERT INTO grant_movements (organization_id, transaction_id, grant_id, amount_micros, first_sequence, "  # noqa: S608  # nosec B608
        "last_sequence) SELECT organization_id, transaction_id, grant_id, delta, seq, seq FROM ("
        f"SELECT m.organization_id, t.id AS transaction_id, m.grant_id, {_DELTA} AS delta, t.seq, m.seq AS run "
        "FROM grant_movements m JOIN ledger_transactions t ON t.organization_id = m.organization_id "
        "AND t.seq BETWEEN m.first_sequence AND m.last_sequence WHERE m.first_sequence < m.last_sequence"
        ") AS moved WHERE delta <> 0 ORDER BY run, seq")
    op.execute("DELETE FROM grant_movements WHERE first_sequence < last_sequence")
    op.drop_index("ix_grant_movements_organization_id_last_sequence", table_name="grant_movements")
    with op.batch_alter_table("grant_movements") as batch:
        batch.drop_constraint(op.f("ck_grant_movements_grant_movement_span_in_order"), type_="check")
        batch.alter_column("transaction_id", existing_type=sa.Uuid(), existing_nullable=False, comment=None)
        batch.drop_column("last_sequence")
        batch.drop_column("first_sequence")
    op.create_index("ix_grant_movements_organization_id_transaction_id", "grant_movements",
                    ["organization_id", "transaction_id"])
