"""Credit grants (issue 21): every credit comes from a grant with a source, an optional expiry and
a priority, and a debit draws from the grants in one stated order.

Pure: which grants a debit draws, and how much from each (:func:`draw`), and the projection of the
ledger onto grants (:func:`allocate`, ADR 0016): the wallet stays one pool on the hot path, and the
grants are allocated afterwards, transaction by transaction in ledger order, under the wallet lock
(``billing_core.services.grants.catch_up``).

Draw order: grants that expire go before grants that never do, the soonest expiry first; at equal
expiry, promotional credit (promotion, trial, pack bonus) before paid credit (purchase, pack,
auto-recharge, refund); then the lower ``priority`` number; then the oldest grant; then the id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import msgspec

from billing_core.errors import InvalidInput
from billing_core.ledger import BalanceMove, EntryKind


class GrantSource(StrEnum):
    PURCHASE = "purchase"
    PACK = "pack"
    AUTO_RECHARGE = "auto_recharge"
    PROMOTION = "promotion"
    TRIAL = "trial"
    REFUND = "refund"
    PLAN = "plan"
    """A plan's included credits for a period."""
    ADJUSTMENT = "adjustment"
    """Credit that is no purchase nor grant: an invoice voided, debt moved to an invoice beyond the credit line."""


PROMOTIONAL_SOURCES = frozenset({GrantSource.PROMOTION, GrantSource.TRIAL, GrantSource.PLAN})


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID
    source: GrantSource
    amount_micros: int
    remaining_micros: int
    created_at: datetime
    expires_at: datetime | None = None
    priority: int = 0
    created_by: uuid.UUID | None = None
    """The ledger transaction that created the grant."""
    reference: str | None = None
    """That transaction's reference (a payment id for purchases: a refund of the payment takes from it first)."""
    expired_by: uuid.UUID | None = None
    """The ``GRANT_EXPIRY`` transaction that took what was left when the grant expired."""

    @property
    def promotional(self) -> bool:
        return self.source in PROMOTIONAL_SOURCES


class Draw(msgspec.Struct, frozen=True):
    """What one debit took from one grant."""

    grant_id: uuid.UUID
    amount_micros: int


def draw_key(grant: Grant) -> tuple[bool, datetime, bool, int, datetime, int]:
    """The sort key of :func:`draw` (a grant that never expires sorts after every one that does)."""
    return (grant.expires_at is None, grant.expires_at or grant.created_at, not grant.promotional, grant.priority,
            grant.created_at, grant.id.int)


def draw(grants: Iterable[Grant], amount_micros: int, now: datetime) -> list[Draw]:
    """The draws that pay ``amount_micros`` from the grants usable at ``now`` (not expired, something
    left), in draw order. What the grants cannot cover is not drawn: it is usage on the credit line,
    and the sum of the draws says how much the grants paid."""
    if type(amount_micros) is not int or amount_micros < 0:
        raise InvalidInput("amount_micros", "amount_micros must be a non-negative integer")
    usable = sorted((g for g in grants if g.remaining_micros > 0 and g.expired_by is None
                     and (g.expires_at is None or g.expires_at > now)),
                    key=draw_key)
    draws: list[Draw] = []
    left = amount_micros
    for grant in usable:
        if left == 0:
            break
        take = min(left, grant.remaining_micros)
        draws.append(Draw(grant.id, take))
        left -= take
    return draws


# --------------------------------------------------------------------------- the ledger projection
#
# Grants are a projection of the ledger (ADR 0016): :func:`allocate` reads the organization's ledger
# transactions in append order and says which grants each one created, drew or gave back to. Nothing
# on the usage hot path writes grants; the projection catches up under the wallet lock.

GRANT_NAMESPACE = uuid.UUID("6f1c2a52-8d7e-4c55-9a43-3c1d0b0a7e16")
"""Grant ids are derived from the transaction that created them: replaying a catch-up gives the same ids."""

