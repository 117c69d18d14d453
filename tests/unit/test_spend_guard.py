"""The spend guard: every denial reason in its order, budgets at UTC day and month boundaries, the
credit line and minimum production credit, the grace window, and production health."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from adapters.fakes import FixedClock, InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import usage_tx
from billing_core.grace_window import GraceState
from billing_core.spend_guard import (
    DENIAL_MESSAGES,
    Decision,
    DenialReason,
    ProductionHealth,
    SpendWarning,
    available_micros,
    decide,
    next_month_start,
    next_utc_midnight,
    production_health,
)
from billing_core.wallet import SpendLimits, WalletAccount, apply_spend
from tests.unit.domain_builders import CENT, DOLLAR, NOW, ORG, wallet_account

TODAY = NOW.date()
MONTH = "2026-03"


def spent(*, today: int = 0, month: int = 0, **kwargs: object) -> WalletAccount:
    """A wallet with today's and this month's spend counters already at the given values."""
    return wallet_account(spend_day=TODAY, today=today, spend_month=MONTH, month=month, **kwargs)  # type: ignore[arg-type]


def test_allowed_carries_no_reason_message_retry_or_warning() -> None:
    assert decide(spent(), 10 * DOLLAR, NOW) == Decision(allowed=True)


@pytest.mark.parametrize(("reason", "message"), [
    (DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED,
     "Payment failed and the grace window has ended. Update your payment method to resume."),
    (DenialReason.SUBSCRIPTION_INACTIVE, "The plan subscription is not active."),
    (DenialReason.INSUFFICIENT_CREDIT, "Not enough credits. Add credits to resume."),
    (DenialReason.DAILY_BUDGET_REACHED, "The daily credit budget is reached; usage resumes at the next UTC day."),
    (DenialReason.MONTHLY_BUDGET_REACHED, "The monthly budget cap is reached; usage resumes next month."),
    (DenialReason.PROJECT_DAILY_BUDGET_REACHED,
     "The project's daily budget is reached; its usage resumes at the next UTC day."),
    (DenialReason.PROJECT_MONTHLY_BUDGET_REACHED,
     "The project's monthly budget is reached; its usage resumes next month."),
    (DenialReason.TOKEN_DAILY_BUDGET_REACHED,
     "This API token's daily budget is reached; its usage resumes at the next UTC day."),
    (DenialReason.TOKEN_MONTHLY_BUDGET_REACHED,
     "This API token's monthly budget is reached; its usage resumes next month."),
])
def test_reason_codes_and_messages(reason: DenialReason, message: str) -> None:
    assert DENIAL_MESSAGES[reason] == message
    assert {r.value for r in DenialReason} == {"payment_failure_grace_expired", "subscription_inactive",
                                               "insufficient_credit", "daily_budget_reached",
                                               "monthly_budget_reached", "project_daily_budget_reached",
                                               "project_monthly_budget_reached", "token_daily_budget_reached",
                                               "token_monthly_budget_reached"}


# --------------------------------------------------------------------------- order of reasons


def test_denial_reasons_in_order_as_each_cause_is_removed() -> None:
    """Everything is wrong at once; fixing one cause at a time reveals the next reason."""
    expected = [
        ("unpaid", DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED),
        ("paused", DenialReason.SUBSCRIPTION_INACTIVE),
        ("active", DenialReason.DAILY_BUDGET_REACHED),
    ]
    for status, reason in expected:
        w = spent(wallet=0, status=status, today=10, month=10,
                  limits=SpendLimits(daily_budget_micros=10, monthly_cap_micros=10))
        decision = decide(w, 1, NOW)
        assert (decision.allowed, decision.reason, decision.message) == (False, reason, DENIAL_MESSAGES[reason])
    w.limits = SpendLimits(monthly_cap_micros=10)
    assert decide(w, 1, NOW).reason is DenialReason.MONTHLY_BUDGET_REACHED
    w.limits = SpendLimits()
    assert decide(w, 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT
    w.wallet_micros = 1
    assert decide(w, 1, NOW).allowed


def test_expired_grace_comes_before_inactive_budget_and_credit() -> None:
    w = spent(wallet=0, status="past_due", past_due_since=NOW - timedelta(days=8), grace_days=7, today=10,
              limits=SpendLimits(daily_budget_micros=10))
    assert decide(w, 1, NOW).reason is DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED


def test_budgets_come_before_credit_because_they_lift_by_themselves() -> None:
    w = spent(wallet=0, today=5 * DOLLAR, limits=SpendLimits(daily_budget_micros=5 * DOLLAR))
    decision = decide(w, 1, NOW)
    assert decision.reason is DenialReason.DAILY_BUDGET_REACHED
    assert decision.retry_at == datetime(2026, 3, 15, tzinfo=UTC)


# --------------------------------------------------------------------------- subscription gate


@pytest.mark.parametrize("status", ["canceled", "paused", "incomplete", "incomplete_expired"])
def test_inactive_subscriptions_are_denied_without_retry(status: str) -> None:
    decision = decide(spent(status=status), 0, NOW)
    assert decision.reason is DenialReason.SUBSCRIPTION_INACTIVE
    assert decision.retry_at is None


def test_unpaid_is_a_payment_failure_even_for_a_zero_amount() -> None:
    decision = decide(spent(status="unpaid"), 0, NOW)
    assert decision.reason is DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    assert decision.retry_at is None


@pytest.mark.parametrize("status", ["active", "trialing", None])
def test_active_trialing_and_plan_less_wallets_only_answer_to_credit(status: str | None) -> None:
    assert decide(spent(status=status, wallet=DOLLAR), DOLLAR, NOW).allowed
    assert decide(spent(status=status, wallet=DOLLAR), DOLLAR + 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT


def test_past_due_in_grace_is_allowed_with_a_warning_and_the_end() -> None:
    failed = NOW - timedelta(days=2)
    decision = decide(spent(status="past_due", past_due_since=failed, grace_days=7), DOLLAR, NOW)
    assert decision.allowed
    assert decision.warning is SpendWarning.PAYMENT_FAILURE_GRACE_ACTIVE
    assert decision.warning.value == "payment_failure_grace_active"
    assert decision.grace_ends_at == failed + timedelta(days=7)
    assert decision.reason is None


def test_past_due_in_grace_still_answers_to_credit_and_budgets() -> None:
    failed = NOW - timedelta(days=2)
    poor = spent(status="past_due", past_due_since=failed, wallet=0)
    assert decide(poor, 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT
    capped = spent(status="past_due", past_due_since=failed, today=DOLLAR,
                   limits=SpendLimits(daily_budget_micros=DOLLAR))
    assert decide(capped, 1, NOW).reason is DenialReason.DAILY_BUDGET_REACHED


def test_past_due_grace_expires_at_its_end() -> None:
    failed = NOW - timedelta(days=7)
    w = spent(status="past_due", past_due_since=failed, grace_days=7)
    assert decide(w, 1, NOW - timedelta(microseconds=1)).allowed
    expired = decide(w, 1, NOW)
    assert expired.reason is DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    assert expired.warning is None and expired.grace_ends_at is None


# --------------------------------------------------------------------------- daily budget


def test_the_call_that_crosses_the_daily_budget_still_runs() -> None:
    """The rule: deny iff today's usage already reached the budget; the call's own amount never
    decides. One micro under the budget, any call runs; at the budget, none."""
    w = spent(today=4 * DOLLAR, limits=SpendLimits(daily_budget_micros=5 * DOLLAR))
    assert decide(w, DOLLAR, NOW).allowed  # lands exactly on the budget
    assert decide(w, DOLLAR + 1, NOW).allowed  # one micro over: the crossing call runs
    assert decide(w, 50 * DOLLAR, NOW).allowed  # in full, whatever it costs (credit permitting)
    w.spent_today_micros = 5 * DOLLAR - 1
    assert decide(w, DOLLAR, NOW).allowed
    for today in (5 * DOLLAR, 5 * DOLLAR + 1):  # exactly at the budget, one micro over it
        w.spent_today_micros = today
        denied = decide(w, 1, NOW)
        assert denied.reason is DenialReason.DAILY_BUDGET_REACHED
        assert denied.retry_at == datetime(2026, 3, 15, tzinfo=UTC)


def test_the_crossing_call_is_debited_in_full_then_the_next_is_denied_until_midnight() -> None:
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        uow.wallets.create(wallet_account(limits=SpendLimits(daily_budget_micros=5 * DOLLAR)))
        uow.commit()

    def debit(amount: int, key: str, at: datetime = NOW) -> Decision:
        with InMemoryUnitOfWork(store) as uow:
            outcome = uow.wallets.debit(ORG, amount, at, usage_tx(ORG, amount, key, at=at))
            uow.commit()
        return outcome.decision

    assert debit(4 * DOLLAR, "a").allowed
    assert debit(3 * DOLLAR, "crossing").allowed
    with InMemoryUnitOfWork(store) as uow:
        w = uow.wallets.get(ORG)
    assert (w.spent_today_micros, w.balance_micros) == (7 * DOLLAR, 93 * DOLLAR)
    assert debit(1, "next").reason is DenialReason.DAILY_BUDGET_REACHED
    assert debit(1, "midnight", datetime(2026, 3, 15, tzinfo=UTC)).allowed


def test_a_spent_daily_budget_blocks_even_a_zero_amount_until_midnight() -> None:
    w = spent(today=5 * DOLLAR, limits=SpendLimits(daily_budget_micros=5 * DOLLAR))
    assert decide(w, 0, NOW).reason is DenialReason.DAILY_BUDGET_REACHED
    last_second = datetime(2026, 3, 14, 23, 59, 59, 999999, tzinfo=UTC)
    assert decide(w, 0, last_second).retry_at == datetime(2026, 3, 15, tzinfo=UTC)
    assert decide(w, DOLLAR, datetime(2026, 3, 15, tzinfo=UTC)).allowed


def test_daily_budget_resets_at_utc_midnight_through_storage() -> None:
    clock = FixedClock(datetime(2026, 3, 14, 23, 0, tzinfo=UTC))
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        uow.wallets.create(wallet_account(limits=SpendLimits(daily_budget_micros=3 * DOLLAR)))
        uow.commit()

    def debit(amount: int, key: str) -> Decision:
        with InMemoryUnitOfWork(store) as uow:
            outcome = uow.wallets.debit(ORG, amount, clock.now(), usage_tx(ORG, amount, key, at=clock.now()))
            uow.commit()
        return outcome.decision

    assert debit(2 * DOLLAR, "a").allowed
    assert debit(DOLLAR, "b").allowed
    refused = debit(1, "c")
    assert refused.reason is DenialReason.DAILY_BUDGET_REACHED
    assert refused.retry_at == datetime(2026, 3, 15, tzinfo=UTC)
    clock.set(datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC))
    assert debit(1, "d").reason is DenialReason.DAILY_BUDGET_REACHED
    clock.set(refused.retry_at)
    assert debit(3 * DOLLAR, "e").allowed
    with InMemoryUnitOfWork(store) as uow:
        w = uow.wallets.get(ORG)
    assert (w.spend_day, w.spent_today_micros, w.spent_yesterday_micros) == (date(2026, 3, 15), 3 * DOLLAR,
                                                                             3 * DOLLAR)


# --------------------------------------------------------------------------- monthly cap


@pytest.mark.parametrize(("now", "retry"), [
    (datetime(2026, 3, 14, 9, 30, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
    (datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
    (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    (datetime(2028, 2, 29, 12, 0, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC)),
])
def test_monthly_cap_lifts_on_the_first_of_next_month(now: datetime, retry: datetime) -> None:
    w = wallet_account(limits=SpendLimits(monthly_cap_micros=50 * DOLLAR), spend_day=now.date(),
                       spend_month=f"{now.year:04d}-{now.month:02d}", month=49 * DOLLAR)
    assert decide(w, DOLLAR, now).allowed
    assert decide(w, DOLLAR + 1, now).allowed  # the call that crosses the cap runs, as for the day
    w.spent_month_micros = 50 * DOLLAR
    denied = decide(w, 1, now)
    assert denied.reason is DenialReason.MONTHLY_BUDGET_REACHED
    assert denied.retry_at == retry
    assert next_month_start(now) == retry
    assert decide(w, 50 * DOLLAR, retry).allowed  # a new month starts from zero


def test_monthly_cap_reached_blocks_a_zero_amount() -> None:
    w = spent(month=10 * DOLLAR, limits=SpendLimits(monthly_cap_micros=10 * DOLLAR))
    assert decide(w, 0, NOW).reason is DenialReason.MONTHLY_BUDGET_REACHED


def test_daily_budget_is_checked_before_the_monthly_cap() -> None:
    w = spent(today=DOLLAR, month=DOLLAR, limits=SpendLimits(daily_budget_micros=DOLLAR, monthly_cap_micros=DOLLAR))
    assert decide(w, 1, NOW).reason is DenialReason.DAILY_BUDGET_REACHED


def test_retry_helpers() -> None:
    assert next_utc_midnight(datetime(2026, 3, 14, 0, 0, tzinfo=UTC)) == datetime(2026, 3, 15, tzinfo=UTC)
    assert next_utc_midnight(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_utc_midnight(datetime(2028, 2, 28, 5, tzinfo=UTC)) == datetime(2028, 2, 29, tzinfo=UTC)
    assert next_month_start(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 2, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- credit


def test_insufficient_credit_without_a_credit_line() -> None:
    w = spent(wallet=DOLLAR)
    assert decide(w, DOLLAR, NOW).allowed
    denied = decide(w, DOLLAR + 1, NOW)
    assert denied.reason is DenialReason.INSUFFICIENT_CREDIT
    assert denied.retry_at is None


def test_uninvoiced_usage_counts_against_the_balance() -> None:
    w = spent(wallet=10 * DOLLAR, unbilled=-9 * DOLLAR)
    assert decide(w, DOLLAR, NOW).allowed
    assert decide(w, DOLLAR + 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT


def test_the_credit_line_lets_the_balance_go_negative() -> None:
    w = spent(wallet=10 * DOLLAR, limits=SpendLimits(credit_line_micros=50 * DOLLAR))
    assert decide(w, 60 * DOLLAR, NOW).allowed
    assert decide(w, 60 * DOLLAR + 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT
    already_negative = spent(wallet=0, unbilled=-45 * DOLLAR, limits=SpendLimits(credit_line_micros=50 * DOLLAR))
    assert decide(already_negative, 5 * DOLLAR, NOW).allowed
    assert decide(already_negative, 5 * DOLLAR + 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT


def test_minimum_production_credit_is_kept_after_the_credit_line() -> None:
    limits = SpendLimits(credit_line_micros=50 * DOLLAR, minimum_production_credit_micros=2 * DOLLAR)
    w = spent(wallet=10 * DOLLAR, limits=limits)
    # balance after + line must stay >= minimum: 10 - 58 + 50 == 2.
    assert decide(w, 58 * DOLLAR, NOW).allowed
    assert decide(w, 58 * DOLLAR + 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT
    no_line = spent(wallet=3 * DOLLAR, limits=SpendLimits(minimum_production_credit_micros=2 * DOLLAR))
    assert decide(no_line, DOLLAR, NOW).allowed
    assert decide(no_line, DOLLAR + 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT
    below = spent(wallet=DOLLAR, limits=SpendLimits(minimum_production_credit_micros=2 * DOLLAR))
    assert decide(below, 0, NOW).reason is DenialReason.INSUFFICIENT_CREDIT


# --------------------------------------------------------------------------- production health


def test_health_healthy() -> None:
    health, window = production_health(spent(), NOW)
    assert health is ProductionHealth.HEALTHY and health.value == "healthy"
    assert window.state is GraceState.NONE


def test_health_grace_active_reports_when_it_ends() -> None:
    failed = NOW - timedelta(days=1)
    health, window = production_health(spent(status="past_due", past_due_since=failed, grace_days=3), NOW)
    assert health is ProductionHealth.GRACE_ACTIVE and health.value == "grace_active"
    assert (window.state, window.started_at, window.ends_at) == (GraceState.ACTIVE, failed,
                                                                 failed + timedelta(days=3))


def test_health_blocked_by_low_credit_is_not_a_payment_failure() -> None:
    health, window = production_health(spent(wallet=0), NOW)
    assert health is ProductionHealth.BLOCKED_BY_LOW_CREDIT and health.value == "blocked_by_low_credit"
    assert window.state is GraceState.NONE
    # In grace but out of credit: the wallet is what blocks production, and the grace window still shows.
    in_grace = spent(wallet=0, status="past_due", past_due_since=NOW - timedelta(days=1))
    health, window = production_health(in_grace, NOW)
    assert health is ProductionHealth.BLOCKED_BY_LOW_CREDIT
    assert window.state is GraceState.ACTIVE


def test_health_blocked_by_payment_failure_wins_over_low_credit() -> None:
    expired = spent(wallet=0, status="past_due", past_due_since=NOW - timedelta(days=10), grace_days=7)
    health, window = production_health(expired, NOW)
    assert health is ProductionHealth.BLOCKED_BY_PAYMENT_FAILURE and health.value == "blocked_by_payment_failure"
    assert window.state is GraceState.EXPIRED
    assert window.ends_at == NOW - timedelta(days=3)
    assert production_health(spent(status="unpaid"), NOW)[0] is ProductionHealth.BLOCKED_BY_PAYMENT_FAILURE


@pytest.mark.parametrize("status", ["canceled", "paused", "incomplete", "incomplete_expired"])
def test_health_of_an_inactive_subscription_is_not_a_payment_failure(status: str) -> None:
    """Seed statuses: "Canceled | Red | Subscription is canceled", "Paused | Yellow | Subscription is
    paused", "Incomplete | Yellow | Awaiting payment confirmation". None of them is "Payment failed",
    and the seed's billing views "distinguish delinquent subscription recovery from low-credit wallet
    readiness": these get a value of their own, and nothing is available to use."""
    w = spent(wallet=100 * DOLLAR, status=status)
    health, window = production_health(w, NOW)
    assert health is ProductionHealth.BLOCKED_BY_INACTIVE_SUBSCRIPTION
    assert health.value == "blocked_by_inactive_subscription"
    assert window.state is GraceState.NONE
    assert available_micros(w, NOW) == 0


