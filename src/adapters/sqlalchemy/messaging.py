"""The transactional outbox, the inbound-event inbox and stored HTTP idempotent responses.

All three detect duplicates by the write (``INSERT ... ON CONFLICT DO NOTHING``), never by a read
first. :meth:`SqlAlchemyOutboxRepository.due` takes ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several dispatchers share the queue without handing out a message twice; on SQLite the unit of
work's write lock already makes dispatchers take turns.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import (
    idempotency_responses,
    inbox_events,
    outbox_messages,
    pending_outbox,
    scheduled_jobs,
)
from billing_core.errors import NotFound
from billing_core.outbox import OutboxDepth, OutboxMessage, OutboxStatus
from billing_core.ports import IDEMPOTENCY_IN_PROGRESS, StoredResponse

_o, _r, _i, _j = outbox_messages.c, idempotency_responses.c, inbox_events.c, scheduled_jobs.c


class SqlAlchemyOutboxRepository(SqlAlchemyRepository):
    def add(self, message: OutboxMessage) -> bool:
        result = self._execute(self._insert(outbox_messages).on_conflict_do_nothing(index_elements=["dedupe_key"]),
                               rows.outbox_values(message))
        return bool(result.rowcount)

    def due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        query = (select(outbox_messages)
                 .where(pending_outbox, or_(_o.next_attempt_at.is_(None), _o.next_attempt_at <= now))
                 .order_by(_o.created_at, _o.id).limit(limit))
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        return [rows.outbox_from_row(row) for row in self._execute(query)]

    def save(self, message: OutboxMessage) -> None:
        values = rows.outbox_values(message)
        del values["id"]
        with self._guarded():
            result = self._execute(update(outbox_messages).where(_o.id == message.id).values(values))
        if result.rowcount == 0:
            raise NotFound("outbox message", message.id)

    def list(self, *, status: str | None = None, organization_id: uuid.UUID | None = None,
             limit: int = 100) -> list[OutboxMessage]:
        query = select(outbox_messages)
        if status is not None:
            query = query.where(_o.status == str(status))
        if organization_id is not None:
            query = query.where(_o.organization_id == organization_id)
        query = query.order_by(_o.created_at, _o.id).limit(limit)
        return [rows.outbox_from_row(row) for row in self._execute(query)]

    def save_claimed(self, message: OutboxMessage, claimed_until: datetime) -> bool:
        values = rows.outbox_values(message)
        del values["id"]
        with self._guarded():
            result = self._execute(update(outbox_messages).where(
                _o.id == message.id, _o.status == OutboxStatus.PENDING.value,
                _o.next_attempt_at == claimed_until).values(values))
        return bool(result.rowcount)

    def requeue(self, message_id: uuid.UUID, now: datetime) -> bool:
        back = (update(outbox_messages).where(_o.id == message_id, _o.status == OutboxStatus.DEAD.value)
                .values(status=OutboxStatus.PENDING.value, next_attempt_at=now))
        return bool(self._execute(back).rowcount)

    def depth(self) -> OutboxDepth:
        pending = self._execute(select(func.count(), func.min(_o.created_at)).where(pending_outbox)).one()
        dead = self._execute(select(func.count()).where(_o.status == OutboxStatus.DEAD.value)).scalar_one()
        return OutboxDepth(pending=int(pending[0]), oldest_pending_at=pending[1], dead=int(dead))


class SqlAlchemyInboxRepository(SqlAlchemyRepository):
    def seen(self, source: str, event_id: str) -> bool:
        query = select(_i.event_id).where(_i.source == source, _i.event_id == event_id)
        return self._execute(query).first() is not None

    def remember(self, source: str, event_id: str, received_at: datetime) -> bool:
        result = self._execute(
            self._insert(inbox_events).on_conflict_do_nothing(index_elements=["source", "event_id"]),
            {"source": source, "event_id": event_id, "received_at": received_at})
        return bool(result.rowcount)


class SqlAlchemyIdempotencyRepository(SqlAlchemyRepository):
    def get(self, scope: str, key: str) -> StoredResponse | None:
        row = self._execute(select(idempotency_responses).where(_r.scope == scope, _r.key == key)).first()
        return None if row is None else rows.stored_response_from_row(row)

    def put(self, response: StoredResponse) -> bool:
        result = self._execute(
            self._insert(idempotency_responses).on_conflict_do_nothing(index_elements=["scope", "key"]),
            rows.stored_response_values(response))
        return bool(result.rowcount)

    def complete(self, response: StoredResponse, *, claimed_at: datetime) -> bool:
        # Conditional on the claim still being this caller's: a claim released as stale and taken
        # by another request must not be overwritten by the first one's late answer.
        done = (update(idempotency_responses)
                .where(_r.scope == response.scope, _r.key == response.key,
                       _r.status_code == IDEMPOTENCY_IN_PROGRESS, _r.created_at == claimed_at,
                       _r.request_hash == response.request_hash)
                .values(status_code=response.status_code, body=response.body,
                        content_type=response.content_type, created_at=response.created_at))
        return bool(self._execute(done).rowcount)

    def release(self, scope: str, key: str, *, claimed_at: datetime) -> bool:
        gone = delete(idempotency_responses).where(_r.scope == scope, _r.key == key,
                                                   _r.status_code == IDEMPOTENCY_IN_PROGRESS,
                                                   _r.created_at == claimed_at)
        return bool(self._execute(gone).rowcount)


class SqlAlchemyScheduledJobRepository(SqlAlchemyRepository):
    """Job leases as one row per job: the claim is a conditional ``UPDATE`` whose row count says
    who won, so two workers racing for a job never both run it."""

    def claim(self, job: str, period: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        self._execute(self._insert(scheduled_jobs).on_conflict_do_nothing(index_elements=["name"]),
                      {"name": job, "completed_period": None, "holder": None, "lease_until": None})
        claim = (update(scheduled_jobs)
                 .where(_j.name == job,
                        or_(_j.completed_period.is_(None), _j.completed_period != period),
                        or_(_j.holder.is_(None), _j.holder == holder, _j.lease_until < now))
                 .values(holder=holder, lease_until=lease_until))
        return bool(self._execute(claim).rowcount)

    def complete(self, job: str, period: str, holder: str) -> bool:
        done = (update(scheduled_jobs).where(_j.name == job, _j.holder == holder)
                .values(completed_period=period, holder=None, lease_until=None))
        return bool(self._execute(done).rowcount)

    def last_completed(self, job: str) -> str | None:
        row = self._execute(select(_j.completed_period).where(_j.name == job)).first()
        return None if row is None else row[0]
