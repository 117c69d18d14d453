"""A customer as the use cases set one up, for tests of any tier that drive ``billing_core.services``."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from billing_core import Permission, services
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