def test_available_is_zero_while_payment_failure_blocks() -> None:
    expired = spent(wallet=100 * DOLLAR, status="past_due", past_due_since=NOW - timedelta(days=10), grace_days=7)
    assert available_micros(expired, NOW) == 0
    assert available_micros(spent(wallet=100 * DOLLAR, status="unpaid"), NOW) == 0
    in_grace = spent(wallet=100 * DOLLAR, status="past_due", past_due_since=NOW - timedelta(days=1), grace_days=7)
    assert available_micros(in_grace, NOW) == 100 * DOLLAR
    assert available_micros(spent(wallet=100 * DOLLAR, status="active"), NOW) == 100 * DOLLAR


def test_health_blocked_by_budget() -> None:
    daily = spent(today=CENT, limits=SpendLimits(daily_budget_micros=CENT))
    assert production_health(daily, NOW)[0] is ProductionHealth.BLOCKED_BY_BUDGET
    monthly = spent(month=CENT, limits=SpendLimits(monthly_cap_micros=CENT))
    assert production_health(monthly, NOW)[0] is ProductionHealth.BLOCKED_BY_BUDGET
    assert production_health(daily, NOW + timedelta(days=1))[0] is ProductionHealth.HEALTHY


def test_health_on_a_negative_balance_within_the_credit_line() -> None:
    w = spent(wallet=0, unbilled=-10 * DOLLAR, limits=SpendLimits(credit_line_micros=10 * DOLLAR + 1))
    assert production_health(w, NOW)[0] is ProductionHealth.HEALTHY
    w.limits = SpendLimits(credit_line_micros=10 * DOLLAR)
    assert production_health(w, NOW)[0] is ProductionHealth.BLOCKED_BY_LOW_CREDIT


