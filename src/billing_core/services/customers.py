"""The payment provider's customer for an organization, created once on first need."""

from __future__ import annotations

import uuid

from billing_core.services.context import BillingContext


def ensure_customer(ctx: BillingContext, organization_id: uuid.UUID) -> str:
    """The organization's provider customer, created on first need, exactly once (ADR 0009).

    The provider is asked outside any transaction, idempotently per organization (the port's
    contract: Stripe's create carries ``customer-create:<organization id>`` as idempotency key), so
    concurrent first payments get the same customer back. The id is then written under the
    organization's wallet lock, only while none is stored (re-read under the lock), so the first
    write stands, a concurrent second one changes nothing, and no other field of the organization
    is overwritten with a stale copy."""
    with ctx.uow() as uow:
        org = uow.organizations.get(organization_id)
        email = uow.settings.get(organization_id).billing_email
    if org.provider_customer_id:
        return org.provider_customer_id
    customer_id = ctx.payments.ensure_customer(org, email)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        org = uow.organizations.get(organization_id)  # as it stands under the lock
        if org.provider_customer_id:
            return org.provider_customer_id
        org.provider_customer_id = customer_id
        uow.organizations.save(org)
        uow.commit()
        return customer_id
