"""Plan subscriptions: the seed's eight statuses, their colors and messages, and every transition."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing_core.catalog import Catalog, PlanCode
from billing_core.errors import Conflict, IllegalTransition
from billing_core.plan_subscription import (
    DELINQUENT,
    ENDED,
    IN_GOOD_STANDING,
    INACTIVE,
    PAYMENT_FAILED,
    PRESENTATION,
    SUBSCRIBED,
    TRANSITIONS,
    PlanSubscription,
    StatusColor,
    SubscriptionStatus,
    can_transition,
    new_subscription,
    period_end,
)
from tests.unit.domain_builders import NOW, ORG

S = SubscriptionStatus

# The seed's table, word for word: | Status | Color | Meaning |
SEED_STATUSES = [
    (S.ACTIVE, "Active", "green", "Subscription is current"),
    (S.TRIALING, "Trialing", "green", "Free trial is running"),
    (S.PAST_DUE, "Past due", "red", "Payment failed — update your payment method"),
    (S.CANCELED, "Canceled", "red", "Subscription is canceled"),
    (S.UNPAID, "Unpaid", "red", "Invoice unpaid — update your payment method"),
    (S.INCOMPLETE, "Incomplete", "yellow", "Awaiting payment confirmation"),
    (S.INCOMPLETE_EXPIRED, "Incomplete expired", "red", "Payment window expired — restart checkout"),
    (S.PAUSED, "Paused", "yellow", "Subscription is paused"),
]

# Stripe's subscription lifecycle, written out independently of the module's table.
ALLOWED = {
    (S.INCOMPLETE, S.ACTIVE), (S.INCOMPLETE, S.TRIALING), (S.INCOMPLETE, S.INCOMPLETE_EXPIRED),
    (S.INCOMPLETE, S.CANCELED),
    (S.TRIALING, S.ACTIVE), (S.TRIALING, S.PAST_DUE), (S.TRIALING, S.CANCELED), (S.TRIALING, S.PAUSED),
    (S.TRIALING, S.UNPAID),
    (S.ACTIVE, S.PAST_DUE), (S.ACTIVE, S.CANCELED), (S.ACTIVE, S.PAUSED), (S.ACTIVE, S.UNPAID),
    (S.PAST_DUE, S.ACTIVE), (S.PAST_DUE, S.UNPAID), (S.PAST_DUE, S.CANCELED),
    (S.UNPAID, S.ACTIVE), (S.UNPAID, S.CANCELED),
    (S.PAUSED, S.ACTIVE), (S.PAUSED, S.CANCELED),
}
PAIRS = [(a, b) for a, b in itertools.product(S, S) if a != b]


def subscription(status: S, *, past_due_since: datetime | None = None) -> PlanSubscription:
    return PlanSubscription(id=uuid.uuid4(), organization_id=ORG, plan=PlanCode.PRO, status=status, created_at=NOW,
                            current_period_start=NOW, current_period_end=NOW + timedelta(days=31),
                            past_due_since=past_due_since)


def test_there_are_exactly_the_seeds_eight_statuses() -> None:
    assert {s.value for s in S} == {"active", "trialing", "past_due", "canceled", "unpaid", "incomplete",
                                    "incomplete_expired", "paused"}
    assert set(PRESENTATION) == set(S) == set(TRANSITIONS)


@pytest.mark.parametrize(("status", "label", "color", "message"), SEED_STATUSES)
def test_color_and_message_exactly_as_the_seed(status: S, label: str, color: str, message: str) -> None:
    shown = subscription(status).presentation
    assert (shown.label, shown.color.value, shown.message) == (label, color, message)
    assert isinstance(shown.color, StatusColor)


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_pair_of_statuses(current: S, target: S) -> None:
    sub = subscription(current)
    at = NOW + timedelta(hours=5)
    assert can_transition(current, target) is ((current, target) in ALLOWED)
    if (current, target) in ALLOWED:
        sub.transition(target, at)
        assert sub.status is target
    else:
        with pytest.raises(IllegalTransition) as info:
            sub.transition(target, at)
        assert isinstance(info.value, Conflict)
        assert info.value.code == "illegal_transition"
        assert (info.value.current, info.value.target) == (current.value, target.value)
        assert str(info.value) == f"a subscription cannot go from {current.value} to {target.value}"
        assert sub.status is current


@pytest.mark.parametrize("status", list(S))
def test_staying_in_a_status_is_a_no_op(status: S) -> None:
    since = NOW - timedelta(days=1) if status is S.PAST_DUE else None
    sub = subscription(status, past_due_since=since)
    sub.transition(status, NOW + timedelta(days=2))
    assert sub.status is status
    assert sub.past_due_since == since  # a repeated past_due webhook does not restart the grace window


@pytest.mark.parametrize("terminal", [S.CANCELED, S.INCOMPLETE_EXPIRED])
def test_terminal_statuses_lead_nowhere(terminal: S) -> None:
    assert TRANSITIONS[terminal] == frozenset()
    assert terminal in ENDED


def test_past_due_since_is_set_when_payment_fails_and_cleared_on_recovery() -> None:
    sub = subscription(S.ACTIVE)
    failed_at = NOW + timedelta(days=3)
    sub.transition(S.PAST_DUE, failed_at)
    assert sub.past_due_since == failed_at
    sub.transition(S.ACTIVE, failed_at + timedelta(days=1))
    assert sub.past_due_since is None
    sub.transition(S.PAST_DUE, failed_at + timedelta(days=30))
    assert sub.past_due_since == failed_at + timedelta(days=30)  # a new failure starts a new window


def test_past_due_since_survives_unpaid_and_clears_when_paid() -> None:
    sub = subscription(S.PAST_DUE, past_due_since=NOW)
    sub.transition(S.UNPAID, NOW + timedelta(days=7))
    assert sub.past_due_since == NOW
    sub.transition(S.ACTIVE, NOW + timedelta(days=8))
    assert sub.past_due_since is None


def test_trial_payment_failure_starts_the_window_too() -> None:
    sub = subscription(S.TRIALING)
    sub.transition(S.PAST_DUE, NOW)
    assert sub.past_due_since == NOW


def test_cancel_stamps_canceled_at() -> None:
    sub = subscription(S.PAST_DUE, past_due_since=NOW)
    sub.transition(S.CANCELED, NOW + timedelta(days=9))
    assert sub.canceled_at == NOW + timedelta(days=9)
    assert sub.presentation.color is StatusColor.RED


def test_subscribed_statuses() -> None:
    assert {S.ACTIVE, S.TRIALING, S.PAST_DUE} == SUBSCRIBED
    for status in S:
        assert subscription(status).is_subscribed is (status in SUBSCRIBED)


@pytest.mark.parametrize(("start", "end"), [
    (datetime(2026, 1, 15, 8, 30, tzinfo=UTC), datetime(2026, 2, 15, 8, 30, tzinfo=UTC)),
    (datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),  # clamped
    (datetime(2028, 1, 31, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),  # leap year
    (datetime(2026, 1, 30, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2026, 1, 29, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2028, 1, 29, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),
    (datetime(2026, 3, 31, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)),
    (datetime(2026, 5, 31, 23, 59, tzinfo=UTC), datetime(2026, 6, 30, 23, 59, tzinfo=UTC)),
    (datetime(2026, 8, 31, tzinfo=UTC), datetime(2026, 9, 30, tzinfo=UTC)),
    (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 31, tzinfo=UTC)),  # year boundary
    (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    (datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 28, tzinfo=UTC)),
])
def test_monthly_period_end_clamps_to_the_last_day(start: datetime, end: datetime) -> None:
    assert period_end(start, "month") == end


@pytest.mark.parametrize(("start", "end"), [
    (datetime(2026, 3, 14, tzinfo=UTC), datetime(2027, 3, 14, tzinfo=UTC)),
    (datetime(2028, 2, 29, tzinfo=UTC), datetime(2029, 2, 28, tzinfo=UTC)),
])
def test_yearly_period_end(start: datetime, end: datetime) -> None:
    assert period_end(start, "year") == end


def test_new_subscription_without_trial(catalog: Catalog) -> None:
    sub = new_subscription(organization_id=ORG, plan=catalog.plan("pro"), now=NOW, trial=False,
                           status=S.INCOMPLETE, provider_subscription_id="sub_1")
    assert (sub.plan, sub.status, sub.trial_end) == (PlanCode.PRO, S.INCOMPLETE, None)
    assert sub.current_period_start == sub.created_at == NOW
    assert sub.current_period_end == datetime(2026, 4, 14, 9, 30, tzinfo=UTC)
    assert sub.provider_subscription_id == "sub_1"
    assert sub.past_due_since is None


def test_a_subscription_born_past_due_starts_its_grace_window(catalog: Catalog) -> None:
    """Otherwise the wallet gate would have no start and the grace window would never end."""
    sub = new_subscription(organization_id=ORG, plan=catalog.plan("pro"), now=NOW, trial=False, status=S.PAST_DUE)
    assert sub.past_due_since == NOW
    for status in (S.ACTIVE, S.TRIALING, S.INCOMPLETE):
        fresh = new_subscription(organization_id=ORG, plan=catalog.plan("pro"), now=NOW, trial=False, status=status)
        assert fresh.past_due_since is None


def test_new_subscription_with_trial_ends_the_first_period_with_the_trial(catalog: Catalog) -> None:
    sub_id = uuid.uuid4()
    enterprise = catalog.plan("enterprise")
    sub = new_subscription(organization_id=ORG, plan=enterprise, now=NOW, trial=True, status=S.TRIALING,
                           subscription_id=sub_id)
    assert sub.id == sub_id
    assert sub.trial_end == NOW + timedelta(days=enterprise.trial_days) == NOW + timedelta(days=30)
    assert sub.current_period_end == sub.trial_end


def test_the_status_groupings_split_every_status_one_way_for_the_spend_guard() -> None:
    """Good standing, past_due (in its grace window), delinquent, inactive: each status is in
    exactly one; payment failure is past_due or unpaid; subscribed is good standing or past_due."""
    groups = [IN_GOOD_STANDING, frozenset({S.PAST_DUE}), DELINQUENT, INACTIVE]
    for status in S:
        assert sum(status in group for group in groups) == 1, status
    assert {S.PAST_DUE} | DELINQUENT == PAYMENT_FAILED
    assert IN_GOOD_STANDING | {S.PAST_DUE} == SUBSCRIBED
    assert ENDED < INACTIVE
