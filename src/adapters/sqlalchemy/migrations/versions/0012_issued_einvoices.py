"""The e-invoice terms of each legal invoice as it was issued.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

``GET …/invoices/{id}/xml`` served XML rebuilt from the organization's current address and tax
ids, so a buyer who moved after the invoice was issued got a document that differs from the legal
one. The terms now are kept when the legal invoice is issued (one row per invoice, written once)
and the XML is rendered from them. Invoices issued before this migration have no row: for them
the route still builds the terms from current data.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issued_einvoices",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False,
                  comment="JSON: the EN 16931 terms as the legal invoice was issued"),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_issued_einvoices_invoice_id_invoices")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_issued_einvoices_organization_id_organizations")),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_issued_einvoices")),
    )


def downgrade() -> None:
    op.drop_table("issued_einvoices")