EXPIRY_KEY = "grant-expiry"
"""Ledger key prefix of a grant's expiry entry: ``grant-expiry:<grant id>`` (its reference is the grant id)."""

_SOURCE_OF_KIND = {
    EntryKind.TOP_UP: GrantSource.PURCHASE,
    EntryKind.CREDIT_PACK: GrantSource.PACK,
    EntryKind.AUTO_RECHARGE: GrantSource.AUTO_RECHARGE,
    EntryKind.GRANT: GrantSource.PROMOTION,
    EntryKind.AUTOMATIC_REFUND: GrantSource.REFUND,
    EntryKind.CREDIT_REFUND: GrantSource.REFUND,
    EntryKind.PAYMENT_REVERSAL: GrantSource.REFUND,
    EntryKind.ADJUSTMENT: GrantSource.ADJUSTMENT,
}
"""The credit kinds: a positive balance delta of one of these is new credit, a grant of this source
(unless its terms say otherwise). Any other positive delta (an invoice close moving debt to the
receivable, sub-cent rounding) pays the credit line first."""

_TAKES_FROM_PAYMENT = frozenset({EntryKind.CREDIT_REFUND, EntryKind.PAYMENT_REVERSAL})
_PAID_SOURCES = frozenset({GrantSource.PURCHASE, GrantSource.PACK, GrantSource.AUTO_RECHARGE})


class GrantTerms(msgspec.Struct, frozen=True, kw_only=True):
    """What a crediting transaction's grant is, when it is not its kind's default: written by the
    service that posts the credit, in the same unit of work, keyed by the transaction's idempotency key."""

    organization_id: uuid.UUID
    idempotency_key: str
    source: GrantSource
    expires_at: datetime | None = None
    priority: int = 0


