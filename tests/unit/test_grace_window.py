"""The production grace window after a payment failure: active, expired, and when it ends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from billing_core.catalog import Catalog, PlanCode
from billing_core.grace_window import GraceState, GraceWindow, grace_window
from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus
from billing_core.spend_guard import gate_window
from tests.unit.domain_builders import NOW, ORG, wallet_account

S = SubscriptionStatus


def subscription(status: S, *, past_due_since: datetime | None = None,
                 period_end: datetime = NOW - timedelta(days=1)) -> PlanSubscription:
    return PlanSubscription(id=uuid.uuid4(), organization_id=ORG, plan=PlanCode.PRO, status=status,
                            created_at=NOW - timedelta(days=40), current_period_start=NOW - timedelta(days=31),
                            current_period_end=period_end, past_due_since=past_due_since)


def test_no_subscription_no_window() -> None:
    assert grace_window(None, 7, NOW) == GraceWindow(GraceState.NONE)


@pytest.mark.parametrize("status", [s for s in S if s is not S.PAST_DUE])
def test_only_past_due_has_a_window(status: S) -> None:
    window = grace_window(subscription(status, past_due_since=NOW), 7, NOW)
    assert window == GraceWindow(GraceState.NONE)
    assert window.ends_at is None and window.started_at is None


def test_window_is_active_from_the_failure_for_the_grace_days() -> None:
    failed = NOW - timedelta(days=2, hours=3)
    window = grace_window(subscription(S.PAST_DUE, past_due_since=failed), 7, NOW)
    assert window.state is GraceState.ACTIVE
    assert window.started_at == failed
    assert window.ends_at == failed + timedelta(days=7)


def test_window_expires_exactly_at_its_end() -> None:
    failed = NOW - timedelta(days=7)
    sub = subscription(S.PAST_DUE, past_due_since=failed)
    assert grace_window(sub, 7, NOW - timedelta(microseconds=1)).state is GraceState.ACTIVE
    assert grace_window(sub, 7, NOW).state is GraceState.EXPIRED
    later = grace_window(sub, 7, NOW + timedelta(days=30))
    assert later.state is GraceState.EXPIRED and later.ends_at == NOW


def test_zero_grace_days_expire_at_once() -> None:
    assert grace_window(subscription(S.PAST_DUE, past_due_since=NOW), 0, NOW).state is GraceState.EXPIRED


def test_without_a_recorded_failure_the_window_starts_at_the_period_end() -> None:
    period_end = NOW - timedelta(days=5)
    window = grace_window(subscription(S.PAST_DUE, period_end=period_end), 3, NOW)
    assert window.started_at == period_end
    assert window.state is GraceState.EXPIRED


@pytest.mark.parametrize(("plan", "days"), [("starter", 3), ("pro", 7), ("scale", 10), ("enterprise", 14)])
def test_the_plans_grace_days(catalog: Catalog, plan: str, days: int) -> None:
    grace = catalog.plan(plan).grace_days
    assert grace == days
    sub = subscription(S.PAST_DUE, past_due_since=NOW)
    assert grace_window(sub, grace, NOW + timedelta(days=days) - timedelta(seconds=1)).state is GraceState.ACTIVE
    assert grace_window(sub, grace, NOW + timedelta(days=days)).state is GraceState.EXPIRED


def test_the_wallet_gate_tells_the_same_story_as_the_subscription() -> None:
    failed = NOW - timedelta(days=1)
    from_subscription = grace_window(subscription(S.PAST_DUE, past_due_since=failed), 3, NOW)
    from_gate = gate_window(wallet_account(status="past_due", past_due_since=failed, grace_days=3), NOW)
    assert from_gate == from_subscription
    assert gate_window(wallet_account(status="active"), NOW) == GraceWindow(GraceState.NONE)
    assert gate_window(wallet_account(status=None), NOW) == GraceWindow(GraceState.NONE)
