"""The production grace window after a payment failure.

From the moment a plan subscription becomes past_due, production keeps running for the plan's
grace days. The window is derived, never stored: ``past_due_since + grace_days``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from billing_core.plan_subscription import PlanSubscription, SubscriptionStatus


class GraceState(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    EXPIRED = "expired"


class GraceWindow(msgspec.Struct, frozen=True):
    state: GraceState
    started_at: datetime | None = None
    ends_at: datetime | None = None


def grace_window(subscription: PlanSubscription | None, grace_days: int, now: datetime) -> GraceWindow:
    """Whether a past_due subscription is still inside its grace window, and when it ends."""
    if subscription is None or subscription.status != SubscriptionStatus.PAST_DUE:
        return GraceWindow(GraceState.NONE)
    started = subscription.past_due_since or subscription.current_period_end
    ends = started + timedelta(days=grace_days)
    state = GraceState.ACTIVE if now < ends else GraceState.EXPIRED
    return GraceWindow(state, started_at=started, ends_at=ends)
