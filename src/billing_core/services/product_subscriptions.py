"""Product subscriptions: metered products linked to a project or the organization."""

from __future__ import annotations

import uuid
from datetime import datetime

from billing_core.permissions import Action, Actor, require
from billing_core.ports import Page, UnitOfWork, check_page_limit, iterate_pages
from billing_core.product_subscription import ProductSubscription, new_product_subscription
from billing_core.services.context import BillingContext


def list_product_subscriptions(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
                               cursor: str | None = None) -> Page[ProductSubscription]:
    require(actor, Action.VIEW_BILLING, organization_id)
    check_page_limit(limit)
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
    """Link a metered product to a project (or the organization when ``project_id`` is None).

    Once: under the organization's lock, a link of the product to the same project (or the
    organization) that has not ended is returned as it is, so a repeated or concurrent subscribe
    never creates a second link (nor an error)."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    metered = ctx.catalog.product_by_code(product)
    now = ctx.clock.now()
    sub = new_product_subscription(organization_id=organization_id, project_id=project_id, product_id=metered.id,
                                   start_date=start_date or now, end_date=end_date)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        uow.wallets.lock(organization_id)
        existing = _live_link(uow, organization_id, metered.id, project_id, now)
        if existing is not None:
            return existing
        uow.product_subscriptions.add(sub)
        uow.commit()
    return sub


def _live_link(uow: UnitOfWork, organization_id: uuid.UUID, product_id: uuid.UUID, project_id: uuid.UUID | None,
               now: datetime) -> ProductSubscription | None:
    """The organization's link of the product to exactly this project (or to the organization) that
    has not ended by ``now``, if any."""
    for link in iterate_pages(lambda cursor: uow.product_subscriptions.list(organization_id, limit=200,
                                                                            cursor=cursor)):
        if (link.product_id == product_id and link.project_id == project_id
                and (link.end_date is None or link.end_date > now)):
            return link
    return None


def end_product_subscription(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                             subscription_id: uuid.UUID, end_date: datetime | None = None) -> ProductSubscription:
    """End the link at ``end_date`` (now by default), or keep the earlier end it already has.
    Decided on the link as it stands under the organization's lock, so of concurrent ends the
    earliest date stands whatever order they land in."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        sub = uow.product_subscriptions.get(organization_id, subscription_id)
        sub.end(end_date or ctx.clock.now())
        uow.product_subscriptions.save(sub)
        uow.commit()
        return sub
