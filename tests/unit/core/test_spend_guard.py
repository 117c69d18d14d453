"""The spend guard's decisions, their order, retry times and the production health view."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from billing_core.grace_window import GraceState
from billing_core.plan_subscription import SubscriptionStatus
from billing_core.spend_guard import (
    DENIAL_MESSAGES,
    DenialReason,
    ProductionHealth,
    SpendWarning,
    available_micros,
    decide,
    production_health,
)
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
TODAY = date(2026, 3, 14)


def wallet(*, balance: int = 100_000_000, status: str | None = SubscriptionStatus.ACTIVE,
           limits: SpendLimits | None = None, today: int = 0, month: int = 0,
           past_due_since: datetime | None = None, grace_days: int = 7) -> WalletAccount:
    return WalletAccount(
        organization_id=uuid.uuid4(), wallet_micros=balance, limits=limits or SpendLimits(),
        gate=SubscriptionGate(status=status, past_due_since=past_due_since, grace_days=grace_days),
        spend_day=TODAY, spent_today_micros=today, spend_month="2026-03", spent_month_micros=month,
    )


def test_allowed_within_balance() -> None:
    decision = decide(wallet(), 1_000_000, NOW)
    assert decision.allowed
    assert decision.reason is None and decision.warning is None and decision.retry_at is None


def test_every_denial_carries_its_message() -> None:
    decision = decide(wallet(status=SubscriptionStatus.CANCELED), 1, NOW)
    assert decision.reason is DenialReason.SUBSCRIPTION_INACTIVE
    assert decision.message == DENIAL_MESSAGES[DenialReason.SUBSCRIPTION_INACTIVE]
    assert set(DENIAL_MESSAGES) == set(DenialReason)


def test_reason_order_payment_failure_before_inactive_budget_and_credit() -> None:
    broke = SpendLimits(daily_budget_micros=10, monthly_cap_micros=10)
    # Everything is wrong at once: unpaid wins.
    w = wallet(balance=0, status=SubscriptionStatus.UNPAID, limits=broke, today=10, month=10)
    assert decide(w, 1, NOW).reason is DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    w.gate = SubscriptionGate(status=SubscriptionStatus.PAUSED)
    assert decide(w, 1, NOW).reason is DenialReason.SUBSCRIPTION_INACTIVE
    w.gate = SubscriptionGate(status=SubscriptionStatus.ACTIVE)
    assert decide(w, 1, NOW).reason is DenialReason.DAILY_BUDGET_REACHED
    w.limits = SpendLimits(monthly_cap_micros=10)
    assert decide(w, 1, NOW).reason is DenialReason.MONTHLY_BUDGET_REACHED
    w.limits = SpendLimits()
    assert decide(w, 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT


def test_daily_budget_retry_at_next_utc_midnight() -> None:
    w = wallet(limits=SpendLimits(daily_budget_micros=5_000_000), today=4_000_000)
    assert decide(w, 1_000_000, NOW).allowed  # exactly up to the budget
    decision = decide(w, 1_000_001, NOW)
    assert decision.reason is DenialReason.DAILY_BUDGET_REACHED
    assert decision.retry_at == datetime(2026, 3, 15, tzinfo=UTC)
    late = datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC)
    assert decide(w, 1_000_001, late).retry_at == datetime(2026, 3, 15, tzinfo=UTC)


def test_daily_budget_spent_blocks_even_zero_amount() -> None:
    w = wallet(limits=SpendLimits(daily_budget_micros=5_000_000), today=5_000_000)
    assert decide(w, 0, NOW).reason is DenialReason.DAILY_BUDGET_REACHED


def test_yesterdays_spend_does_not_count_today() -> None:
    w = wallet(limits=SpendLimits(daily_budget_micros=5_000_000), today=5_000_000)
    assert decide(w, 1_000_000, NOW + timedelta(days=1)).allowed


@pytest.mark.parametrize(("now", "retry"), [
    (NOW, datetime(2026, 4, 1, tzinfo=UTC)),
    (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
])
def test_monthly_cap_retry_at_first_of_next_month(now: datetime, retry: datetime) -> None:
    w = wallet(limits=SpendLimits(monthly_cap_micros=50_000_000), month=49_000_000)
    w.spend_month = f"{now.year:04d}-{now.month:02d}"
    w.spend_day = now.date()
    assert decide(w, 1_000_000, now).allowed
    decision = decide(w, 1_000_001, now)
    assert decision.reason is DenialReason.MONTHLY_BUDGET_REACHED
    assert decision.retry_at == retry


def test_credit_line_and_minimum_at_exact_boundary() -> None:
    limits = SpendLimits(credit_line_micros=50_000_000, minimum_production_credit_micros=2_000_000)
    w = wallet(balance=10_000_000, limits=limits)
    # balance after + line == minimum: allowed; one micro more: denied.
    assert decide(w, 58_000_000, NOW).allowed
    denied = decide(w, 58_000_001, NOW)
    assert denied.reason is DenialReason.INSUFFICIENT_CREDIT
    assert denied.retry_at is None
    assert available_micros(w, NOW) == 58_000_000


def test_insufficient_credit_without_credit_line() -> None:
    w = wallet(balance=1_000_000)
    assert decide(w, 1_000_000, NOW).allowed
    assert decide(w, 1_000_001, NOW).reason is DenialReason.INSUFFICIENT_CREDIT


def test_past_due_within_grace_allowed_with_warning() -> None:
    since = NOW - timedelta(days=2)
    decision = decide(wallet(status=SubscriptionStatus.PAST_DUE, past_due_since=since, grace_days=7), 1, NOW)
    assert decision.allowed
    assert decision.warning is SpendWarning.PAYMENT_FAILURE_GRACE_ACTIVE
    assert decision.grace_ends_at == since + timedelta(days=7)


def test_past_due_grace_expired_denied_at_the_end() -> None:
    since = NOW - timedelta(days=7)
    decision = decide(wallet(status=SubscriptionStatus.PAST_DUE, past_due_since=since, grace_days=7), 1, NOW)
    assert not decision.allowed
    assert decision.reason is DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    just_before = decide(wallet(status=SubscriptionStatus.PAST_DUE, past_due_since=since, grace_days=7), 1,
                         NOW - timedelta(microseconds=1))
    assert just_before.allowed


def test_unpaid_denied() -> None:
    decision = decide(wallet(status=SubscriptionStatus.UNPAID), 0, NOW)
    assert decision.reason is DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    assert decision.retry_at is None


@pytest.mark.parametrize("status", [SubscriptionStatus.CANCELED, SubscriptionStatus.PAUSED,
                                    SubscriptionStatus.INCOMPLETE, SubscriptionStatus.INCOMPLETE_EXPIRED])
def test_inactive_statuses(status: SubscriptionStatus) -> None:
    assert decide(wallet(status=status), 0, NOW).reason is DenialReason.SUBSCRIPTION_INACTIVE


@pytest.mark.parametrize("status", [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING])
def test_active_statuses_allowed(status: SubscriptionStatus) -> None:
    assert decide(wallet(status=status), 1, NOW).allowed


def test_production_health_healthy_and_grace() -> None:
    health, window = production_health(wallet(), NOW)
    assert health is ProductionHealth.HEALTHY
    assert window.state is GraceState.NONE
    since = NOW - timedelta(days=1)
    health, window = production_health(
        wallet(status=SubscriptionStatus.PAST_DUE, past_due_since=since, grace_days=3), NOW)
    assert health is ProductionHealth.GRACE_ACTIVE
    assert window.ends_at == since + timedelta(days=3)


def test_production_health_tells_low_credit_from_payment_failure_and_budget() -> None:
    assert production_health(wallet(balance=0), NOW)[0] is ProductionHealth.BLOCKED_BY_LOW_CREDIT
    # Low credit and a failed payment: the payment failure is the reason shown.
    expired = wallet(balance=0, status=SubscriptionStatus.PAST_DUE, past_due_since=NOW - timedelta(days=10),
                     grace_days=7)
    health, window = production_health(expired, NOW)
    assert health is ProductionHealth.BLOCKED_BY_PAYMENT_FAILURE
    assert window.state is GraceState.EXPIRED
    assert production_health(wallet(status=SubscriptionStatus.UNPAID), NOW)[0] \
        is ProductionHealth.BLOCKED_BY_PAYMENT_FAILURE
    daily = wallet(limits=SpendLimits(daily_budget_micros=1_000), today=1_000)
    assert production_health(daily, NOW)[0] is ProductionHealth.BLOCKED_BY_BUDGET
    monthly = wallet(limits=SpendLimits(monthly_cap_micros=1_000), month=1_000)
    assert production_health(monthly, NOW)[0] is ProductionHealth.BLOCKED_BY_BUDGET


def test_production_health_credit_line_keeps_production_running() -> None:
    w = wallet(balance=0, limits=SpendLimits(credit_line_micros=1))
    assert production_health(w, NOW)[0] is ProductionHealth.HEALTHY


def test_available_micros_takes_the_tightest_limit() -> None:
    limits = SpendLimits(credit_line_micros=5_000_000, daily_budget_micros=20_000_000, monthly_cap_micros=30_000_000)
    w = wallet(balance=100_000_000, limits=limits, today=15_000_000, month=27_000_000)
    assert available_micros(w, NOW) == 3_000_000  # monthly room
    w.spent_month_micros = 0
    assert available_micros(w, NOW) == 5_000_000  # daily room
    w.spent_today_micros = 0
    w.wallet_micros = 1_000_000
    assert available_micros(w, NOW) == 6_000_000  # balance + credit line
    w.wallet_micros = -10_000_000
    assert available_micros(w, NOW) == 0  # never negative
