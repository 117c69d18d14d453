"""Credit grants, the projection of the ledger (ADR 0016): catch up, expire, list, explain.

Nothing on the usage hot path writes grants. :func:`catch_up` allocates, holding the organization's
grant cursor (not its wallet: usage goes on meanwhile), every ledger transaction appended after the
organization's cursor
(:func:`billing_core.grants.allocate`) and stores the grants, their movements and the cursor in
the caller's unit of work. The background worker catches up the organizations that are behind and
expires grants (:func:`expire_grants`); readers catch up on demand (:func:`list_grants`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec

from billing_core.errors import ConcurrentUpdate, InvalidInput
from billing_core.grants import (
    PROMOTIONAL_SOURCES,
    Allocation,
    Grant,
    GrantMovement,
    GrantSource,
    GrantState,
    GrantTerms,
    allocate,
    expiry_key,
    movements_in,
    pending_expiry,
)
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.money import MAX_MICROS
from billing_core.permissions import Action, Actor, require
from billing_core.ports import GrantCursor, UnitOfWork
from billing_core.services.context import BillingContext

BATCH = 500
"""Ledger transactions read per step of a catch-up."""

USAGE_KEY = "usage"
"""Ledger key prefix of a usage debit (``usage:<event id>``, :mod:`billing_core.services.usage`)."""


class GrantDraw(msgspec.Struct, frozen=True, kw_only=True):
    """What one ledger transaction took from (negative) or gave to (positive) one grant."""

    grant_id: uuid.UUID
    source: GrantSource
    amount_micros: int


class GrantView(msgspec.Struct, frozen=True, kw_only=True):
    """A grant as the API and console show it."""

    grant: Grant
    status: str
    """``active`` (something left, usable), ``used`` (nothing left), ``expired`` (past its expiry,
    or expired by its entry), ``expired_pending`` (past its expiry with credit left that its expiry
    entries have not taken yet: the worker has not run since, or active holds reserve it)."""


def catch_up(uow: UnitOfWork, organization_id: uuid.UUID, *, max_batches: int | None = None,
             batch: int | None = None) -> GrantState:
    """Allocate every ledger transaction after the organization's cursor (at most ``max_batches``
    reads, when given, of ``batch`` transactions, :data:`BATCH` by default) and
    store the result in ``uow`` (the caller commits). Returns the state after.

    It locks the cursor (``uow.grants.lock_cursor``), so catch-ups of one organization run one at a
    time, and it needs no wallet lock (ADR 0016, addendum of 2026-12-06): every ledger writer holds
    the wallet lock from before its insert until its commit, so a writer's transaction gets its
    ``seq`` only after the previous writer's committed. What any read sees of an organization's
    ledger is therefore a prefix in ``seq`` order, with nothing still uncommitted below it, and
    whatever commits later lands above the cursor this catch-up leaves."""
    cursor = uow.grants.lock_cursor(organization_id)
    state = _state_at(uow, cursor)
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        result = _next_allocation(uow, state, BATCH if batch is None else batch)
        if result is None:
            return state
        if not _store(uow, cursor, result, expected_sequence=state.sequence):  # pragma: no cover
            # the cursor lock serializes catch-ups
            raise ConcurrentUpdate("the organization's grants were allocated meanwhile; retry")
        after = result.state
        # Keep what later transactions may touch: grants with something left (and not expired by
        # an entry); the rest is reloaded from storage when a refund names it.
        after.grants = {g.id: g for g in after.grants.values() if g.expired_by is None and g.remaining_micros > 0}
        state = after
    return state


def _state_at(uow: UnitOfWork, cursor: GrantCursor) -> GrantState:
    """The organization's grants as stored at ``cursor``: the open ones."""
    return GrantState(organization_id=cursor.organization_id, sequence=cursor.sequence,
                      uncovered_micros=cursor.uncovered_micros,
                      grants={g.id: g for g in uow.grants.open(cursor.organization_id)})


def _store(uow: UnitOfWork, cursor: GrantCursor, result: Allocation, *, expected_sequence: int) -> bool:
    """Store ``result`` and move ``cursor`` past it, if the stored cursor is still at
    ``expected_sequence`` (``GrantRepository.apply``); whether it was."""
    after = result.state
    return uow.grants.apply(
        msgspec.structs.replace(cursor, sequence=after.sequence, uncovered_micros=after.uncovered_micros),
        result.changed, result.spans, expected_sequence=expected_sequence)


