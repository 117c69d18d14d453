"""The production grace window after a payment failure: the one rule.

From the moment a plan subscription becomes past_due, production keeps running for the plan's
grace days. The window is derived, never stored: ``past_due_since + grace_days``, read from the
wallet's subscription gate (what the spend guard decides on). A past_due gate without a recorded
failure time starts its window now: production is never stopped for a failure we cannot date.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from billing_core.plan_subscription import SubscriptionStatus
from billing_core.wallet import SubscriptionGate


class GraceState(StrEnum):
    NONE = "none"
    ACTIVE = "active"
    EXPIRED = "expired"


class GraceWindow(msgspec.Struct, frozen=True):
    state: GraceState
    started_at: datetime | None = None
    ends_at: datetime | None = None


def grace_window(gate: SubscriptionGate, now: datetime) -> GraceWindow:
    """Whether a past_due subscription is still inside its grace window, and when it ends."""
    if gate.status != SubscriptionStatus.PAST_DUE:
        return GraceWindow(GraceState.NONE)
    started = gate.past_due_since or now
    ends = started + timedelta(days=gate.grace_days)
    return GraceWindow(GraceState.ACTIVE if now < ends else GraceState.EXPIRED, started_at=started, ends_at=ends)
