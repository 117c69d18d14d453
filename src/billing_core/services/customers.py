"""The payment provider's customer for an organization, created once on first need."""

from __future__ import annotations

import uuid

from billing_core.services.context import BillingContext


def ensure_customer(ctx: BillingContext, organization_id: uuid.UUID) -> str:
    """Create (idempotently, outside any transaction) and remember the provider customer."""
    with ctx.uow() as uow:
        org = uow.organizations.get(organization_id)
        email = uow.settings.get(organization_id).billing_email
    if org.provider_customer_id:
        return org.provider_customer_id
    customer_id = ctx.payments.ensure_customer(org, email)
    with ctx.uow() as uow:
        org = uow.organizations.get(organization_id)
        if not org.provider_customer_id:
            org.provider_customer_id = customer_id
            uow.organizations.save(org)
            uow.commit()
        return org.provider_customer_id or customer_id
