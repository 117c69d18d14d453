"""Use cases: each takes a :class:`BillingContext` and, where a person or token acts, an ``Actor``.

Every use case checks permissions first, validates input before writing anything, writes through
one unit of work (all or nothing), and records side effects as outbox messages in that same unit
of work. Calls to the payment provider happen outside database transactions.
"""

from billing_core.services import (
    background,
    budgets,
    checkout,
    dispatch,
    einvoicing,
    grants,
    holds,
    invoicing,
    notifications,
    organizations,
    overview,
    payment_methods,
    payments,
    plan_changes,
    plan_subscriptions,
    product_subscriptions,
    provider_events,
    reconcile,
    refunds,
    settings,
    usage,
    usage_explain,
    wallet,
)
from billing_core.services.context import BillingContext, BillingPolicy

__all__ = [
    "BillingContext",
    "BillingPolicy",
    "background",
    "budgets",
    "checkout",
    "dispatch",
    "einvoicing",
    "grants",
    "holds",
    "invoicing",
    "notifications",
    "organizations",
    "overview",
    "payment_methods",
    "payments",
    "plan_changes",
    "plan_subscriptions",
    "product_subscriptions",
    "provider_events",
    "reconcile",
    "refunds",
    "settings",
    "usage",
    "usage_explain",
    "wallet",
]
