"""The background work a served app or a worker does on its own: deliver the outbox and run the
scheduled jobs (close last month), and finish the money intents a provider outage left pending.

:func:`run_cycle` is one pass; the entrypoints call it every second or so from a thread. Any
number of processes may run cycles against one database: outbox delivery claims messages with a
lease (``dispatch``), and a scheduled job runs only for the worker that claimed its lease for the
period (``ScheduledJobRepository``), so each job runs once per period and a worker that dies
mid-job leaves it to another when its lease runs out.
"""

from __future__ import annotations

import time
from datetime import timedelta

import msgspec

from billing_core.outbox import OutboxDepth
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import Deliverers, DispatchReport, dispatch
from billing_core.services.grants import SweepPacer, catch_up_behind, expire_grants
from billing_core.services.holds import expire_holds
from billing_core.services.invoicing import CloseReport, close_period, previous_period
from billing_core.services.plan_changes import finish_pending_plan_changes
from billing_core.services.refunds import finish_pending_refunds

CLOSE_PERIOD_JOB = "close-period"
JOB_LEASE = timedelta(minutes=30)
"""How long a claimed job stays with its worker; longer than a close of every organization takes."""
DISPATCH_BATCH = 100
INTENT_GRACE = timedelta(minutes=1)
"""How old a PENDING refund request or plan change must be before the worker finishes it."""


class CycleReport(msgspec.Struct, kw_only=True):
    dispatched: DispatchReport
    closed: CloseReport | None = None
    """The period close this cycle ran, if it was due and this worker won its lease."""
    close_milliseconds: int | None = None
    """How long that close took (wall time, for operators' metrics)."""
    intents_finished: int = 0
    """Refund requests and plan changes left PENDING by an unreachable provider that this cycle
    finished (ADR 0009: nothing waits for a client to retry)."""
    holds_expired: int = 0
    """Holds past their expiry that this cycle released (ADR 0011)."""
    grants_expired: int = 0
    """Grant expiry entries this cycle posted (ADR 0016)."""
    grants_caught_up: int = 0
    """Organizations whose grants this cycle allocated the new ledger transactions of (ADR 0016)."""


def last_closed_period(ctx: BillingContext) -> str | None:
    """The last period the scheduled close completed (``YYYY-MM``); reading it proves storage answers."""
    with ctx.uow() as uow:
        return uow.scheduled_jobs.last_completed(CLOSE_PERIOD_JOB)


def outbox_depth(ctx: BillingContext) -> OutboxDepth:
    """How much the outbox holds and how old its oldest message is (for metrics)."""
    with ctx.uow() as uow:
        return uow.outbox.depth()


def run_cycle(ctx: BillingContext, deliverers: Deliverers, *, holder: str, max_batches: int = 10,
              grant_pacer: SweepPacer | None = None) -> CycleReport:
    """Deliver what is due (batch after batch while batches come back full, at most
    ``max_batches``), release the holds past their expiry (the same way), catch up the grants of
    organizations whose ledger moved and then expire the credit grants past their expiry (ADR 0016,
    :func:`expire_and_catch_up`), finish the money intents an outage left pending, then run the
    scheduled jobs that are due. ``holder`` names this worker in job leases (unique per process);
    ``grant_pacer`` (the worker's, kept across cycles) catches up a busy organization's grants at
    most every few seconds instead of every cycle (None: every cycle).

    The order matters: holds first, so an expiry sees the credit they no longer reserve; catch-up
    before expiry, so a grant made since the last cycle expires in this one."""
    total = DispatchReport()
    for _ in range(max_batches):
        batch = dispatch(ctx, deliverers, limit=DISPATCH_BATCH)
        total.sent += batch.sent
        total.retried += batch.retried
        total.dead += batch.dead
        if batch.sent + batch.retried + batch.dead < DISPATCH_BATCH:
            break
    expired = 0
    for _ in range(max_batches):
        batch_expired = expire_holds(ctx, limit=DISPATCH_BATCH)
        expired += batch_expired
        if batch_expired < DISPATCH_BATCH:
            break
    caught_up, grants_expired = expire_and_catch_up(ctx, max_batches=max_batches, pacer=grant_pacer)
    finished = finish_pending_intents(ctx)
    started = time.monotonic_ns()
    closed = close_last_period(ctx, holder=holder)
    took = (time.monotonic_ns() - started) // 1_000_000
    return CycleReport(dispatched=total, closed=closed, close_milliseconds=None if closed is None else took,
                       holds_expired=expired, intents_finished=finished, grants_expired=grants_expired,
                       grants_caught_up=caught_up)


def expire_and_catch_up(ctx: BillingContext, *, max_batches: int = 10,
                        pacer: SweepPacer | None = None) -> tuple[int, int]:
    """The grant part of a cycle (ADR 0016), after the holds past their expiry were released:
    first catch up the organizations whose ledger moved, so that a grant created since the last
    cycle is stored before the expiry job looks for due grants (it reads only stored grants), then
    expire the grants past their expiry (each expiry catches its organization up first, under the
    lock, whatever ``pacer`` skipped). ``(organizations caught up, expiry entries posted)``."""
    caught_up = grants_expired = 0
    for _ in range(max_batches):
        batch_caught_up = catch_up_behind(ctx, limit=DISPATCH_BATCH, pacer=pacer)
        caught_up += batch_caught_up
        if batch_caught_up < DISPATCH_BATCH:
            break
    for _ in range(max_batches):
        batch_expired = expire_grants(ctx, limit=DISPATCH_BATCH)
        grants_expired += batch_expired
        if batch_expired < DISPATCH_BATCH:
            break
    return caught_up, grants_expired


def finish_pending_intents(ctx: BillingContext) -> int:
    """Finish the money intents a provider outage left PENDING (refund requests, plan-change
    invoices) once they are older than :data:`INTENT_GRACE`, with the keys derived from them: the
    request that recorded one may still be finishing it itself until then, and finishing it twice
    is harmless anyway (same provider key, conditional completion). How many it finished."""
    older_than = ctx.clock.now() - INTENT_GRACE
    return (finish_pending_refunds(ctx, older_than=older_than)
            + finish_pending_plan_changes(ctx, older_than=older_than))


def close_last_period(ctx: BillingContext, *, holder: str) -> CloseReport | None:
    """Close the month before now, once: from the first cycle of a month (00:00 UTC on the 1st)
    until some worker has completed it. None when it is done already or another worker holds it."""
    now = ctx.clock.now()
    period = previous_period(now)
    with ctx.uow() as uow:
        claimed = uow.scheduled_jobs.claim(CLOSE_PERIOD_JOB, period, holder, now, now + JOB_LEASE)
        uow.commit()
    if not claimed:
        return None
    report = close_period(ctx, period=period)
    with ctx.uow() as uow:
        uow.scheduled_jobs.complete(CLOSE_PERIOD_JOB, period, holder)
        uow.commit()
    return report
