"""Credit grants, the projection of the ledger (ADR 0016): grants, movements, cursors and terms.

Written only by ``billing_core.services.grants``, one catch-up of an organization at a time: each
locks the cursor row first (``lock_cursor``, ``SELECT … FOR UPDATE``; the worker's sweep with
``try_lock_cursor``, ``SKIP LOCKED``; SQLite's write transaction already excludes the others), not
the wallet row the usage path waits for. The cursor moves with
a conditional ``UPDATE … WHERE sequence = :expected`` (or an insert that does nothing on
conflict), whose row count decides, so a second catch-up never allocates twice.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import grant_cursors, grant_movements, grant_terms, ledger_transactions, organizations
from adapters.sqlalchemy.tables import grants as grant_rows
from billing_core.errors import InvalidInput
from billing_core.grants import Grant, GrantTerms, MovementSpan
from billing_core.ports import GrantCursor

_g, _m, _c, _k, _t = grant_rows.c, grant_movements.c, grant_cursors.c, grant_terms.c, ledger_transactions.c
# Under SQLite's smallest compiled-in limit of bound parameters (999).
_PER_QUERY = 500


class SqlAlchemyGrantRepository(SqlAlchemyRepository):
    def cursor(self, organization_id: uuid.UUID) -> GrantCursor:
        row = self._execute(select(grant_cursors).where(_c.organization_id == organization_id)).first()
        if row is None:
            return GrantCursor(organization_id=organization_id)
        return GrantCursor(organization_id=organization_id, sequence=int(row.sequence),
                           uncovered_micros=int(row.uncovered_micros))

    def lock_cursor(self, organization_id: uuid.UUID) -> GrantCursor:
        locked = select(grant_cursors).where(_c.organization_id == organization_id).with_for_update()
        row = self._execute(locked).first()
        if row is None:
            # A first catch-up: a row to lock (a concurrent first one waits on this insert's key).
            self._execute(self._insert(grant_cursors).on_conflict_do_nothing(index_elements=["organization_id"]),
                          {"organization_id": organization_id, "sequence": 0, "uncovered_micros": 0})
            row = self._execute(locked).first()
        assert row is not None
        return GrantCursor(organization_id=organization_id, sequence=int(row.sequence),
                           uncovered_micros=int(row.uncovered_micros))

    def try_lock_cursor(self, organization_id: uuid.UUID) -> GrantCursor | None:
        if not self._postgres:  # SQLite's write transaction already excludes every other writer
            return self.lock_cursor(organization_id)
        row = self._execute(select(grant_cursors).where(_c.organization_id == organization_id)
                            .with_for_update(skip_locked=True)).first()
        if row is not None:
            return GrantCursor(organization_id=organization_id, sequence=int(row.sequence),
                               uncovered_micros=int(row.uncovered_micros))
        if self._execute(select(_c.sequence).where(_c.organization_id == organization_id)).first() is not None:
            return None  # the row is there and locked: another catch-up holds it
        return self.lock_cursor(organization_id)  # no cursor yet: a first catch-up creates it

    def open(self, organization_id: uuid.UUID) -> list[Grant]:
        query = (select(grant_rows).where(_g.organization_id == organization_id, _g.expired_by.is_(None),
                                      _g.remaining_micros > 0).order_by(_g.created_at, _g.id))
        return [rows.grant_from_row(row) for row in self._execute(query)]

    def get_many(self, organization_id: uuid.UUID, grant_ids: Sequence[uuid.UUID]) -> list[Grant]:
        found: list[Grant] = []
        ids = list(dict.fromkeys(grant_ids))
        for start in range(0, len(ids), _PER_QUERY):
            query = select(grant_rows).where(_g.organization_id == organization_id,
                                         _g.id.in_(ids[start:start + _PER_QUERY]))
            found.extend(rows.grant_from_row(row) for row in self._execute(query))
        return found

    def list(self, organization_id: uuid.UUID) -> list[Grant]:
        query = select(grant_rows).where(_g.organization_id == organization_id).order_by(_g.created_at.desc(), _g.id)
        return [rows.grant_from_row(row) for row in self._execute(query)]

    def apply(self, cursor: GrantCursor, grants: Sequence[Grant], spans: Sequence[MovementSpan], *,
              expected_sequence: int) -> bool:
        org = cursor.organization_id
        if any(g.organization_id != org for g in grants) or any(m.organization_id != org for m in spans):
            raise InvalidInput("organization_id", "a grant row belongs to another organization")
        values = {"sequence": cursor.sequence, "uncovered_micros": cursor.uncovered_micros}
        # A savepoint on SQLite too: a refused row (a check constraint) must undo the cursor and
        # grants written before it, not only its own statement, so the unit of work goes on clean.
        with self._uow.savepoint():
            if expected_sequence == 0:
                moved = self._execute(self._insert(grant_cursors).on_conflict_do_nothing(
                    index_elements=["organization_id"]), {"organization_id": org, **values}).rowcount
                if not moved:
                    moved = self._execute(update(grant_cursors).where(
                        _c.organization_id == org, _c.sequence == 0).values(values)).rowcount
            else:
                moved = self._execute(update(grant_cursors).where(
                    _c.organization_id == org, _c.sequence == expected_sequence).values(values)).rowcount
            if moved != 1:
                return False
            if grants:
                ids = [g.id for g in grants]
                # Replace: the changed grants are few per catch-up (the ones it created, drew or gave back to).
                for start in range(0, len(ids), _PER_QUERY):
                    self._execute(delete(grant_rows).where(_g.organization_id == org,
                                                       _g.id.in_(ids[start:start + _PER_QUERY])))
                self._execute(grant_rows.insert(), [rows.grant_values(g) for g in grants])
            if spans:  # at the driver level (unnest on PostgreSQL)
                self._uow.driver.insert_grant_movements(spans)
        return True

    def spans_at(self, organization_id: uuid.UUID, sequence: int) -> builtins.list[MovementSpan]:
        """Spans of one organization never overlap but where one transaction has several (the same
        range), so the first range that ends at or after ``sequence`` is the only one that may
        cover it: found by the (organization, last_sequence) index, not by a scan of all after it."""
        nearest = (select(func.min(_m.last_sequence))
                   .where(_m.organization_id == organization_id, _m.last_sequence >= sequence).scalar_subquery())
        query = (select(grant_movements).where(_m.organization_id == organization_id, _m.last_sequence == nearest,
                                               _m.first_sequence <= sequence).order_by(_m.seq))
        return [MovementSpan(organization_id=row.organization_id, transaction_id=row.transaction_id,
                             grant_id=row.grant_id, amount_micros=int(row.amount_micros),
                             first_sequence=int(row.first_sequence), last_sequence=int(row.last_sequence))
                for row in self._execute(query)]

    def span_totals(self, organization_id: uuid.UUID) -> Mapping[tuple[int, int], int]:
        query = (select(_m.first_sequence, _m.last_sequence, func.sum(_m.amount_micros))
                 .where(_m.organization_id == organization_id).group_by(_m.first_sequence, _m.last_sequence))
        return {(int(row[0]), int(row[1])): int(row[2]) for row in self._execute(query)}

    def put_terms(self, terms: GrantTerms) -> None:
        with self._guarded():
            self._execute(self._insert(grant_terms).on_conflict_do_nothing(
                index_elements=["organization_id", "idempotency_key"]), {
                "organization_id": terms.organization_id, "idempotency_key": terms.idempotency_key,
                "source": terms.source.value, "expires_at": terms.expires_at, "priority": terms.priority})

    def terms(self, organization_id: uuid.UUID, keys: Sequence[str]) -> dict[str, GrantTerms]:
        found: dict[str, GrantTerms] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _PER_QUERY):
            query = select(grant_terms).where(_k.organization_id == organization_id,
                                              _k.idempotency_key.in_(unique[start:start + _PER_QUERY]))
            for row in self._execute(query):
                found[row.idempotency_key] = rows.grant_terms_from_row(row)
        return found

    def due(self, now: datetime, limit: int = 100) -> builtins.list[Grant]:
        query = (select(grant_rows).where(_g.expired_by.is_(None), _g.remaining_micros > 0, _g.expires_at.is_not(None),
                                      _g.expires_at <= now).order_by(_g.expires_at, _g.id).limit(limit))
        return [rows.grant_from_row(row) for row in self._execute(query)]

    def behind(self, limit: int = 100) -> builtins.list[uuid.UUID]:
        # Per organization, one probe of the ledger's (organization, seq) index past its cursor:
        # no aggregate over the ledger.
        past = (select(_t.seq).where(_t.organization_id == organizations.c.id,
                                     _t.seq > func.coalesce(_c.sequence, 0)).exists())
        query = (select(organizations.c.id).select_from(
            organizations.outerjoin(grant_cursors, _c.organization_id == organizations.c.id))
            .where(past).order_by(organizations.c.id).limit(limit))
        return [row[0] for row in self._execute(query)]
