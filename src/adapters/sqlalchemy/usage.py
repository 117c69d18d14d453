"""Usage events (unique per organization and event id) and their hourly buckets.

An event is stored with ``INSERT ... ON CONFLICT DO NOTHING``: a replayed id inserts nothing and
changes nothing else. Its bucket is upserted among the *open* (uninvoiced) buckets, which a partial
unique index keys on (organization, project or nil, product, hour): an invoiced bucket is never
matched, so late usage for an invoiced hour opens a new bucket instead of changing the invoice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import usage_buckets, usage_events
from billing_core.budgets import BudgetScope
from billing_core.errors import NotFound
from billing_core.ledger import LedgerTransaction
from billing_core.ports import DebitChunk, UsageSnapshot
from billing_core.usage import HourlyUsage, UsageEvent, sort_buckets
from billing_core.wallet import WalletAccount

_b, _e = usage_buckets.c, usage_events.c


class SqlAlchemyUsageRepository(SqlAlchemyRepository):
    def lock_for_event(self, organization_id: uuid.UUID, event_id: str, project_id: uuid.UUID | None,
                       product_id: uuid.UUID, at: datetime, *, ledger_keys: Sequence[str] = ()) -> UsageSnapshot:
        """One round trip at the driver level (ADR 0010): the wallet row locked, its settings, the
        subscription check, whether the event id is stored and which ``ledger_keys`` are used."""
        found = self._uow.driver.lock_for_event(organization_id, event_id, project_id, product_id, at, ledger_keys)
        if found is None:
            raise NotFound("wallet", organization_id)
        wallet, settings, subscribed, event_stored, stored_keys = found
        return UsageSnapshot(wallet=wallet, settings=settings, subscribed=subscribed, event_stored=event_stored,
                             stored_keys=stored_keys)

    def record_debit(self, event: UsageEvent, tx: LedgerTransaction, wallet: WalletAccount,
                     old_version: int) -> bool:
        return self._uow.driver.record_debit(event, tx, wallet, old_version)

    def record_debits(self, chunks: Iterable[DebitChunk]) -> None:
        self._uow.driver.record_debits(chunks)

    def record(self, event: UsageEvent) -> bool:
        return self.record_many([event])[0]

    def record_many(self, events: Sequence[UsageEvent]) -> list[bool]:
        """Events are inserted in bulk at the driver level (ADR 0007) and each bucket the inserted
        ones touch is upserted once with their sum (one statement on PostgreSQL); a repeated id
        within ``events`` counts as a replay."""
        if not events:
            return []
        stored = [False] * len(events)
        first_of: dict[tuple[uuid.UUID, str], int] = {}
        for index, event in enumerate(events):
            first_of.setdefault((event.organization_id, event.event_id), index)
        distinct = [events[index] for index in first_of.values()]
        inserted = self._uow.driver.record_events(distinct)
        for index, was_inserted in zip(first_of.values(), inserted, strict=True):
            stored[index] = was_inserted
        return stored

    def get_event(self, organization_id: uuid.UUID, event_id: str) -> UsageEvent | None:
        row = self._execute(select(usage_events).where(_e.organization_id == organization_id,
                                                       _e.event_id == event_id)).first()
        return None if row is None else rows.usage_event_from_row(row)

    def _select(self, *conditions: ColumnElement[Any]) -> list[HourlyUsage]:
        found = [rows.bucket_from_row(row) for row in self._execute(select(usage_buckets).where(*conditions))]
        sort_buckets(found)
        return found

    def buckets(self, organization_id: uuid.UUID, start: datetime, end: datetime) -> list[HourlyUsage]:
        return self._select(_b.organization_id == organization_id, _b.hour >= start, _b.hour < end)

    def uninvoiced(self, organization_id: uuid.UUID, before: datetime) -> list[HourlyUsage]:
        return self._select(_b.organization_id == organization_id, _b.invoice_id.is_(None), _b.hour < before)

    def uninvoiced_totals(self, organization_id: uuid.UUID, before: datetime) -> list[HourlyUsage]:
        query = (select(_b.project_id, _b.product_id, func.sum(_b.quantity), func.sum(_b.amount_micros),
                        func.min(_b.hour))
                 .where(_b.organization_id == organization_id, _b.invoice_id.is_(None), _b.hour < before)
                 .group_by(_b.project_id, _b.product_id))
        totals = [HourlyUsage(organization_id=organization_id, project_id=row[0], product_id=row[1],
                              quantity=int(row[2]), amount_micros=int(row[3]), hour=_aware(row[4]))
                  for row in self._execute(query)]
        totals.sort(key=lambda b: (str(b.project_id), str(b.product_id)))
        return totals

    def mark_invoiced(self, organization_id: uuid.UUID, before: datetime, invoice_id: uuid.UUID) -> int:
        result = self._execute(update(usage_buckets).where(
            _b.organization_id == organization_id, _b.invoice_id.is_(None), _b.hour < before,
        ).values(invoice_id=invoice_id))
        return int(result.rowcount)

    def put_on_invoice(self, organization_id: uuid.UUID, before: datetime,
                       invoice_id: uuid.UUID) -> list[HourlyUsage]:
        """At the driver level: the totals are summed from the rows the ``UPDATE`` marked (those
        carrying the new invoice id), not read before it, so nothing committed in between is marked
        without being counted (at READ COMMITTED a read and a later update see different rows)."""
        totals = self._uow.driver.put_on_invoice(organization_id, before, invoice_id)
        totals.sort(key=lambda b: (str(b.project_id), str(b.product_id)))
        return totals

    def invoiced_totals(self, organization_id: uuid.UUID) -> list[HourlyUsage]:
        query = (select(_b.invoice_id, _b.project_id, _b.product_id, func.sum(_b.quantity),
                        func.sum(_b.amount_micros), func.min(_b.hour))
                 .where(_b.organization_id == organization_id, _b.invoice_id.is_not(None))
                 .group_by(_b.invoice_id, _b.project_id, _b.product_id))
        totals = [HourlyUsage(organization_id=organization_id, invoice_id=row[0], project_id=row[1],
                              product_id=row[2], quantity=int(row[3]), amount_micros=int(row[4]),
                              hour=_aware(row[5]))
                  for row in self._execute(query)]
        totals.sort(key=lambda b: (str(b.invoice_id), str(b.project_id), str(b.product_id)))
        return totals

    def scope_totals(self, organization_id: uuid.UUID) -> Mapping[tuple[BudgetScope, uuid.UUID], int]:
        totals: dict[tuple[BudgetScope, uuid.UUID], int] = {}
        for scope, column in ((BudgetScope.PROJECT, _e.project_id), (BudgetScope.TOKEN, _e.token_id)):
            query = (select(column, func.sum(_e.amount_micros))
                     .where(_e.organization_id == organization_id, column.is_not(None)).group_by(column))
            totals.update(((scope, row[0]), int(row[1])) for row in self._execute(query))
        return totals

    def organizations_with_uninvoiced(self, before: datetime) -> list[uuid.UUID]:
        query = (select(_b.organization_id).where(_b.invoice_id.is_(None), _b.hour < before).distinct()
                 .order_by(_b.organization_id))
        return list(self._execute(query).scalars())


def _aware(hour: datetime) -> datetime:
    """``min()`` over the UTC column loses the column type on some drivers (SQLite returns text)."""
    if isinstance(hour, str):
        hour = datetime.fromisoformat(hour)
    return hour if hour.tzinfo is not None else hour.replace(tzinfo=UTC)
