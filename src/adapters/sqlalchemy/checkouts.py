"""Checkout sessions. Not organization-scoped: a guest session has no organization until claimed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import checkout_sessions
from billing_core.checkout import CheckoutSession, CheckoutStatus
from billing_core.errors import Duplicate, NotFound

_c = checkout_sessions.c


class SqlAlchemyCheckoutRepository(SqlAlchemyRepository):
    def add(self, session: CheckoutSession) -> None:
        with self._guarded():
            result = self._execute(self._insert(checkout_sessions).on_conflict_do_nothing(index_elements=["id"]),
                                   rows.checkout_values(session))
        if result.rowcount == 0:
            raise Duplicate(f"checkout session {session.id} exists")

    def get(self, session_id: uuid.UUID) -> CheckoutSession:
        row = self._execute(select(checkout_sessions).where(_c.id == session_id)).first()
        if row is None:
            raise NotFound("checkout session", session_id)
        return rows.checkout_from_row(row)

    def by_provider_id(self, provider_session_id: str) -> CheckoutSession | None:
        row = self._execute(select(checkout_sessions).where(_c.provider_session_id == provider_session_id)
                            .order_by(_c.created_at, _c.id).limit(1)).first()
        return None if row is None else rows.checkout_from_row(row)

    def save(self, session: CheckoutSession) -> None:
        values = rows.checkout_values(session)
        del values["id"]
        with self._guarded():
            result = self._execute(update(checkout_sessions).where(_c.id == session.id).values(values))
        if result.rowcount == 0:
            raise NotFound("checkout session", session.id)

    def unclaimed_guest(self, email: str) -> list[CheckoutSession]:
        query = (select(checkout_sessions).where(
            _c.organization_id.is_(None), _c.status == CheckoutStatus.COMPLETE.value, _c.claimed_at.is_(None),
            _c.guest_email_key == rows.email_key(email)).order_by(_c.created_at, _c.id))
        return [rows.checkout_from_row(row) for row in self._execute(query)]

    def _move(self, session_id: uuid.UUID, expected: list[ColumnElement[bool]], values: dict[str, Any]) -> bool:
        """One conditional ``UPDATE ... WHERE <expected state>``: on PostgreSQL a concurrent writer of
        the row makes it wait, then it re-checks the condition on the committed row and matches
        nothing if that writer moved it first."""
        with self._guarded():
            result = self._execute(update(checkout_sessions).where(_c.id == session_id, *expected).values(values))
        return result.rowcount == 1

    def complete(self, session_id: uuid.UUID, *, completed_at: datetime,
                 provider_subscription_id: str | None) -> bool:
        return self._move(session_id, [_c.status == CheckoutStatus.OPEN.value], {
            "status": CheckoutStatus.COMPLETE.value, "completed_at": completed_at,
            "provider_subscription_id": provider_subscription_id})

    def expire(self, session_id: uuid.UUID) -> bool:
        return self._move(session_id, [_c.status == CheckoutStatus.OPEN.value],
                          {"status": CheckoutStatus.EXPIRED.value})

    def claim(self, session_id: uuid.UUID, *, organization_id: uuid.UUID, claimed_at: datetime) -> bool:
        return self._move(session_id, [_c.status == CheckoutStatus.COMPLETE.value, _c.organization_id.is_(None),
                                       _c.claimed_at.is_(None)],
                          {"organization_id": organization_id, "claimed_at": claimed_at})

    def for_organization(self, organization_id: uuid.UUID) -> list[CheckoutSession]:
        query = (select(checkout_sessions).where(_c.organization_id == organization_id)
                 .order_by(_c.created_at, _c.id))
        return [rows.checkout_from_row(row) for row in self._execute(query)]
