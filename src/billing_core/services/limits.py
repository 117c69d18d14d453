"""Keep the wallet's copy of limits and subscription gate in step with plan and settings.

The hot path reads only the wallet record, so whenever the plan subscription or the spend
settings change, the use case that changed them calls :func:`sync_wallet` in the same unit of work.
"""

from __future__ import annotations

import uuid

from billing_core.billing_settings import BillingSettings
from billing_core.catalog import Catalog
from billing_core.plan_subscription import PlanSubscription
from billing_core.ports import UnitOfWork
from billing_core.wallet import SpendLimits, SubscriptionGate


def limits_for(catalog: Catalog, subscription: PlanSubscription | None, settings: BillingSettings) -> SpendLimits:
    credit_line = 0
    if subscription is not None and subscription.is_subscribed:
        credit_line = catalog.plan(subscription.plan).overage_credit_line_micros
    spend = settings.spend_management
    return SpendLimits(
        credit_line_micros=credit_line,
        minimum_production_credit_micros=catalog.wallet.minimum_production_credit_micros,
        daily_budget_micros=spend.daily_budget_micros if spend.enabled else None,
        monthly_cap_micros=spend.monthly_cap_micros if spend.enabled else None,
    )


def gate_for(catalog: Catalog, subscription: PlanSubscription | None) -> SubscriptionGate:
    if subscription is None:
        return SubscriptionGate()
    return SubscriptionGate(status=subscription.status.value, past_due_since=subscription.past_due_since,
                            grace_days=catalog.plan(subscription.plan).grace_days)


def sync_wallet(uow: UnitOfWork, catalog: Catalog, organization_id: uuid.UUID) -> None:
    subscription = uow.plan_subscriptions.current(organization_id)
    settings = uow.settings.get(organization_id)
    uow.wallets.set_limits(organization_id, limits_for(catalog, subscription, settings))
    uow.wallets.set_gate(organization_id, gate_for(catalog, subscription))
