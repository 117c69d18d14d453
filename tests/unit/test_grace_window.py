"""The production grace window after a payment failure: active, expired, when it ends, and the
fallback when the failure has no recorded time (the window starts now)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from billing_core.catalog import Catalog
from billing_core.grace_window import GraceState, GraceWindow, grace_window
from billing_core.plan_subscription import SubscriptionStatus, new_subscription
from billing_core.spend_guard import DenialReason, ProductionHealth, decide, gate_for, production_health
from billing_core.wallet import SubscriptionGate
from tests.unit.domain_builders import NOW, ORG, wallet_account

S = SubscriptionStatus


def past_due(*, since: datetime | None, grace_days: int = 7) -> SubscriptionGate:
    return SubscriptionGate(status=S.PAST_DUE.value, past_due_since=since, grace_days=grace_days)


def test_no_subscription_no_window() -> None:
    assert grace_window(SubscriptionGate(), NOW) == GraceWindow(GraceState.NONE)


@pytest.mark.parametrize("status", [s for s in S if s is not S.PAST_DUE])
def test_only_past_due_has_a_window(status: S) -> None:
    window = grace_window(SubscriptionGate(status=status.value, past_due_since=NOW, grace_days=7), NOW)
    assert window == GraceWindow(GraceState.NONE)
    assert window.ends_at is None and window.started_at is None


def test_window_is_active_from_the_failure_for_the_grace_days() -> None:
    failed = NOW - timedelta(days=2, hours=3)
    window = grace_window(past_due(since=failed), NOW)
    assert window.state is GraceState.ACTIVE
    assert window.started_at == failed
    assert window.ends_at == failed + timedelta(days=7)


def test_window_expires_exactly_at_its_end() -> None:
    gate = past_due(since=NOW - timedelta(days=7))
    assert grace_window(gate, NOW - timedelta(microseconds=1)).state is GraceState.ACTIVE
    assert grace_window(gate, NOW).state is GraceState.EXPIRED
    later = grace_window(gate, NOW + timedelta(days=30))
    assert later.state is GraceState.EXPIRED and later.ends_at == NOW


def test_zero_grace_days_expire_at_once() -> None:
    assert grace_window(past_due(since=NOW, grace_days=0), NOW).state is GraceState.EXPIRED


def test_without_a_recorded_failure_the_window_starts_now() -> None:
    window = grace_window(past_due(since=None, grace_days=3), NOW)
    assert window == GraceWindow(GraceState.ACTIVE, started_at=NOW, ends_at=NOW + timedelta(days=3))


def test_without_a_recorded_failure_production_keeps_running_in_grace() -> None:
    """The live path (spend guard, production health) uses the same fallback: never blocked."""
    wallet = wallet_account(status="past_due", past_due_since=None, grace_days=3)
    decision = decide(wallet, 1, NOW)
    assert decision.allowed and decision.grace_ends_at == NOW + timedelta(days=3)
    health, window = production_health(wallet, NOW)
    assert health is ProductionHealth.GRACE_ACTIVE and window.started_at == NOW


def test_the_spend_guard_blocks_when_the_window_has_ended() -> None:
    wallet = wallet_account(status="past_due", past_due_since=NOW - timedelta(days=3), grace_days=3)
    assert decide(wallet, 1, NOW).reason is DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    assert production_health(wallet, NOW)[1] == grace_window(wallet.gate, NOW)


@pytest.mark.parametrize(("plan", "days"), [("starter", 3), ("pro", 7), ("scale", 10), ("enterprise", 14)])
def test_the_plans_grace_days(catalog: Catalog, plan: str, days: int) -> None:
    grace = catalog.plan(plan).grace_days
    assert grace == days
    gate = past_due(since=NOW, grace_days=grace)
    assert grace_window(gate, NOW + timedelta(days=days) - timedelta(seconds=1)).state is GraceState.ACTIVE
    assert grace_window(gate, NOW + timedelta(days=days)).state is GraceState.EXPIRED


def test_the_gate_derived_from_a_failed_subscription_starts_at_the_failure(catalog: Catalog) -> None:
    failed = NOW - timedelta(days=1)
    sub = new_subscription(organization_id=ORG, plan=catalog.plan("starter"), now=NOW - timedelta(days=40),
                           trial=False, status=S.ACTIVE)
    sub.transition(S.PAST_DUE, failed)
    window = grace_window(gate_for(catalog, sub), NOW)
    assert window == GraceWindow(GraceState.ACTIVE, started_at=failed, ends_at=failed + timedelta(days=3))
    assert grace_window(gate_for(catalog, None), NOW) == GraceWindow(GraceState.NONE)
