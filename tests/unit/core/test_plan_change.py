"""Plan change previews: proration by seconds left in the period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing_core.catalog import Catalog, PlanCode
from billing_core.plan_change import preview_change
from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 31, tzinfo=UTC)  # 30 days


def subscription(*, trial_end: datetime | None = None) -> PlanSubscription:
    return PlanSubscription(id=uuid.uuid4(), organization_id=uuid.uuid4(), plan=PlanCode.PRO,
                            status=SubscriptionStatus.TRIALING if trial_end else SubscriptionStatus.ACTIVE,
                            created_at=START, current_period_start=START, current_period_end=END,
                            trial_end=trial_end)


@pytest.mark.parametrize(("at", "unused", "charge"), [
    (START, 9900, 49900),  # whole period left
    (START + timedelta(days=15), 4950, 24950),  # half
    (START + timedelta(days=10), 6600, 33267),  # two thirds: 33266.67 rounds half-up
    (END, 0, 0),  # nothing left
    (END + timedelta(days=1), 0, 0),  # after the period: clamped to nothing
    (START - timedelta(days=1), 9900, 49900),  # before the period: clamped to the whole period
])
def test_upgrade_proration(catalog: Catalog, at: datetime, unused: int, charge: int) -> None:
    preview = preview_change(subscription(), catalog.plan("pro"), catalog.plan("scale"), at=at, currency_iso="USD")
    assert preview.unused_credit_cents == unused
    assert preview.new_plan_charge_cents == charge
    assert preview.amount_due_cents == charge - unused
    assert (preview.from_plan, preview.to_plan) == (PlanCode.PRO, PlanCode.SCALE)
    assert (preview.at, preview.period_end, preview.currency_iso) == (at, END, "USD")


def test_downgrade_never_due_negative(catalog: Catalog) -> None:
    preview = preview_change(subscription(), catalog.plan("scale"), catalog.plan("starter"),
                             at=START + timedelta(days=15), currency_iso="USD")
    assert preview.unused_credit_cents == 24950
    assert preview.new_plan_charge_cents == 1000
    assert preview.amount_due_cents == 0


def test_trial_credits_nothing_back(catalog: Catalog) -> None:
    sub = subscription(trial_end=END)
    at = START + timedelta(days=15)
    preview = preview_change(sub, catalog.plan("pro"), catalog.plan("scale"), at=at, currency_iso="USD")
    assert preview.unused_credit_cents == 0
    assert preview.new_plan_charge_cents == 24950
    assert preview.amount_due_cents == 24950


def test_preview_is_deterministic_for_the_same_instant(catalog: Catalog) -> None:
    at = START + timedelta(days=7, hours=3, seconds=11)
    sub = subscription()
    first = preview_change(sub, catalog.plan("starter"), catalog.plan("enterprise"), at=at, currency_iso="EUR")
    second = preview_change(sub, catalog.plan("starter"), catalog.plan("enterprise"), at=at, currency_iso="EUR")
    assert first == second
    assert first.amount_due_cents == first.new_plan_charge_cents - first.unused_credit_cents
    assert 0 < first.unused_credit_cents < 2000