def _next_allocation(uow: UnitOfWork, state: GrantState, batch: int) -> Allocation | None:
    """Allocate the next ``batch`` ledger transactions after ``state`` (read through ``uow``, which
    it does not write); None when there are none."""
    organization_id = state.organization_id
    txs = uow.ledger.balance_moves(organization_id, state.sequence, limit=batch)
    if not txs:
        return None
    terms = uow.grants.terms(organization_id, [t.idempotency_key for t in txs if t.balance_delta > 0])
    refunded: dict[str, list[GrantMovement]] = {}
    for t in txs:
        if t.kind == EntryKind.AUTOMATIC_REFUND and t.reference is not None and t.reference not in refunded:
            debit = uow.ledger.get_by_key(organization_id, f"{USAGE_KEY}:{t.reference}")
            refunded[t.reference] = [] if debit is None else movements_of(uow, organization_id, debit.id)
    wanted = {m.grant_id for ms in refunded.values() for m in ms
              if m.grant_id is not None and m.grant_id not in state.grants}
    for grant in uow.grants.get_many(organization_id, sorted(wanted, key=str)):
        state.grants[grant.id] = grant
    return allocate(state, [(t.sequence, t) for t in txs], terms=terms, refunded_draws=refunded)


def sweep_step(ctx: BillingContext, organization_id: uuid.UUID, *, batch: int | None = None) -> bool:
    """One step of the worker's sweep: allocate the next ``batch`` (:data:`SWEEP_BATCH`) ledger
    transactions after the organization's cursor; whether it stored them.

    It reads and allocates in a read-only unit of work (``ctx.snapshot``: on SQLite outside the
    single writer's queue, so usage writes go on meanwhile) and only then writes, in a short unit of
    work of its own, guarded by the cursor it read (``GrantRepository.apply``'s
    ``expected_sequence``). Every change to an organization's grants moves its cursor, so if
    another catch-up stored anything since the read, the guard refuses the write and nothing is
    stored (False: that catch-up did the work; the next sweep goes on from there). The cursor is
    read first: whatever committed after it, the guard sees. The write takes the cursor without
    waiting (``try_lock_cursor``): while another unit of work holds it, the step stores nothing."""
    with (ctx.snapshot or ctx.uow)() as reader:
        cursor = reader.grants.cursor(organization_id)
        result = _next_allocation(reader, _state_at(reader, cursor), SWEEP_BATCH if batch is None else batch)
    if result is None:
        return False
    with ctx.uow() as uow:
        # Without waiting: a catch-up holding the cursor stores first (the guard would refuse this
        # batch after it anyway), and a worker stalled while holding it must not stall this one.
        if uow.grants.try_lock_cursor(organization_id) is None:
            return False
        if not _store(uow, cursor, result, expected_sequence=cursor.sequence):
            return False
        uow.commit()
    return True


def behind(uow: UnitOfWork, organization_id: uuid.UUID) -> bool:
    """Whether the organization's ledger has transactions its grants do not reflect yet (no lock)."""
    return bool(uow.ledger.balance_moves(organization_id, uow.grants.cursor(organization_id).sequence, limit=1))


SWEEP_BATCH = 100
"""Ledger transactions per step of the worker's sweep by default: each step is one short unit of
work, so a reader's catch-up (and, on SQLite, the single writer) is never busy with the sweep for
long at a time. Each step also costs a fixed part (two units of work, about fifteen statements),
so a deployment whose writers do not queue behind it takes larger steps (``SweepPacer.step``:
PostgreSQL's default is :data:`POSTGRES_SWEEP_BATCH`)."""

POSTGRES_SWEEP_BATCH = 2_000
"""The sweep's step on PostgreSQL: its write holds only the organization's grant cursor row, and
since movements are stored as spans (ADR 0016) that write stays a few rows however many debits the
step allocates. A step's fixed part is ~3 ms of CPU: in process, a step of 2,000 allocates a usage
debit for 7–12 µs of CPU, against 11–16 µs in steps of 500 and 38–40 µs in steps of 100."""

MAX_SWEEP_BATCH = 10_000
"""The largest step a deployment may set (``BILLING_GRANT_SWEEP_STEP``)."""

SWEEP_STEPS = 100
"""How many steps the worker allocates of one organization per sweep at most (10,000
transactions in steps of 100, 50,000 in steps of 500); the rest waits for its next sweep."""


