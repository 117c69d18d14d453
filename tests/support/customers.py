"""A customer as the use cases set one up, for tests of any tier that drive ``billing_core.services``."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from billing_core import Permission, services
from billing_core.billing_settings import InvoiceAddress
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext


class Customer(NamedTuple):
    organization_id: uuid.UUID
    owner: Actor
    """The primary owner, signed in with a token of their own."""
    platform: Actor
    """The platform's service token: may report usage, nothing else."""


def sign_up(ctx: BillingContext, *, name: str = "Acme", owner: str = "ada", owner_email: str = "a@acme.test",
            products: tuple[str, ...] = ("compute",)) -> Customer:
    """Create an organization owned by ``owner``, issue the owner's and the platform's tokens, and
    subscribe the whole organization to ``products``."""
    org = services.organizations.create_organization(ctx, name=name, owner_user_id=owner, owner_email=owner_email)
    _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name=owner, user_id=owner)
    _, platform_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                            scopes=frozenset({Permission.USAGE_WRITE}))
    customer = Customer(org.id, services.organizations.authenticate(ctx, owner_secret),
                        services.organizations.authenticate(ctx, platform_secret))
    for product in products:
        services.product_subscriptions.subscribe_product(ctx, customer.owner, organization_id=org.id, product=product,
                                                         project_id=None)
    return customer


def subscribe_plan(ctx: BillingContext, customer: Customer, plan: str = "pro") -> None:
    """Subscribe ``customer`` to ``plan`` through a checkout the provider completes (its trial credits
    and credit line come with it)."""
    session = services.checkout.start_checkout(ctx, customer.owner, organization_id=customer.organization_id,
                                               plan=plan, return_url="https://app.test/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id=f"sub_{customer.organization_id.hex}")


BERLIN = InvoiceAddress(company_name="Acme GmbH", address_1="Torstraße 1", city="Berlin", postal_code="10119",
                        country="DE")
"""A German buyer's invoice address: what a legal invoice (an EN 16931 e-invoice) needs of the buyer."""


def give_invoice_address(ctx: BillingContext, owner: Actor, organization_id: uuid.UUID,
                         address: InvoiceAddress = BERLIN) -> None:
    """Set the organization's invoice address: without one, its legal invoices are not issued
    (EN 16931 BR-10/BR-11: the buyer's postal address and country are mandatory)."""
    services.settings.update_address(ctx, owner, organization_id=organization_id, address=address)
