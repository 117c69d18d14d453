"""billing-core: the pure billing domain. Stdlib and msgspec only.

Embedding it takes a :class:`BillingContext` (the ports of your choosing: the in-memory fakes in
``adapters.fakes``, or SQLAlchemy storage and Stripe) and the use cases in
:mod:`billing_core.services`::

    from billing_core import BillingContext, load_catalog, services
    ctx = BillingContext(uow=..., clock=..., catalog=load_catalog(), payments=...)
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="u1", owner_email="a@b.c")
"""

from billing_core import services
from billing_core.catalog import Catalog, Plan, PlanCode, Product, load_catalog
from billing_core.errors import (
    BillingError,
    Conflict,
    EventIdReused,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PaymentError,
    PaymentRequired,
    PermissionDenied,
    Unauthenticated,
)
from billing_core.money import Money, format_credits, micros_to_cents
from billing_core.permissions import Action, Actor, Permission, Role
from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus
from billing_core.product_subscription import ProductSubscription
from billing_core.services.context import BillingContext, BillingPolicy

__all__ = [
    "Action",
    "Actor",
    "BillingContext",
    "BillingError",
    "BillingPolicy",
    "Catalog",
    "Conflict",
    "EventIdReused",
    "IdempotencyKeyReused",
    "IdempotencyRequestInProgress",
    "IllegalTransition",
    "InvalidInput",
    "Money",
    "NotFound",
    "PaymentError",
    "PaymentRequired",
    "Permission",
    "PermissionDenied",
    "Plan",
    "PlanCode",
    "PlanSubscription",
    "Product",
    "ProductSubscription",
    "Role",
    "SubscriptionStatus",
    "Unauthenticated",
    "format_credits",
    "load_catalog",
    "micros_to_cents",
    "services",
]