# --------------------------------------------------------------------------- available to use


def test_available_takes_the_tightest_limit_and_is_never_negative() -> None:
    limits = SpendLimits(credit_line_micros=5 * DOLLAR, minimum_production_credit_micros=DOLLAR,
                         daily_budget_micros=20 * DOLLAR, monthly_cap_micros=30 * DOLLAR)
    w = spent(wallet=100 * DOLLAR, limits=limits, today=15 * DOLLAR, month=27 * DOLLAR)
    assert available_micros(w, NOW) == 3 * DOLLAR  # monthly room
    w.spent_month_micros = 0
    assert available_micros(w, NOW) == 5 * DOLLAR  # daily room
    w.spent_today_micros = 0
    w.wallet_micros = 2 * DOLLAR
    assert available_micros(w, NOW) == 6 * DOLLAR  # balance + line - minimum
    w.wallet_micros = -10 * DOLLAR
    assert available_micros(w, NOW) == 0
    # Tomorrow the daily budget is whole again.
    rich = spent(wallet=100 * DOLLAR, today=20 * DOLLAR, limits=SpendLimits(daily_budget_micros=20 * DOLLAR))
    assert available_micros(rich, NOW) == 0
    assert available_micros(rich, NOW + timedelta(days=1)) == 20 * DOLLAR


def test_available_is_what_can_be_used_before_calls_are_denied() -> None:
    """Credit bounds each call; a budget bounds what may be used before later calls are denied
    (the crossing call itself still runs)."""
    limits = SpendLimits(credit_line_micros=7 * DOLLAR, minimum_production_credit_micros=DOLLAR,
                         daily_budget_micros=9 * DOLLAR, monthly_cap_micros=40 * DOLLAR)
    credit_bound = spent(wallet=3 * DOLLAR, limits=limits)
    room = available_micros(credit_bound, NOW)
    assert room == 9 * DOLLAR
    assert decide(credit_bound, room, NOW).allowed
    assert decide(credit_bound, room + 1, NOW).reason is DenialReason.INSUFFICIENT_CREDIT
    for today, month, reason in [(4 * DOLLAR, 0, DenialReason.DAILY_BUDGET_REACHED),
                                 (0, 38 * DOLLAR, DenialReason.MONTHLY_BUDGET_REACHED)]:
        w = spent(wallet=50 * DOLLAR, today=today, month=month, limits=limits)
        room = available_micros(w, NOW)
        assert room > 0
        assert decide(w, room, NOW).allowed
        apply_spend(w, room, NOW)
        assert decide(w, 1, NOW).reason is reason
