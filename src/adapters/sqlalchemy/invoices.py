"""Invoices, unique per organization and period start, and the gapless legal number counters."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import invoice_counters, invoices, issued_einvoices
from billing_core.einvoice import EInvoice
from billing_core.errors import DuplicateInvoice, NotFound
from billing_core.invoices import Invoice
from billing_core.ports import Page

_i, _n, _e = invoices.c, invoice_counters.c, issued_einvoices.c


class SqlAlchemyInvoiceRepository(SqlAlchemyRepository):
    def add(self, invoice: Invoice) -> None:
        with self._guarded():
            result = self._execute(
                self._insert(invoices).on_conflict_do_nothing(index_elements=["organization_id", "period_start"]),
                rows.invoice_values(invoice))
        if result.rowcount == 0:
            raise DuplicateInvoice("an invoice for this period exists")

    def get(self, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
        row = self._execute(select(invoices).where(_i.id == invoice_id, _i.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("invoice", invoice_id)
        return rows.invoice_from_row(row)

    def for_period(self, organization_id: uuid.UUID, period_start: datetime) -> Invoice | None:
        row = self._execute(select(invoices).where(_i.organization_id == organization_id,
                                                   _i.period_start == period_start)).first()
        return None if row is None else rows.invoice_from_row(row)

    def organizations_for_period(self, period_start: datetime) -> list[uuid.UUID]:
        found = list(self._execute(select(_i.organization_id).where(_i.period_start == period_start)).scalars())
        return sorted(found, key=str)

    def list(self, organization_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None) -> Page[Invoice]:
        query = (select(invoices).where(_i.organization_id == organization_id)
                 .order_by(_i.period_start.desc(), _i.id.desc()))
        return self._page(query, rows.invoice_from_row, limit, cursor)

    def save(self, invoice: Invoice) -> None:
        values = rows.invoice_values(invoice)
        del values["id"], values["organization_id"]
        with self._guarded():
            result = self._execute(update(invoices).where(
                _i.id == invoice.id, _i.organization_id == invoice.organization_id).values(values))
        if result.rowcount == 0:
            raise NotFound("invoice", invoice.id)

    def record_einvoice(self, organization_id: uuid.UUID, invoice_id: uuid.UUID, terms: EInvoice) -> bool:
        self.get(organization_id, invoice_id)
        with self._guarded():
            result = self._execute(
                self._insert(issued_einvoices).on_conflict_do_nothing(index_elements=["invoice_id"]),
                {"invoice_id": invoice_id, "organization_id": organization_id,
                 "terms": msgspec.json.encode(terms).decode()})
        return bool(result.rowcount)

    def issued_einvoice(self, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> EInvoice | None:
        terms = self._execute(select(_e.terms).where(_e.invoice_id == invoice_id,
                                                     _e.organization_id == organization_id)).scalar_one_or_none()
        return None if terms is None else msgspec.json.decode(terms, type=EInvoice)

    def next_number(self, prefix: str) -> str:
        """``INSERT ... ON CONFLICT DO UPDATE SET last_number = last_number + 1 RETURNING``: one
        statement that takes the counter row's lock until the unit of work ends, so concurrent
        closes queue on it and a rolled-back close gives its number back. No savepoint around it
        (two round trips on PostgreSQL): the upsert resolves the one constraint it could meet."""
        statement = self._insert(invoice_counters).values(prefix=prefix, last_number=1).on_conflict_do_update(
            index_elements=["prefix"], set_={"last_number": _n.last_number + 1})
        number = self._execute(statement.returning(_n.last_number)).scalar_one()
        return f"{prefix}{number:06d}"