def catch_up_organization(ctx: BillingContext, organization_id: uuid.UUID, *, stepwise: bool = False,
                          step: int | None = None) -> bool:
    """Catch up one organization, if it is behind; whether it was.

    ``stepwise`` (the worker's sweep): at most :data:`SWEEP_STEPS` of :func:`sweep_step` (of
    ``step`` transactions, :data:`SWEEP_BATCH` by default), each reading without any lock and
    writing one batch in a short unit of work of its own. Otherwise
    (a reader) in one unit of work, to the end, holding the cursor lock. Neither takes the wallet
    lock: the organization's usage debits never wait for a catch-up."""
    if stepwise:
        steps = 0
        while steps < SWEEP_STEPS and sweep_step(ctx, organization_id, batch=step):
            steps += 1
        return steps > 0
    with ctx.uow() as uow:
        if not behind(uow, organization_id):
            return False
        catch_up(uow, organization_id)
        uow.commit()
    return True


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class SweepPacer:
    """When the worker's sweep last caught up each organization, so that it catches up a busy
    organization at most every ``interval_ms`` (``BILLING_GRANT_CATCH_UP_INTERVAL``, ADR 0016):
    each catch-up costs a fixed part (cursor lock, open grants, commit) whatever it allocates, and
    competes for the same cores as the organization's usage. An organization
    not swept within the interval is caught up at the next cycle it is behind. Readers of grants
    never wait for the sweep: they catch up themselves. ``interval_ms`` 0 sweeps every organization
    behind at every cycle. Times are whole milliseconds of ``now_ms`` (a monotonic clock): the core
    keeps no floats."""

    def __init__(self, interval_ms: int, now_ms: Callable[[], int] = _monotonic_ms, *,
                 step: int = SWEEP_BATCH) -> None:
        if interval_ms < 0:
            raise InvalidInput("interval", "the catch-up interval cannot be negative")
        if not 1 <= step <= MAX_SWEEP_BATCH:
            raise InvalidInput("step", f"a sweep step allocates 1 to {MAX_SWEEP_BATCH} ledger transactions")
        self.interval = interval_ms
        self.step = step
        """Ledger transactions per step of the sweep (:func:`sweep_step`'s ``batch``)."""
        self._now = now_ms
        self._swept: dict[uuid.UUID, int] = {}

    def due(self, organization_id: uuid.UUID) -> bool:
        last = self._swept.get(organization_id)
        return last is None or self._now() - last >= self.interval

    def waiting(self) -> int:
        """How many organizations the sweep skips now at most (swept within the interval)."""
        now = self._now()
        return sum(1 for at in self._swept.values() if now - at < self.interval)

    def swept(self, organization_id: uuid.UUID) -> None:
        now = self._now()
        self._swept[organization_id] = now
        if len(self._swept) > 10_000:  # forget the organizations no longer inside the interval
            self._swept = {org: at for org, at in self._swept.items() if now - at < self.interval}


def catch_up_behind(ctx: BillingContext, *, limit: int = 100, pacer: SweepPacer | None = None) -> int:
    """The worker's sweep: catch up the organizations whose cursor is behind their ledger, except
    those ``pacer`` swept less than its interval ago (it asks for as many more organizations as
    it may skip, so the ones after them are not starved), in steps of ``pacer.step``. How many it
    caught up, at most ``limit``."""
    with (ctx.snapshot or ctx.uow)() as reader:
        late = reader.grants.behind(limit + (pacer.waiting() if pacer is not None else 0))
    caught_up = 0
    for org in late:
        if caught_up == limit:
            break
        if pacer is not None and not pacer.due(org):
            continue
        if catch_up_organization(ctx, org, stepwise=True, step=pacer.step if pacer is not None else None):
            caught_up += 1
            if pacer is not None:
                pacer.swept(org)
    return caught_up


def expiry_account(grant: Grant) -> Account:
    """Where an expired grant's credit goes: back to the promotional grants it came from, else
    (paid credit with an expiry) to revenue as breakage."""
    return Account.PROMOTIONAL_GRANTS if grant.source in PROMOTIONAL_SOURCES else Account.REVENUE


def expire_due(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID, now: datetime, *,
               only: uuid.UUID | None = None) -> int:
    """Under the wallet lock the caller took: catch up, post a ``GRANT_EXPIRY`` of the remaining
    of each grant whose expiry passed at ``now`` (or of grant ``only``, whatever its expiry: a
    trial that ends early), then catch up again so the grant shows as expired. How many entries
    it posted.

    An expiry never takes credit that active holds reserve (ADR 0016): it takes at most what the
    balance holds beyond them, ``balance - held``. What it cannot take yet stays on the grant
    (``expired_pending``) and a later worker cycle, once the hold is settled, released or expired,
    posts the rest. The first entry of a grant is keyed ``grant-expiry:<grant id>``, a later one
    ``grant-expiry:<grant id>:<n>``; each references the grant."""
    catch_up(uow, organization_id)
    due = [g for g in uow.grants.open(organization_id)
           if (g.id == only if only is not None else g.expires_at is not None and g.expires_at <= now)]
    if not due:
        return 0
    wallet = uow.wallets.get(organization_id)
    free = max(wallet.balance_micros - wallet.held_micros, 0)
    posted = 0
    for grant in due:
        amount = min(grant.remaining_micros, free)
        if amount <= 0:
            continue
        described = "Free Trial Credits expired" if grant.source == GrantSource.TRIAL else "Granted credits expired"
        done = uow.wallets.post(transfer(
            organization_id=organization_id, idempotency_key=_next_expiry_key(uow, organization_id, grant.id),
            kind=EntryKind.GRANT_EXPIRY, description=described, created_at=now, source=Account.WALLET,
            target=expiry_account(grant), amount_micros=amount, reference=str(grant.id)))
        if not done.replayed:
            posted += 1
            free -= amount
    if posted:
        catch_up(uow, organization_id)
    return posted


