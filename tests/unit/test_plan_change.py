"""Plan change previews: the unused part of the current plan is credited, the rest of the period on
the new plan is charged, both prorated by the seconds left; the preview is what is charged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core.catalog import Catalog, PlanCode, load_catalog
from billing_core.money import prorate
from billing_core.plan_change import PlanChangePreview, preview_change
from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus
from tests.unit.domain_builders import ORG

START = datetime(2026, 4, 1, tzinfo=UTC)
END = datetime(2026, 5, 1, tzinfo=UTC)  # 30 days = 2,592,000 seconds
PERIOD = int((END - START).total_seconds())


def subscription(plan: PlanCode = PlanCode.PRO, *, trial_end: datetime | None = None,
                 start: datetime = START, end: datetime = END) -> PlanSubscription:
    status = SubscriptionStatus.TRIALING if trial_end else SubscriptionStatus.ACTIVE
    return PlanSubscription(id=uuid.uuid4(), organization_id=ORG, plan=plan, status=status, created_at=start,
                            current_period_start=start, current_period_end=end, trial_end=trial_end)


def preview(catalog: Catalog, source: str, target: str, at: datetime, *, trial_end: datetime | None = None,
            start: datetime = START, end: datetime = END) -> PlanChangePreview:
    sub = subscription(PlanCode(source), trial_end=trial_end, start=start, end=end)
    return preview_change(sub, catalog.plan(source), catalog.plan(target), at=at, currency_iso="USD")


def test_mid_period_upgrade(catalog: Catalog) -> None:
    result = preview(catalog, "starter", "pro", START + timedelta(days=15))
    assert result == PlanChangePreview(from_plan=PlanCode.STARTER, to_plan=PlanCode.PRO, at=START + timedelta(days=15),
                                       period_end=END, unused_credit_cents=1000, new_plan_charge_cents=4950,
                                       amount_due_cents=3950, currency_iso="USD")


@pytest.mark.parametrize(("at", "unused", "charge", "due"), [
    (START, 9900, 49900, 40000),
    (START + timedelta(days=10), 6600, 33267, 26667),  # 33266.67 rounds half up
    (START + timedelta(days=29, hours=23), 14, 69, 55),
    (END - timedelta(seconds=1), 0, 0, 0),
    (END, 0, 0, 0),
    (END + timedelta(days=3), 0, 0, 0),  # after the period: nothing left
    (START - timedelta(days=2), 9900, 49900, 40000),  # before it: the whole period
])
def test_upgrade_pro_to_scale_by_time_left(catalog: Catalog, at: datetime, unused: int, charge: int,
                                           due: int) -> None:
    result = preview(catalog, "pro", "scale", at)
    assert (result.unused_credit_cents, result.new_plan_charge_cents, result.amount_due_cents) == (unused, charge, due)


def test_downgrade_is_never_due_negative(catalog: Catalog) -> None:
    result = preview(catalog, "enterprise", "starter", START + timedelta(days=6))
    assert result.unused_credit_cents == 159920
    assert result.new_plan_charge_cents == 1600
    assert result.amount_due_cents == 0


def test_proration_counts_seconds(catalog: Catalog) -> None:
    at = START + timedelta(days=7, hours=3, minutes=2, seconds=11)
    left = int((END - at).total_seconds())
    result = preview(catalog, "starter", "enterprise", at)
    assert result.unused_credit_cents == prorate(2000, left, PERIOD)
    assert result.new_plan_charge_cents == prorate(199900, left, PERIOD)
    assert result.amount_due_cents == result.new_plan_charge_cents - result.unused_credit_cents


def test_a_trial_credits_nothing_back(catalog: Catalog) -> None:
    during = preview(catalog, "pro", "scale", START + timedelta(days=3), trial_end=START + timedelta(days=14))
    assert during.unused_credit_cents == 0
    assert during.amount_due_cents == during.new_plan_charge_cents
    # Once the trial is over, the paid remainder of the period is credited as usual.
    after = preview(catalog, "pro", "scale", START + timedelta(days=15), trial_end=START + timedelta(days=14))
    assert after.unused_credit_cents == prorate(9900, int((END - START - timedelta(days=15)).total_seconds()), PERIOD)


def test_a_zero_length_period_does_not_divide_by_zero(catalog: Catalog) -> None:
    result = preview(catalog, "pro", "scale", START, start=START, end=START)
    assert (result.unused_credit_cents, result.new_plan_charge_cents, result.amount_due_cents) == (0, 0, 0)


_catalog = load_catalog()
codes = st.sampled_from([p.code.value for p in _catalog.plans])


@settings(max_examples=150, deadline=None)
@given(codes, codes, st.integers(min_value=-5 * 86400, max_value=35 * 86400))
def test_the_preview_is_deterministic_and_bounded(source: str, target: str, offset: int) -> None:
    at = START + timedelta(seconds=offset)
    first = preview(_catalog, source, target, at)
    assert first == preview(_catalog, source, target, at)  # the charge later repeats the preview exactly
    assert 0 <= first.unused_credit_cents <= _catalog.plan(source).price_cents
    assert 0 <= first.new_plan_charge_cents <= _catalog.plan(target).price_cents
    assert first.amount_due_cents == max(first.new_plan_charge_cents - first.unused_credit_cents, 0)
    if _catalog.plan(target).price_cents >= _catalog.plan(source).price_cents:
        assert first.amount_due_cents == first.new_plan_charge_cents - first.unused_credit_cents


def test_a_recorded_change_keeps_its_preview_and_derives_its_invoice_key(catalog: Catalog) -> None:
    from billing_core.plan_change import PlanChangeStatus, record_change

    sub = subscription(PlanCode.STARTER)
    sub.version = 7
    shown = preview_change(sub, catalog.plan("starter"), catalog.plan("pro"), at=START + timedelta(days=3),
                           currency_iso="USD")
    change_id = uuid.uuid4()
    due = record_change(change_id=change_id, subscription=sub, preview=shown, invoice_due=True, now=START)
    free = record_change(change_id=change_id, subscription=sub, preview=shown, invoice_due=False, now=START)
    assert due.preview == shown and due.subscription_version == 7
    assert (due.status, due.completed_at, due.invoice_key) == (PlanChangeStatus.PENDING, None,
                                                              f"plan-change:{change_id}")
    assert (free.status, free.completed_at) == (PlanChangeStatus.NOT_INVOICED, START)
