"""The organization's tier: a plan subscription with the seed's eight lifecycle statuses.

Statuses follow Stripe's subscription statuses; each has the seed's color and user message.
A status changes only along :data:`TRANSITIONS`; anything else raises :class:`IllegalTransition`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from billing_core.catalog import Plan, PlanCode
from billing_core.errors import IllegalTransition


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    PAUSED = "paused"


class StatusColor(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class StatusPresentation(msgspec.Struct, frozen=True):
    label: str
    color: StatusColor
    message: str


PRESENTATION: dict[SubscriptionStatus, StatusPresentation] = {
    SubscriptionStatus.ACTIVE: StatusPresentation("Active", StatusColor.GREEN, "Subscription is current"),
    SubscriptionStatus.TRIALING: StatusPresentation("Trialing", StatusColor.GREEN, "Free trial is running"),
    SubscriptionStatus.PAST_DUE: StatusPresentation(
        "Past due", StatusColor.RED, "Payment failed — update your payment method"),
    SubscriptionStatus.CANCELED: StatusPresentation("Canceled", StatusColor.RED, "Subscription is canceled"),
    SubscriptionStatus.UNPAID: StatusPresentation(
        "Unpaid", StatusColor.RED, "Invoice unpaid — update your payment method"),
    SubscriptionStatus.INCOMPLETE: StatusPresentation(
        "Incomplete", StatusColor.YELLOW, "Awaiting payment confirmation"),
    SubscriptionStatus.INCOMPLETE_EXPIRED: StatusPresentation(
        "Incomplete expired", StatusColor.RED, "Payment window expired — restart checkout"),
    SubscriptionStatus.PAUSED: StatusPresentation("Paused", StatusColor.YELLOW, "Subscription is paused"),
}

S = SubscriptionStatus
# Mirrors the lifecycle Stripe documents: incomplete either pays (active/trialing) or expires after
# 23 hours; a failed renewal goes past_due, then unpaid or canceled; paused resumes or cancels.
# Terminal states (canceled, incomplete_expired) lead nowhere: a new checkout makes a new subscription.
TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    S.INCOMPLETE: frozenset({S.ACTIVE, S.TRIALING, S.INCOMPLETE_EXPIRED, S.CANCELED}),
    S.TRIALING: frozenset({S.ACTIVE, S.PAST_DUE, S.CANCELED, S.PAUSED, S.UNPAID}),
    S.ACTIVE: frozenset({S.PAST_DUE, S.CANCELED, S.PAUSED, S.UNPAID}),
    S.PAST_DUE: frozenset({S.ACTIVE, S.UNPAID, S.CANCELED}),
    S.UNPAID: frozenset({S.ACTIVE, S.CANCELED}),
    S.PAUSED: frozenset({S.ACTIVE, S.CANCELED}),
    S.CANCELED: frozenset(),
    S.INCOMPLETE_EXPIRED: frozenset(),
}

# The status groupings, each defined here once.
IN_GOOD_STANDING = frozenset({S.ACTIVE, S.TRIALING})
"""Running and paid up (or on trial): entering one clears ``past_due_since``."""
SUBSCRIBED = frozenset({S.ACTIVE, S.TRIALING, S.PAST_DUE})
"""The organization is considered subscribed (credit packs need one of these)."""
ENDED = frozenset({S.CANCELED, S.INCOMPLETE_EXPIRED})
"""Over: the workspace can start a new checkout."""
PAYMENT_FAILED = frozenset({S.PAST_DUE, S.UNPAID})
"""A payment failed and is not recovered: the overview shows the past-due banner."""
DELINQUENT = frozenset({S.UNPAID})
"""Blocked for payment failure with no grace window left: the spend guard denies every call."""
INACTIVE = frozenset({S.CANCELED, S.INCOMPLETE, S.INCOMPLETE_EXPIRED, S.PAUSED})
"""Not running, for a reason other than payment failure: the spend guard denies every call."""


def can_transition(current: SubscriptionStatus, target: SubscriptionStatus) -> bool:
    return target in TRANSITIONS[current]


class PlanSubscription(msgspec.Struct, kw_only=True):
    """An organization's subscription to a plan. ``past_due_since`` starts the grace window."""

    id: uuid.UUID
    organization_id: uuid.UUID
    plan: PlanCode
    status: SubscriptionStatus
    created_at: datetime
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None = None
    past_due_since: datetime | None = None
    canceled_at: datetime | None = None
    provider_subscription_id: str | None = None
    provider_state_at: datetime | None = None
    """When the provider sent the state last applied (its event's ``created``): an event about an
    older state arrives late and is ignored."""
    version: int = 0
    """The stored version this copy was loaded at; the repository's save bumps it."""

    @property
    def presentation(self) -> StatusPresentation:
        return PRESENTATION[self.status]

    @property
    def is_subscribed(self) -> bool:
        return self.status in SUBSCRIBED

    def transition(self, target: SubscriptionStatus, at: datetime) -> None:
        """Move to ``target``; staying in the same status is a no-op (webhooks repeat themselves)."""
        if target == self.status:
            return
        if not can_transition(self.status, target):
            raise IllegalTransition(self.status.value, target.value)
        if target == S.PAST_DUE:
            self.past_due_since = at
        elif target in IN_GOOD_STANDING:
            self.past_due_since = None
        if target == S.CANCELED:
            self.canceled_at = at
        self.status = target


def period_end(start: datetime, interval: str) -> datetime:
    """End of a billing period that starts at ``start``: same day next month (clamped) or next year."""
    if interval == "year":
        try:
            return start.replace(year=start.year + 1)
        except ValueError:  # 29 February
            return start.replace(year=start.year + 1, day=28)
    month = start.month % 12 + 1
    year = start.year + (1 if start.month == 12 else 0)
    for day in (start.day, 30, 29, 28):
        try:
            return start.replace(year=year, month=month, day=min(day, start.day))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")  # pragma: no cover


def new_subscription(*, organization_id: uuid.UUID, plan: Plan, now: datetime, trial: bool,
                     status: SubscriptionStatus, subscription_id: uuid.UUID | None = None,
                     provider_subscription_id: str | None = None) -> PlanSubscription:
    """A fresh subscription starting now, with a trial end when ``trial`` is set."""
    trial_end = now + timedelta(days=plan.trial_days) if trial else None
    return PlanSubscription(
        id=subscription_id or uuid.uuid4(), organization_id=organization_id, plan=plan.code,
        status=status, created_at=now, current_period_start=now,
        current_period_end=trial_end or period_end(now, plan.interval), trial_end=trial_end,
        provider_subscription_id=provider_subscription_id,
        # Born past_due (the provider says so): the grace window starts now, as after a transition.
        past_due_since=now if status == S.PAST_DUE else None,
    )
