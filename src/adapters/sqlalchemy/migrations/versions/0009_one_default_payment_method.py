"""One default payment method per organization.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

A partial unique index on ``payment_methods (organization_id) WHERE is_default`` (PostgreSQL and
SQLite both take it), so the database itself refuses a second default whatever a missed lock
lets through (ADR 0009). Concurrent set-default requests before this release could leave two:
the upgrade keeps the newest default of each organization and clears the others' flag (which
method a card is charged with is not money moved; nothing else changes).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_payment_methods_default"


def upgrade() -> None:
    if not context.is_offline_mode():  # rendering DDL only (``--sql``): there are no rows to look at
        _keep_one_default()
    where = sa.text("is_default")
    op.create_index(INDEX, "payment_methods", ["organization_id"], unique=True, postgresql_where=where,
                    sqlite_where=where)


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
    op.drop_index(INDEX, table_name="payment_methods")
