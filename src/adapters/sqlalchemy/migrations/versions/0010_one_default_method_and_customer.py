"""One default payment method per organization; one organization per provider customer.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

A partial unique index on ``payment_methods (organization_id) WHERE is_default`` (PostgreSQL and
SQLite both take it), so the database itself refuses a second default whatever a missed lock
lets through (ADR 0009). Concurrent set-default requests before this release could leave two:
the upgrade keeps the newest default of each organization and clears the others' flag (which
method a card is charged with is not money moved; nothing else changes).

``organizations.provider_customer_id`` becomes UNIQUE (NULLs allowed): the provider's events name
the customer, and one customer must lead to one organization. A database where two organizations
share one cannot take the index: the upgrade stops and names them (which organization the
customer's payments belong to is a decision for a person).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_payment_methods_default"
CUSTOMER_INDEX = "ix_organizations_provider_customer_id"


def upgrade() -> None:
    if not context.is_offline_mode():  # rendering DDL only (``--sql``): there are no rows to look at
        _refuse_shared_customers()
        _keep_one_default()
    where = sa.text("is_default")
    op.create_index(INDEX, "payment_methods", ["organization_id"], unique=True, postgresql_where=where,
                    sqlite_where=where)
    with op.batch_alter_table("organizations") as batch:
        batch.drop_index(CUSTOMER_INDEX)
        batch.create_index(CUSTOMER_INDEX, ["provider_customer_id"], unique=True)


def _refuse_shared_customers() -> None:
    shared = op.get_bind().execute(sa.text(
        "SELECT provider_customer_id, COUNT(*) FROM organizations WHERE provider_customer_id IS NOT NULL "
        "GROUP BY provider_customer_id HAVING COUNT(*) > 1 ORDER BY provider_customer_id")).all()
    if shared:
        listed = ", ".join(f"{customer} ({count} organizations)" for customer, count in shared[:20])
        raise RuntimeError(
            "several organizations share one provider customer, which revision 0009 makes unique: "
            f"{listed}. Give each organization its own customer (or none), then migrate again.")


def _keep_one_default() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, organization_id FROM payment_methods WHERE is_default "
        "ORDER BY organization_id, created_at DESC, id")).all()
    seen: set[object] = set()
    for method_id, organization_id in rows:
        if organization_id in seen:
            bind.execute(sa.text("UPDATE payment_methods SET is_default = :no WHERE id = :id"),
                         {"no": False, "id": method_id})
        seen.add(organization_id)


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_index(CUSTOMER_INDEX)
        batch.create_index(CUSTOMER_INDEX, ["provider_customer_id"], unique=False)
    op.drop_index(INDEX, table_name="payment_methods")