class GrantMovement(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What one ledger transaction did to one grant, signed from the grant's side: negative draws,
    positive credits (a new grant, a give-back). ``grant_id`` None is the credit line: negative is
    usage no grant could pay (``uncovered_micros`` grows), positive is credit that paid it back.
    The movements of a transaction add up to its balance delta."""

    organization_id: uuid.UUID
    transaction_id: uuid.UUID
    grant_id: uuid.UUID | None
    amount_micros: int


class MovementSpan(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """How movements are stored (ADR 0016, addendum of the fourteenth pass of issue 16).

    Either one transaction's movement on one grant (``first_sequence == last_sequence``, the
    transaction's append sequence; a transaction that moved several grants has several), or a
    **run**: consecutive transactions of the organization (no other transaction of it between
    them), appended at ``first_sequence`` to ``last_sequence``, each of which drew its whole
    balance delta from the same grant (or, ``grant_id`` None, from the credit line), summed in
    ``amount_micros``. A run's ``transaction_id`` is its first transaction's. The movement of a
    transaction inside a run is its balance delta (:func:`movements_in`): usage draws one grant
    for long stretches, and storing one row per debit had been the catch-up's largest write."""

    organization_id: uuid.UUID
    transaction_id: uuid.UUID
    grant_id: uuid.UUID | None
    amount_micros: int
    first_sequence: int
    last_sequence: int

    @property
    def is_run(self) -> bool:
        return self.last_sequence != self.first_sequence


def movements_in(spans: Iterable[MovementSpan], move: BalanceMove) -> list[GrantMovement]:
    """What the transaction ``move`` did to grants, from the stored ``spans`` covering its append
    sequence (its own movements, or the run it is part of), in the order they were allocated."""
    found: list[GrantMovement] = []
    for span in spans:
        if not span.first_sequence <= move.sequence <= span.last_sequence:
            continue
        amount = move.balance_delta if span.is_run else span.amount_micros
        if amount != 0:
            found.append(GrantMovement(organization_id=span.organization_id, transaction_id=move.id,
                                       grant_id=span.grant_id, amount_micros=amount))
    return found


class GrantState(msgspec.Struct, kw_only=True):
    """An organization's grants as allocated up to ledger append sequence ``sequence``.

    ``grants``: the grants the next transactions may touch (those with something left, and any a
    refund may give back to); ``uncovered_micros``: usage the grants could not pay (credit-line
    debt, >= 0)."""

    organization_id: uuid.UUID
    sequence: int = 0
    uncovered_micros: int = 0
    grants: dict[uuid.UUID, Grant] = msgspec.field(default_factory=dict)


class Allocation(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`allocate` produced: the state after, the grants it created or changed, the
    movements of each transaction, and the same movements as they are stored (``spans``: each
    run of single-grant draws folded into one)."""

    state: GrantState
    changed: list[Grant]
    movements: list[GrantMovement]
    spans: list[MovementSpan]


class Allocatable(Protocol):
    """What :func:`allocate` reads of a ledger transaction: a
    :class:`~billing_core.ledger.LedgerTransaction`, or the lean
    :class:`~billing_core.ledger.BalanceMove` the catch-up reads (no description, no postings)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def idempotency_key(self) -> str: ...

    @property
    def kind(self) -> EntryKind: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def reference(self) -> str | None: ...

    @property
    def balance_delta(self) -> int: ...


def grant_id_for(transaction_id: uuid.UUID) -> uuid.UUID:
    """The id of the grant a crediting transaction creates."""
    return uuid.uuid5(GRANT_NAMESPACE, str(transaction_id))


def expiry_key(grant_id: uuid.UUID) -> str:
    return f"{EXPIRY_KEY}:{grant_id}"


def live(grant: Grant, now: datetime) -> bool:
    """Whether ``grant`` may be drawn or given back to at ``now``."""
    return grant.expired_by is None and (grant.expires_at is None or grant.expires_at > now)


def pending_expiry(grant: Grant, now: datetime) -> bool:
    """Whether ``grant`` is past its expiry at ``now`` with credit left that no expiry entry took
    yet (shown as ``expired_pending``): the worker has not run since, or active holds reserve
    that credit and the expiry waits for them (ADR 0016)."""
    return (grant.expired_by is None and grant.remaining_micros > 0 and grant.expires_at is not None
            and grant.expires_at <= now)


def allocate(state: GrantState, transactions: Iterable[tuple[int, Allocatable]], *,
             terms: Mapping[str, GrantTerms] | None = None,
             refunded_draws: Mapping[str, Sequence[GrantMovement]] | None = None) -> Allocation:
    """Allocate ``transactions`` (``(append sequence, transaction)``, in append order, all after
    ``state.sequence``) to grants, by the sign of each one's balance delta (ADR 0016).

    ``terms``: the grant terms by crediting transaction's idempotency key. ``refunded_draws``: for a
    usage refund (``AUTOMATIC_REFUND``, whose reference is the usage event id), the movements of the
    usage debit it reverses, by that reference, when the debit was allocated before ``state``
    (debits inside ``transactions`` are found there). ``state`` is not changed.

    By construction: the remaining of the grants not expired by an entry, less ``uncovered_micros``,
    moves by each transaction's balance delta; no remaining goes negative; a debit's draws plus its
    uncovered part equal its amount."""
    terms = terms or {}
    grants = dict(state.grants)
    debits: dict[str, list[GrantMovement]] = {k: list(v) for k, v in (refunded_draws or {}).items()}
    changed: dict[uuid.UUID, Grant] = {}
    movements: list[GrantMovement] = []
    spans: list[MovementSpan] = []
    uncovered = state.uncovered_micros
    sequence = state.sequence
    org = state.organization_id

    def put(grant: Grant) -> None:
        grants[grant.id] = changed[grant.id] = grant

    def move(tx: Allocatable, grant_id: uuid.UUID | None, amount: int) -> None:
        movements.append(GrantMovement(organization_id=org, transaction_id=tx.id, grant_id=grant_id,
                                       amount_micros=amount))

    def take(tx: Allocatable, grant: Grant, amount: int) -> int:
        amount = min(amount, grant.remaining_micros)
        if amount > 0:
            put(msgspec.structs.replace(grant, remaining_micros=grant.remaining_micros - amount))
            move(tx, grant.id, -amount)
        return amount

    def draw_rest(tx: Allocatable, amount: int) -> None:
        nonlocal uncovered
        for d in draw(grants.values(), amount, tx.created_at):
            amount -= take(tx, grants[d.grant_id], d.amount_micros)
        # Credit of a grant past its expiry that is still in the wallet (its expiry entry waits for
        # the worker, or for a hold that reserves it: ADR 0016) pays only what no live grant can,
        # before the credit line: the guard allowed the debit on a balance that counted it.
        for g in sorted((g for g in grants.values() if pending_expiry(g, tx.created_at)), key=draw_key):
            if amount == 0:
                break
            amount -= take(tx, g, amount)
        if amount > 0:
            uncovered += amount
            move(tx, None, -amount)

    def credit(tx: Allocatable, amount: int, source: GrantSource) -> None:
        nonlocal uncovered
        paid = min(amount, uncovered)
        if paid > 0:
            uncovered -= paid
            move(tx, None, paid)
        rest = amount - paid
        if rest > 0:
            term = terms.get(tx.idempotency_key)
            if term is not None and source != GrantSource.REFUND:
                source = term.source
            grant = Grant(id=grant_id_for(tx.id), organization_id=org, source=source, amount_micros=rest,
                          remaining_micros=rest, created_at=tx.created_at,
                          expires_at=term.expires_at if term is not None else None,
                          priority=term.priority if term is not None else 0,
                          created_by=tx.id, reference=tx.reference)
            put(grant)
            move(tx, grant.id, rest)

    def store(seq: int, previous: int, moved: list[GrantMovement]) -> None:
        # A transaction that drew its whole delta from one grant (or the line) extends the run the
        # transaction just before it (``previous``, in this allocation) ended, if it drew the same.
        if len(moved) == 1 and moved[0].amount_micros < 0 and spans:
            last = spans[-1]
            if (last.last_sequence == previous and last.grant_id == moved[0].grant_id
                    and last.amount_micros < 0 and _single_draw(spans)):
                spans[-1] = msgspec.structs.replace(last, amount_micros=last.amount_micros + moved[0].amount_micros,
                                                    last_sequence=seq)
                return
        spans.extend(MovementSpan(organization_id=org, transaction_id=m.transaction_id, grant_id=m.grant_id,
                                  amount_micros=m.amount_micros, first_sequence=seq, last_sequence=seq)
                     for m in moved)

    for seq, tx in transactions:
        if seq <= sequence:
            raise InvalidInput("transactions", "transactions must come after the state's sequence, in order")
        previous, sequence = sequence, seq
        delta = tx.balance_delta
        first_move = len(movements)
        if delta < 0:
            amount = -delta
            if tx.kind == EntryKind.GRANT_EXPIRY:
                target = _expired_grant(grants, tx)
                if target is not None:
                    amount -= take(tx, target, amount)
                    # An expiry that took part of the grant (the rest was reserved by holds) leaves
                    # it pending: a later entry takes the rest and marks it expired.
                    if grants[target.id].remaining_micros == 0:
                        put(msgspec.structs.replace(grants[target.id], expired_by=tx.id))
            elif tx.kind in _TAKES_FROM_PAYMENT and tx.reference is not None:
                for g in sorted((g for g in grants.values() if g.reference == tx.reference
                                 and g.source in _PAID_SOURCES and live(g, tx.created_at)), key=draw_key):
                    amount -= take(tx, g, amount)
            if amount > 0:
                draw_rest(tx, amount)
            if tx.kind == EntryKind.USAGE and tx.reference is not None:
                debits[tx.reference] = movements[first_move:]  # this transaction's, appended just now
        elif delta > 0:
            if tx.kind == EntryKind.AUTOMATIC_REFUND and tx.reference is not None:
                # Give back what the debit drew, to the grants still live; the rest pays the line.
                for m in debits.get(tx.reference, ()):
                    given = grants.get(m.grant_id) if m.grant_id is not None else None
                    if given is None or m.amount_micros >= 0 or not live(given, tx.created_at):
                        continue
                    back = min(-m.amount_micros, delta, given.amount_micros - given.remaining_micros)
                    if back > 0:
                        put(msgspec.structs.replace(given, remaining_micros=given.remaining_micros + back))
                        move(tx, given.id, back)
                        delta -= back
            if delta > 0:
                credit(tx, delta, _SOURCE_OF_KIND.get(tx.kind, GrantSource.ADJUSTMENT))
        if len(movements) > first_move:
            store(seq, previous, movements[first_move:])
    after = GrantState(organization_id=org, sequence=sequence, uncovered_micros=uncovered, grants=grants)
    return Allocation(state=after, changed=list(changed.values()), movements=movements, spans=spans)


def _single_draw(spans: Sequence[MovementSpan]) -> bool:
    """Whether the last span is the only movement of the transaction it starts at (true of every
    run, which starts at a single draw): a transaction that moved several grants keeps its own
    spans, since a run's movement per transaction is one draw."""
    last = spans[-1]
    return len(spans) < 2 or spans[-2].last_sequence != last.first_sequence


def unexplained_moves(totals: Mapping[tuple[int, int], int],
                      ledger: Sequence[tuple[int, str, int]]) -> list[str]:
    """Where the stored movements (``totals``: summed per ``(first_sequence, last_sequence)``,
    ``GrantRepository.span_totals``) do not explain the organization's ``ledger`` (``(append
    sequence, idempotency key, balance delta)`` of every transaction, in append order): each
    transaction's movements add up to its balance delta, a run covers only draws and adds up to
    theirs, no two spans overlap, and every span starts and ends at a transaction of the ledger
    (reconcile, ADR 0016)."""
    problems: list[str] = []
    position = {seq: i for i, (seq, _, _) in enumerate(ledger)}
    covered = [False] * len(ledger)
    for (first, last), total in sorted(totals.items()):
        i, j = position.get(first), position.get(last)
        if i is None or j is None or i > j:
            problems.append(f"grant movements of sequences {first} to {last}, which are not the organization's "
                            "ledger transactions")
            continue
        if any(covered[i:j + 1]):
            problems.append(f"grant movements of sequences {first} to {last} overlap another span")
        covered[i:j + 1] = [True] * (j + 1 - i)
        moved = sum(delta for _, _, delta in ledger[i:j + 1])
        if i == j and moved != total:
            problems.append(f"transaction {ledger[i][1]} moves the balance by {moved} µ$ but its grant movements "
                            f"by {total} µ$")
        elif i != j and (moved != total or any(delta > 0 for _, _, delta in ledger[i:j + 1])):
            problems.append(f"transactions {ledger[i][1]} to {ledger[j][1]} move the balance by {moved} µ$ but "
                            f"their run of draws by {total} µ$")
    for (_, key, delta), done in zip(ledger, covered, strict=True):
        if not done and delta != 0:
            problems.append(f"transaction {key} moves the balance by {delta} µ$ but its grant movements by 0 µ$")
    return problems


def _expired_grant(grants: Mapping[uuid.UUID, Grant], tx: Allocatable) -> Grant | None:
    """The grant an expiry entry takes: the one its reference names, else (a trial expiry of before
    grants were stored, referencing the subscription) the trial grant created with that reference."""
    for g in grants.values():
        if str(g.id) == tx.reference and g.expired_by is None:
            return g
    found = [g for g in grants.values() if g.reference == tx.reference and g.expired_by is None
             and g.source == GrantSource.TRIAL]
    return found[0] if found else None


def grant_balance(state: GrantState) -> int:
    """What the grants say the real-time balance is: the remaining of the grants not expired by an
    entry, less the credit-line debt. Equals the wallet's ``balance_micros`` once caught up."""
    return sum(g.remaining_micros for g in state.grants.values() if g.expired_by is None) - state.uncovered_micros
