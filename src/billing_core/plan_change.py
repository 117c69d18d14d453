"""Immediate plan changes with a preview that equals the charge.

The preview credits the unused part of the current plan and charges the remaining part of the new
plan, both prorated by seconds left in the period; the charge later uses the same function with the
same ``at``, so the amounts are identical.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from billing_core.catalog import Plan, PlanCode
from billing_core.money import prorate
from billing_core.plan_subscription import PlanSubscription


class PlanChangePreview(msgspec.Struct, frozen=True, kw_only=True):
    from_plan: PlanCode
    to_plan: PlanCode
    at: datetime
    period_end: datetime
    unused_credit_cents: int
    new_plan_charge_cents: int
    amount_due_cents: int
    currency_iso: str


def preview_change(subscription: PlanSubscription, current: Plan, target: Plan, *, at: datetime,
                   currency_iso: str) -> PlanChangePreview:
    start, end = subscription.current_period_start, subscription.current_period_end
    total = max(int((end - start).total_seconds()), 1)
    left = min(max(int((end - at).total_seconds()), 0), total)
    # A trial costs nothing, so nothing unused is credited back.
    unused = 0 if subscription.trial_end is not None and at < subscription.trial_end else prorate(
        current.price_cents, left, total)
    charge = prorate(target.price_cents, left, total)
    return PlanChangePreview(
        from_plan=current.code, to_plan=target.code, at=at, period_end=end, unused_credit_cents=unused,
        new_plan_charge_cents=charge, amount_due_cents=max(charge - unused, 0), currency_iso=currency_iso,
    )
