"""Product subscriptions: a metered product linked to a project (or the whole organization).

Not to be confused with :class:`~billing_core.plan_subscription.PlanSubscription`: this is what
``GET /subscriptions`` returns, and hourly usage is recorded only against active ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import msgspec

from billing_core.errors import InvalidInput


class ProductSubscription(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    product_id: uuid.UUID
    start_date: datetime
    end_date: datetime | None = None

    def active_at(self, at: datetime) -> bool:
        """Active from ``start_date`` (inclusive) to ``end_date`` (exclusive)."""
        return self.start_date <= at and (self.end_date is None or at < self.end_date)

    def covers(self, project_id: uuid.UUID | None) -> bool:
        """An org-level subscription covers every project; a project one only its project."""
        return self.project_id is None or self.project_id == project_id

    def end(self, at: datetime) -> None:
        _check_aware(at, "end_date")
        if at < self.start_date:
            raise InvalidInput("end_date", "end_date must not be before start_date")
        if self.end_date is not None and self.end_date <= at:
            return
        self.end_date = at


def covered(subscriptions: Iterable[ProductSubscription], project_id: uuid.UUID | None, product_id: uuid.UUID,
            at: datetime) -> bool:
    """Whether one of ``subscriptions`` covers a usage event of ``product_id`` in ``project_id`` (None:
    the organization itself) that occurred at ``at``: the rule
    :meth:`~billing_core.ports.ProductSubscriptionRepository.active_for` answers from storage."""
    return any(s.product_id == product_id and s.covers(project_id) and s.active_at(at) for s in subscriptions)


def new_product_subscription(*, organization_id: uuid.UUID, project_id: uuid.UUID | None,
                             product_id: uuid.UUID, start_date: datetime,
                             end_date: datetime | None = None) -> ProductSubscription:
    _check_aware(start_date, "start_date")
    if end_date is not None:
        _check_aware(end_date, "end_date")
    if end_date is not None and end_date <= start_date:
        raise InvalidInput("end_date", "end_date must be after start_date")
    return ProductSubscription(id=uuid.uuid4(), organization_id=organization_id, project_id=project_id,
                               product_id=product_id, start_date=start_date, end_date=end_date)


def _check_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, f"{field} must carry a UTC offset", code="invalid_datetime")
