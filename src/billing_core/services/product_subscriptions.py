"""Product subscriptions: metered products linked to a project or the organization."""

from __future__ import annotations

import uuid
from datetime import datetime

from billing_core.errors import InvalidInput
from billing_core.permissions import Action, Actor, require
from billing_core.ports import Page
from billing_core.product_subscription import ProductSubscription, new_product_subscription
from billing_core.services.context import BillingContext


def list_product_subscriptions(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
                               cursor: str | None = None) -> Page[ProductSubscription]:
    require(actor, Action.VIEW_BILLING, organization_id)
    if type(limit) is not int or not 1 <= limit <= 200:
        raise InvalidInput("limit", "limit must be between 1 and 200")
    with ctx.uow() as uow:
        return uow.product_subscriptions.list(organization_id, limit=limit, cursor=cursor)


def get_product_subscription(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                             subscription_id: uuid.UUID) -> ProductSubscription:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        return uow.product_subscriptions.get(organization_id, subscription_id)


def subscribe_product(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, product: str,
                      project_id: uuid.UUID | None, start_date: datetime | None = None,
                      end_date: datetime | None = None) -> ProductSubscription:
    """Link a metered product to a project (or the organization when ``project_id`` is None)."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    metered = ctx.catalog.product_by_code(product)
    sub = new_product_subscription(organization_id=organization_id, project_id=project_id, product_id=metered.id,
                                   start_date=start_date or ctx.clock.now(), end_date=end_date)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        uow.product_subscriptions.add(sub)
        uow.commit()
    return sub


def end_product_subscription(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                             subscription_id: uuid.UUID, end_date: datetime | None = None) -> ProductSubscription:
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        sub = uow.product_subscriptions.get(organization_id, subscription_id)
        sub.end(end_date or ctx.clock.now())
        uow.product_subscriptions.save(sub)
        uow.commit()
        return sub
