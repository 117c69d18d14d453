"""Credit grants (issue 21): the draw order (soonest expiry first, promotional before paid, then
priority, age and id; draws never exceed a grant's remainder or the amount) and the projection of
the ledger onto grants (ADR 0016), whose invariants hypothesis checks on random ledgers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.errors import InvalidInput
from billing_core.grants import (
    Allocation,
    Draw,
    Grant,
    GrantMovement,
    GrantSource,
    GrantState,
    GrantTerms,
    MovementSpan,
    allocate,
    draw,
    draw_key,
    expiry_key,
    grant_balance,
    grant_id_for,
    movements_in,
    unexplained_moves,
)
from billing_core.ledger import (
    Account,
    BalanceMove,
    EntryKind,
    LedgerTransaction,
    balances,
    credit_balance,
    transaction,
)

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
ORG = uuid.UUID(int=1)


def grant(n: int, source: GrantSource, remaining: int, *, expires_in: timedelta | None = None,
          priority: int = 0, age: timedelta = timedelta(days=1)) -> Grant:
    return Grant(id=uuid.UUID(int=n), organization_id=ORG, source=source, amount_micros=remaining,
                 remaining_micros=remaining, created_at=NOW - age,
                 expires_at=None if expires_in is None else NOW + expires_in, priority=priority)


def test_soonest_expiry_first_then_promotional_before_paid() -> None:
    paid_forever = grant(1, GrantSource.PURCHASE, 500)
    promo_forever = grant(2, GrantSource.PROMOTION, 500)
    trial_soon = grant(3, GrantSource.TRIAL, 100, expires_in=timedelta(days=2))
    pack_sooner = grant(4, GrantSource.PACK, 100, expires_in=timedelta(days=1))
    expired = grant(5, GrantSource.PROMOTION, 900, expires_in=timedelta(seconds=0))
    draws = draw([paid_forever, promo_forever, trial_soon, pack_sooner, expired], 750, NOW)
    assert draws == [Draw(pack_sooner.id, 100), Draw(trial_soon.id, 100), Draw(promo_forever.id, 500),
                     Draw(paid_forever.id, 50)]


def test_priority_then_age_break_ties_and_an_uncovered_rest_is_not_drawn() -> None:
    low = grant(1, GrantSource.PURCHASE, 10, priority=1)
    high_old = grant(2, GrantSource.PURCHASE, 10, priority=0, age=timedelta(days=9))
    high_new = grant(3, GrantSource.PURCHASE, 10, priority=0)
    assert draw([low, high_new, high_old], 100, NOW) == [Draw(high_old.id, 10), Draw(high_new.id, 10),
                                                         Draw(low.id, 10)]
    with pytest.raises(InvalidInput):
        draw([low], -1, NOW)


grants_strategy = st.lists(st.builds(
    grant, n=st.integers(1, 10**6), source=st.sampled_from(list(GrantSource)), remaining=st.integers(0, 10**6),
    expires_in=st.one_of(st.none(), st.integers(-5, 5).map(lambda d: timedelta(days=d))),
    priority=st.integers(0, 3)), max_size=12, unique_by=lambda g: g.id)


@given(grants=grants_strategy, amount=st.integers(0, 5 * 10**6))
def test_draws_are_bounded_ordered_and_exhaust_grants_in_order(grants: list[Grant], amount: int) -> None:
    draws = draw(grants, amount, NOW)
    by_id = {g.id: g for g in grants}
    usable = [g for g in grants if g.remaining_micros > 0 and (g.expires_at is None or g.expires_at > NOW)]
    assert sum(d.amount_micros for d in draws) == min(amount, sum(g.remaining_micros for g in usable))
    assert all(0 < d.amount_micros <= by_id[d.grant_id].remaining_micros for d in draws)
    keys = [draw_key(by_id[d.grant_id]) for d in draws]
    assert keys == sorted(keys)
    # Every grant drawn before the last is drawn in full.
    assert all(d.amount_micros == by_id[d.grant_id].remaining_micros for d in draws[:-1])


# --------------------------------------------------------------------------- the ledger projection


def tx(kind: EntryKind, amount: int, key: str, at: datetime, *, reference: str | None = None) -> LedgerTransaction:
    """A transaction moving the real-time balance by ``amount`` (signed), with a plausible counter-account."""
    balance_account = Account.UNBILLED_USAGE if kind in (EntryKind.USAGE, EntryKind.AUTOMATIC_REFUND) else (
        Account.WALLET)
    other = {EntryKind.INVOICE_CREDIT_APPLIED: Account.RECEIVABLE, EntryKind.GRANT: Account.PROMOTIONAL_GRANTS,
             EntryKind.GRANT_EXPIRY: Account.PROMOTIONAL_GRANTS, EntryKind.CREDIT_REFUND: Account.REFUNDS}.get(
        kind, Account.REVENUE if kind in (EntryKind.USAGE, EntryKind.AUTOMATIC_REFUND) else Account.PAYMENT_CLEARING)
    if kind == EntryKind.INVOICE_CREDIT_APPLIED:
        balance_account = Account.UNBILLED_USAGE
    return transaction(organization_id=ORG, idempotency_key=key, kind=kind, description=str(kind), created_at=at,
                       postings=[(balance_account, amount), (other, -amount)], reference=reference,
                       transaction_id=uuid.uuid5(ORG, key))


class Book:
    """A ledger appended to in order, allocated in chunks, its movements kept as storage keeps them
    (``spans``) and read back as the service reads them (:func:`movements_in`)."""

    def __init__(self) -> None:
        self.txs: list[tuple[int, LedgerTransaction]] = []
        self.terms: dict[str, GrantTerms] = {}
        self.spans: list[MovementSpan] = []

    def movements_of(self, seq: int, t: LedgerTransaction) -> list[GrantMovement]:
        covering = [s for s in self.spans if s.first_sequence <= seq <= s.last_sequence]
        return movements_in(covering, BalanceMove.of(seq, t))

    def unexplained(self) -> list[str]:
        totals: dict[tuple[int, int], int] = {}
        for s in self.spans:
            totals[(s.first_sequence, s.last_sequence)] = totals.get((s.first_sequence, s.last_sequence), 0) + (
                s.amount_micros)
        return unexplained_moves(totals, [(seq, t.idempotency_key, t.balance_delta) for seq, t in self.txs])

    def add(self, t: LedgerTransaction) -> LedgerTransaction:
        self.txs.append((len(self.txs) + 1, t))
        return t

    def allocate(self, state: GrantState | None = None) -> Allocation:
        """Allocate what follows ``state``, handing over the stored draws of the usage debits that a
        refund in it reverses (as the service reads them from storage)."""
        state = state or GrantState(organization_id=ORG)
        debits = {t.reference: self.movements_of(seq, t) for seq, t in self.txs
                  if seq <= state.sequence and t.kind == EntryKind.USAGE and t.reference is not None}
        result = allocate(state, [p for p in self.txs if p[0] > state.sequence], terms=self.terms,
                          refunded_draws=debits)
        self.spans.extend(result.spans)
        return result


def moved(allocation: Allocation, t: LedgerTransaction) -> dict[uuid.UUID | None, int]:
    return {m.grant_id: m.amount_micros for m in allocation.movements if m.transaction_id == t.id}


def test_usage_draws_the_expiring_promotion_first_and_its_refund_gives_it_back() -> None:
    book = Book()
    paid = book.add(tx(EntryKind.TOP_UP, 1_000, "top-up", NOW, reference="payment-1"))
    book.terms["promo"] = GrantTerms(organization_id=ORG, idempotency_key="promo", source=GrantSource.PROMOTION,
                                     expires_at=NOW + timedelta(days=7), priority=0)
    promo = book.add(tx(EntryKind.GRANT, 300, "promo", NOW))
    use = book.add(tx(EntryKind.USAGE, -500, "usage:e1", NOW + timedelta(hours=1), reference="e1"))
    result = book.allocate()
    promo_id, paid_id = grant_id_for(promo.id), grant_id_for(paid.id)
    assert moved(result, use) == {promo_id: -300, paid_id: -200}
    refund = book.add(tx(EntryKind.AUTOMATIC_REFUND, 500, "usage-refund:e1", NOW + timedelta(hours=2),
                         reference="e1"))
    after = book.allocate(result.state)
    assert moved(after, refund) == {promo_id: 300, paid_id: 200}
    assert after.state.grants[promo_id].remaining_micros == 300
    assert after.state.grants[promo_id].expires_at == NOW + timedelta(days=7)
    assert grant_balance(after.state) == 1_300


def test_a_refund_to_an_expired_grant_becomes_a_refund_grant_and_expiry_takes_exactly_the_grant() -> None:
    book = Book()
    book.terms["trial"] = GrantTerms(organization_id=ORG, idempotency_key="trial", source=GrantSource.TRIAL,
                                     expires_at=NOW + timedelta(days=1))
    trial = book.add(tx(EntryKind.GRANT, 100, "trial", NOW))
    book.add(tx(EntryKind.TOP_UP, 1_000, "top-up", NOW, reference="payment-1"))
    use = book.add(tx(EntryKind.USAGE, -60, "usage:e1", NOW, reference="e1"))
    trial_id = grant_id_for(trial.id)
    state = book.allocate().state
    assert state.grants[trial_id].remaining_micros == 40
    later = NOW + timedelta(days=2)
    # Past its expiry the trial grant is not drawn; its remaining waits for the expiry entry.
    book.add(tx(EntryKind.USAGE, -10, "usage:e2", later, reference="e2"))
    expiry = book.add(tx(EntryKind.GRANT_EXPIRY, -40, expiry_key(trial_id), later, reference=str(trial_id)))
    refund = book.add(tx(EntryKind.AUTOMATIC_REFUND, 60, "usage-refund:e1", later, reference="e1"))
    result = book.allocate(state)
    assert moved(result, expiry) == {trial_id: -40}
    assert result.state.grants[trial_id].expired_by == expiry.id
    assert moved(result, refund) == {grant_id_for(refund.id): 60}
    assert result.state.grants[grant_id_for(refund.id)].source == GrantSource.REFUND
    assert use.id not in {m.transaction_id for m in result.movements}
    assert grant_balance(result.state) == 1_000 + 100 - 60 - 10 - 40 + 60


def test_credit_line_debt_is_paid_first_and_a_payment_refund_takes_from_its_payment_first() -> None:
    book = Book()
    use = book.add(tx(EntryKind.USAGE, -250, "usage:e1", NOW, reference="e1"))
    close = book.add(tx(EntryKind.INVOICE_CREDIT_APPLIED, 100, "close", NOW))
    first = book.add(tx(EntryKind.TOP_UP, 500, "p1", NOW, reference="payment-1"))
    second = book.add(tx(EntryKind.TOP_UP, 500, "p2", NOW + timedelta(seconds=1), reference="payment-2"))
    refund = book.add(tx(EntryKind.CREDIT_REFUND, -400, "refund", NOW, reference="payment-2"))
    result = book.allocate()
    assert moved(result, use) == {None: -250}
    assert moved(result, close) == {None: 100}
    assert moved(result, first) == {None: 150, grant_id_for(first.id): 350}
    assert moved(result, refund) == {grant_id_for(second.id): -400}
    assert result.state.uncovered_micros == 0
    assert grant_balance(result.state) == -250 + 100 + 500 + 500 - 400


def test_transactions_must_follow_the_state() -> None:
    book = Book()
    book.add(tx(EntryKind.TOP_UP, 5, "a", NOW))
    state = book.allocate().state
    with pytest.raises(InvalidInput):
        allocate(state, book.txs)


_OPS = st.lists(st.tuples(
    # Usage four times over: runs of debits drawn from one grant (stored as one span) need several in a row.
    st.sampled_from(["top_up", "promo", "trial", "usage", "usage", "usage", "usage", "refund_usage",
                     "refund_payment", "expire", "close", "zero"]),
    st.integers(1, 5_000), st.integers(0, 30), st.integers(0, 3)), max_size=40)


@given(ops=_OPS, chunks=st.lists(st.integers(1, 8), min_size=1, max_size=10))
def test_the_projection_explains_every_micro_dollar(ops: list[tuple[str, int, int, int]], chunks: list[int]) -> None:
    """Random ledgers, allocated in random chunks: the grants (less the credit-line debt) always equal
    the real-time balance; no remaining is negative or above its amount; each transaction's movements
    add up to its balance delta; chunking changes nothing."""
    book = Book()
    at = NOW
    debits: list[tuple[LedgerTransaction, bool]] = []
    payments: list[str] = []
    state = GrantState(organization_id=ORG)
    chunk_at = 0
    for n, (op, amount, hours, priority) in enumerate(ops):
        at += timedelta(hours=hours)
        key = f"k{n}"
        if op == "top_up":
            payments.append(f"payment-{n}")
            book.add(tx(EntryKind.TOP_UP, amount, key, at, reference=payments[-1]))
        elif op in ("promo", "trial"):
            book.terms[key] = GrantTerms(organization_id=ORG, idempotency_key=key,
                                         source=GrantSource.PROMOTION if op == "promo" else GrantSource.TRIAL,
                                         expires_at=at + timedelta(hours=10 * priority + 1) if priority else None,
                                         priority=priority)
            book.add(tx(EntryKind.GRANT, amount, key, at))
        elif op == "usage":
            debits.append((book.add(tx(EntryKind.USAGE, -amount, key, at, reference=f"e{n}")), False))
        elif op == "refund_usage" and any(not done for _, done in debits):
            i = next(i for i, (_, done) in enumerate(debits) if not done)
            debit = debits[i][0]
            debits[i] = (debit, True)
            book.add(tx(EntryKind.AUTOMATIC_REFUND, -debit.balance_delta, key, at, reference=debit.reference))
        elif op == "refund_payment" and payments:
            book.add(tx(EntryKind.CREDIT_REFUND, -amount, key, at, reference=payments[priority % len(payments)]))
        elif op == "expire":
            state = book.allocate(state).state
            due = sorted((g for g in state.grants.values() if g.expired_by is None and g.remaining_micros > 0
                          and g.expires_at is not None and g.expires_at <= at), key=lambda g: g.id.int)
            if due:
                book.add(tx(EntryKind.GRANT_EXPIRY, -due[0].remaining_micros, expiry_key(due[0].id), at,
                            reference=str(due[0].id)))
        elif op == "close":
            book.add(tx(EntryKind.INVOICE_CREDIT_APPLIED, amount, key, at))
        # Allocate now and then, as catch-ups do.
        chunk_at += 1
        if chunk_at >= chunks[n % len(chunks)]:
            chunk_at = 0
            result = book.allocate(state)
            _check(result, book, state)
            state = result.state
    final = book.allocate(state)
    _check(final, book, state)
    book.spans.clear()
    once = book.allocate()
    _check(once, book, GrantState(organization_id=ORG))
    assert {g.id: g for g in final.state.grants.values()} == once.state.grants
    assert final.state.uncovered_micros == once.state.uncovered_micros


def _check(result: Allocation, book: Book, before: GrantState) -> None:
    state = result.state
    assert state.sequence == len(book.txs)
    assert grant_balance(state) == credit_balance(balances(t for _, t in book.txs))
    assert state.uncovered_micros >= 0
    assert all(0 <= g.remaining_micros <= g.amount_micros for g in state.grants.values())
    for seq, t in book.txs:
        if seq <= before.sequence:
            continue
        assert sum(m.amount_micros for m in result.movements if m.transaction_id == t.id) == t.balance_delta
        if t.kind == EntryKind.USAGE:
            assert all(m.amount_micros < 0 for m in result.movements if m.transaction_id == t.id)
        # As stored (runs of single-grant draws folded into one span) and read back: the same.
        assert book.movements_of(seq, t) == [m for m in result.movements if m.transaction_id == t.id]
    assert len(result.spans) <= len(result.movements)
    assert book.unexplained() == []


@given(grants=st.lists(st.integers(1, 400), min_size=1, max_size=4), debits=st.lists(
    st.tuples(st.integers(1, 150), st.integers(0, 7).map(lambda n: n == 0)), min_size=1, max_size=60),
    chunk=st.integers(1, 25))
def test_runs_of_debits_read_back_as_allocated(grants: list[int], debits: list[tuple[int, bool]], chunk: int) -> None:
    """Long stretches of usage over a few grants and the credit line, some debits refunded at once,
    allocated in chunks: what is stored (runs folded) reads back as what was allocated, reconcile
    finds nothing, and a refund of a debit inside a run gives back to the grant the run drew."""
    book = Book()
    for n, amount in enumerate(grants):
        book.terms[f"g{n}"] = GrantTerms(organization_id=ORG, idempotency_key=f"g{n}", source=GrantSource.PROMOTION,
                                         priority=n)
        book.add(tx(EntryKind.GRANT, amount, f"g{n}", NOW))
    state = GrantState(organization_id=ORG)
    for n, (amount, refunded) in enumerate(debits):
        book.add(tx(EntryKind.USAGE, -amount, f"u{n}", NOW, reference=f"e{n}"))
        if refunded:
            book.add(tx(EntryKind.AUTOMATIC_REFUND, amount, f"r{n}", NOW, reference=f"e{n}"))
        if (n + 1) % chunk == 0:
            result = book.allocate(state)
            _check(result, book, state)
            state = result.state
    result = book.allocate(state)
    _check(result, book, state)


def test_a_run_of_draws_from_one_grant_is_stored_as_one_span_and_read_back_per_debit() -> None:
    book = Book()
    book.add(tx(EntryKind.TOP_UP, 1_000, "paid", NOW, reference="payment-1"))
    book.terms["promo"] = GrantTerms(organization_id=ORG, idempotency_key="promo", source=GrantSource.PROMOTION)
    book.add(tx(EntryKind.GRANT, 100, "promo", NOW))
    debits = [book.add(tx(EntryKind.USAGE, -30, f"u{n}", NOW, reference=f"e{n}")) for n in range(6)]
    result = book.allocate()
    promo, paid = grant_id_for(book.txs[1][1].id), grant_id_for(book.txs[0][1].id)
    # u0-u2 draw the promotion (90), u3 draws its last 10 and 20 paid, u4 and u5 draw paid.
    assert [(s.grant_id, s.amount_micros, s.first_sequence, s.last_sequence) for s in result.spans] == [
        (paid, 1_000, 1, 1), (promo, 100, 2, 2), (promo, -90, 3, 5), (promo, -10, 6, 6), (paid, -20, 6, 6),
        (paid, -60, 7, 8)]
    assert result.spans[2].transaction_id == debits[0].id
    assert [book.movements_of(seq, t) for seq, t in book.txs[2:]] == [
        [m for m in result.movements if m.transaction_id == t.id] for t in debits]
    assert book.unexplained() == []
    # A refund of a debit inside a run gives back to the grant the run drew.
    book.add(tx(EntryKind.AUTOMATIC_REFUND, 30, "r1", NOW, reference="e1"))
    refund = book.allocate(result.state)
    assert moved(refund, book.txs[-1][1]) == {promo: 30}


def test_reconcile_finds_stored_movements_that_do_not_explain_the_ledger() -> None:
    ledger = [(3, "a", 500), (5, "b", -20), (6, "c", -30), (9, "d", 0), (10, "e", -5)]
    good = {(3, 3): 500, (5, 6): -50, (10, 10): -5}
    assert unexplained_moves(good, ledger) == []
    assert unexplained_moves({**good, (3, 3): 499}, ledger) == [
        "transaction a moves the balance by 500 µ$ but its grant movements by 499 µ$"]
    assert unexplained_moves({**good, (5, 6): -49}, ledger) == [
        "transactions b to c move the balance by -50 µ$ but their run of draws by -49 µ$"]
    assert unexplained_moves({(3, 6): 450, (10, 10): -5}, ledger) == [
        "transactions a to c move the balance by 450 µ$ but their run of draws by 450 µ$"], "a run holds only draws"
    assert unexplained_moves({**good, (6, 10): -35}, ledger) == [
        "grant movements of sequences 6 to 10 overlap another span",
        "grant movements of sequences 10 to 10 overlap another span"]
    assert unexplained_moves({**good, (4, 4): -1}, ledger) == [
        "grant movements of sequences 4 to 4, which are not the organization's ledger transactions"]
    assert unexplained_moves({(3, 3): 500, (10, 10): -5}, ledger) == [
        "transaction b moves the balance by -20 µ$ but its grant movements by 0 µ$",
        "transaction c moves the balance by -30 µ$ but its grant movements by 0 µ$"]