def _next_expiry_key(uow: UnitOfWork, organization_id: uuid.UUID, grant_id: uuid.UUID) -> str:
    """The key of the grant's next expiry entry: ``grant-expiry:<id>``, then ``…:2``, ``…:3``
    for the parts a hold kept back (under the wallet lock, so no other writer picks the same)."""
    key, n = expiry_key(grant_id), 1
    while uow.ledger.get_by_key(organization_id, key) is not None:
        n += 1
        key = f"{expiry_key(grant_id)}:{n}"
    return key


def expire_grants(ctx: BillingContext, *, limit: int = 100) -> int:
    """The worker's expiry job: for each organization with a grant past its expiry and something
    left (as last allocated), take its wallet lock, catch up, and post the expiry entries. Two
    workers at once post one entry per grant: the second finds it expired after its catch-up
    (and the key is unique). How many entries this call posted."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        orgs = list(dict.fromkeys(g.organization_id for g in uow.grants.due(now, limit)))
    posted = 0
    for org in orgs:
        with ctx.uow() as uow:
            uow.wallets.lock(org)
            posted += expire_due(ctx, uow, org, now)
            uow.commit()
    return posted


def grant_status(grant: Grant, now: datetime) -> str:
    if pending_expiry(grant, now):
        return "expired_pending"
    if grant.expired_by is not None or (grant.expires_at is not None and grant.expires_at <= now):
        return "expired"
    return "active" if grant.remaining_micros > 0 else "used"


def list_grants(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[GrantView]:
    """The organization's grants, newest first, caught up first when its ledger moved since."""
    require(actor, Action.VIEW_BILLING, organization_id)
    catch_up_organization(ctx, organization_id)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        return [GrantView(grant=g, status=grant_status(g, now)) for g in uow.grants.list(organization_id)]


def movements_of(uow: UnitOfWork, organization_id: uuid.UUID, transaction_id: uuid.UUID) -> list[GrantMovement]:
    """What one ledger transaction did to grants, as allocated so far (catch up first to include
    the newest transactions), in the order it was allocated: from the stored spans that cover its
    append sequence (its own movements, or the run of single-grant draws it is part of)."""
    move = uow.ledger.balance_move(organization_id, transaction_id)
    if move is None:
        return []
    return movements_in(uow.grants.spans_at(organization_id, move.sequence), move)


def draws_for(uow: UnitOfWork, organization_id: uuid.UUID, transaction_id: uuid.UUID) -> list[GrantDraw]:
    """The grants one ledger transaction drew (negative) or gave back to / created (positive), as
    allocated so far (catch up first, under the lock, to include the newest transactions). The
    credit-line part (usage no grant paid) is left out: the transaction's amount less these."""
    moved = [m for m in movements_of(uow, organization_id, transaction_id) if m.grant_id is not None]
    sources = {g.id: g.source for g in uow.grants.get_many(organization_id, [m.grant_id for m in moved
                                                                            if m.grant_id is not None])}
    return [GrantDraw(grant_id=m.grant_id, source=sources[m.grant_id], amount_micros=m.amount_micros)
            for m in moved if m.grant_id is not None]


def grant_terms(uow: UnitOfWork, *, organization_id: uuid.UUID, idempotency_key: str, source: GrantSource,
                expires_at: datetime | None = None, priority: int = 0) -> None:
    """Record the terms of a credit posted (in the same unit of work) with ``idempotency_key``."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at", "expires_at must be a UTC datetime")
    if type(priority) is not int or not 0 <= priority <= 1_000:
        raise InvalidInput("priority", "priority must be an integer from 0 to 1000")
    uow.grants.put_terms(GrantTerms(organization_id=organization_id, idempotency_key=idempotency_key,
                                    source=source, expires_at=expires_at, priority=priority))


def check_grant_amount(amount_micros: int) -> int:
    if type(amount_micros) is not int or not 0 < amount_micros <= MAX_MICROS:
        raise InvalidInput("amount_micros", "amount_micros must be a positive integer")
    return amount_micros
