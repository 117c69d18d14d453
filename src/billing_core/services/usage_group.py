"""Group commit for one hot wallet: concurrent usage reports of one organization in one process share
one unit of work (issue 16).

Every usage event of an organization serializes on its wallet (the row lock on SQL storage), from
the locked read through ``COMMIT``; with many concurrent callers on one organization the wallet,
not the callers, sets the rate. :class:`UsageGroupCommit` coalesces them without any added wait:
the first caller of an organization runs its event at once (:func:`usage.report_usage`); callers
arriving while a unit of work of that organization is running queue, and when it ends, the first
of them runs everything queued as one batch (:func:`usage.report_usage_batch`: one wallet lock,
decisions in arrival order, one commit), so a batch is never older than one transaction.

The answers are those of the same calls one by one, in arrival order: the batch is defined and
tested as exactly that (ADR 0007), every caller's permission is checked on its own actor before it
queues, and if the batch refuses as a whole (one event id twice in it, an id reused for another
event, a product not subscribed, storage trouble), each queued call runs on its own instead and
gets its own answer or error.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from billing_core.permissions import Action, Actor, require
from billing_core.services import usage
from billing_core.services.context import BillingContext
from billing_core.services.usage import UsageEventInput, UsageOutcome


@dataclass(eq=False)
class _Call:
    actor: Actor
    event: UsageEventInput
    done: bool = False
    outcome: UsageOutcome | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Organization:
    ready: threading.Condition
    busy: bool = False
    queued: list[_Call] = field(default_factory=list)


class UsageGroupCommit:
    """``report(...)`` takes what :func:`usage.report_usage` takes and answers what it answers."""

    def __init__(self, ctx: BillingContext, *, max_events: int = usage.MAX_BATCH) -> None:
        self._ctx = ctx
        self._max_events = max(1, min(max_events, usage.MAX_BATCH))
        self._lock = threading.Lock()
        self._organizations: dict[uuid.UUID, _Organization] = {}

    def report(self, actor: Actor, *, organization_id: uuid.UUID, event_id: str, product: str | uuid.UUID,
               quantity: int, project_id: uuid.UUID | None = None,
               occurred_at: datetime | None = None) -> UsageOutcome:
        require(actor, Action.REPORT_USAGE, organization_id)
        # The batch runs as its first caller: each event keeps its own caller's token (its budget).
        call = _Call(actor, UsageEventInput(event_id=event_id, product=product, quantity=quantity,
                                            project_id=project_id, occurred_at=occurred_at,
                                            token_id=actor.token_id))
        with self._lock:
            state = self._organizations.get(organization_id)
            if state is None:
                state = self._organizations[organization_id] = _Organization(threading.Condition(self._lock))
            state.queued.append(call)
            while not call.done and state.busy:
                state.ready.wait()
            if call.done:
                return _answer(call)
            state.busy = True
            calls, state.queued = state.queued[:self._max_events], state.queued[self._max_events:]
        try:
            self._run(organization_id, calls)
        finally:
            with self._lock:
                state.busy = False
                if not state.queued:
                    del self._organizations[organization_id]
                state.ready.notify_all()
        if not call.done:  # pragma: no cover - _run answers every call it was given, this one included
            raise RuntimeError("a queued usage report was not answered")
        return _answer(call)

    def _run(self, organization_id: uuid.UUID, calls: list[_Call]) -> None:
        if len(calls) > 1 and self._run_batch(organization_id, calls):
            return
        for call in calls:
            event = call.event
            try:
                call.outcome = usage.report_usage(
                    self._ctx, call.actor, organization_id=organization_id, event_id=event.event_id,
                    product=event.product, quantity=event.quantity, project_id=event.project_id,
                    occurred_at=event.occurred_at)
            except Exception as exc:
                call.error = exc
            call.done = True


    def _run_batch(self, organization_id: uuid.UUID, calls: list[_Call]) -> bool:
        """All ``calls`` as one batch; False (nothing written, nothing answered) if it is refused."""
        try:
            outcomes = usage.report_usage_batch(self._ctx, calls[0].actor, organization_id=organization_id,
                                                   events=[c.event for c in calls])
        except Exception:
            return False  # each call then runs on its own and gets its own answer or error
        for call, outcome in zip(calls, outcomes, strict=True):
            call.outcome, call.done = outcome, True
        return True


def _answer(call: _Call) -> UsageOutcome:
    if call.error is not None:
        raise call.error
    assert call.outcome is not None
    return call.outcome
