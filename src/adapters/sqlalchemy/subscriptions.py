"""Plan subscriptions (optimistically versioned) and product subscriptions."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import exists, or_, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import plan_subscriptions, product_subscriptions
from billing_core.errors import ConcurrentUpdate, Duplicate, NotFound
from billing_core.plan_subscription import PlanSubscription
from billing_core.ports import Page
from billing_core.product_subscription import ProductSubscription

_s, _ps = plan_subscriptions.c, product_subscriptions.c


class SqlAlchemyPlanSubscriptionRepository(SqlAlchemyRepository):
    def add(self, subscription: PlanSubscription) -> None:
        with self._guarded():
            result = self._execute(self._insert(plan_subscriptions).on_conflict_do_nothing(index_elements=["id"]),
                                   rows.plan_subscription_values(subscription))
        if result.rowcount == 0:
            raise Duplicate("subscription exists")

    def get(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> PlanSubscription:
        row = self._execute(select(plan_subscriptions).where(_s.id == subscription_id,
                                                             _s.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("subscription", subscription_id)
        return rows.plan_subscription_from_row(row)

    def current(self, organization_id: uuid.UUID) -> PlanSubscription | None:
        row = self._execute(select(plan_subscriptions).where(_s.organization_id == organization_id)
                            .order_by(_s.created_at.desc(), _s.id.desc()).limit(1)).first()
        return None if row is None else rows.plan_subscription_from_row(row)

    def by_provider_id(self, provider_subscription_id: str) -> PlanSubscription | None:
        row = self._execute(select(plan_subscriptions).where(_s.provider_subscription_id == provider_subscription_id)
                            .order_by(_s.created_at, _s.id).limit(1)).first()
        return None if row is None else rows.plan_subscription_from_row(row)

    def list(self, organization_id: uuid.UUID) -> list[PlanSubscription]:
        query = select(plan_subscriptions).where(_s.organization_id == organization_id).order_by(_s.created_at, _s.id)
        return [rows.plan_subscription_from_row(row) for row in self._execute(query)]

    def save(self, subscription: PlanSubscription) -> None:
        """Optimistic: the update matches only the version this copy was loaded at. A concurrent
        writer that saved first has moved it on, so this one matches nothing (on PostgreSQL the
        update waits for that writer's row lock, then re-reads the version) and is refused."""
        values = rows.plan_subscription_values(subscription)
        del values["id"], values["organization_id"]
        values["version"] = subscription.version + 1
        with self._guarded():
            result = self._execute(update(plan_subscriptions).where(
                _s.id == subscription.id, _s.organization_id == subscription.organization_id,
                _s.version == subscription.version).values(values))
        if result.rowcount == 1:
            subscription.version += 1
            return
        self.get(subscription.organization_id, subscription.id)  # NotFound when it is not there at all
        raise ConcurrentUpdate("the subscription changed meanwhile; retry")


class SqlAlchemyProductSubscriptionRepository(SqlAlchemyRepository):
    def add(self, subscription: ProductSubscription) -> None:
        with self._guarded():
            result = self._execute(self._insert(product_subscriptions).on_conflict_do_nothing(index_elements=["id"]),
                                   rows.product_subscription_values(subscription))
        if result.rowcount == 0:
            raise Duplicate("subscription exists")

    def get(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> ProductSubscription:
        row = self._execute(select(product_subscriptions).where(_ps.id == subscription_id,
                                                                _ps.organization_id == organization_id)).first()
        if row is None:
            raise NotFound("subscription", subscription_id)
        return rows.product_subscription_from_row(row)

    def list(self, organization_id: uuid.UUID, *, limit: int = 50,
             cursor: str | None = None) -> Page[ProductSubscription]:
        query = (select(product_subscriptions).where(_ps.organization_id == organization_id)
                 .order_by(_ps.start_date, _ps.id))
        return self._page(query, rows.product_subscription_from_row, limit, cursor)

    def save(self, subscription: ProductSubscription) -> None:
        values = rows.product_subscription_values(subscription)
        del values["id"], values["organization_id"]
        with self._guarded():
            result = self._execute(update(product_subscriptions).where(
                _ps.id == subscription.id, _ps.organization_id == subscription.organization_id).values(values))
        if result.rowcount == 0:
            raise NotFound("subscription", subscription.id)

    def active_for(self, organization_id: uuid.UUID, project_id: uuid.UUID | None, product_id: uuid.UUID,
                   at: datetime) -> bool:
        covers = _ps.project_id.is_(None) if project_id is None else or_(_ps.project_id.is_(None),
                                                                          _ps.project_id == project_id)
        query = select(exists().where(
            _ps.organization_id == organization_id, _ps.product_id == product_id, covers,
            _ps.start_date <= at, or_(_ps.end_date.is_(None), _ps.end_date > at)))
        return bool(self._execute(query).scalar())

    def of_products(self, organization_id: uuid.UUID,
                    product_ids: Collection[uuid.UUID]) -> builtins.list[ProductSubscription]:
        if not product_ids:
            return []
        query = select(product_subscriptions).where(_ps.organization_id == organization_id,
                                                    _ps.product_id.in_(list(product_ids)))
        return [rows.product_subscription_from_row(row) for row in self._execute(query)]
