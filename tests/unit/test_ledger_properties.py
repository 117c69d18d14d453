"""Properties of the ledger and the wallet: every transaction balances, stored balances are the sum
of postings, and no sequence of debits gets past the credit line, the daily budget or the monthly cap."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.fakes import InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import usage_tx
from billing_core.errors import InvalidInput, LedgerImbalance
from billing_core.ledger import (
    BALANCE_ACCOUNTS,
    Account,
    EntryKind,
    LedgerTransaction,
    balances,
    credit_balance,
    transaction,
    transfer,
)
from billing_core.money import MAX_MICROS
from billing_core.spend_guard import DenialReason
from billing_core.wallet import SpendLimits, WalletAccount, apply_transaction, month_key
from tests.unit.domain_builders import DOLLAR, ORG

BOUNDED = settings(max_examples=150, deadline=None)
T0 = datetime(2026, 1, 30, 20, 0, tzinfo=UTC)
accounts = st.sampled_from(list(Account))
amounts = st.integers(min_value=-(10**12), max_value=10**12)


def _build(postings: list[tuple[Account, int]], key: str = "k") -> LedgerTransaction:
    return transaction(organization_id=ORG, idempotency_key=key, kind=EntryKind.ADJUSTMENT, description="d",
                       created_at=T0, postings=postings)


@BOUNDED
@given(st.lists(st.tuples(accounts, amounts), min_size=2, max_size=8))
def test_a_transaction_balances_or_is_refused(postings: list[tuple[Account, int]]) -> None:
    total = sum(amount for _, amount in postings)
    if any(amount == 0 for _, amount in postings):
        with pytest.raises(InvalidInput) as invalid:
            _build(postings)
        assert invalid.value.field == "postings"
    elif total != 0:
        with pytest.raises(LedgerImbalance) as imbalance:
            _build(postings)
        assert imbalance.value.total == total
    else:
        tx = _build(postings)
        assert sum(p.amount_micros for p in tx.postings) == 0
        assert [(p.account, p.amount_micros) for p in tx.postings] == postings
        assert balances([tx]) == {account: sum(a for p, a in postings if p == account) for account in Account}


@BOUNDED
@given(st.lists(st.tuples(accounts, amounts.filter(bool)), min_size=1, max_size=7), accounts)
def test_a_balancing_posting_always_makes_it_valid(postings: list[tuple[Account, int]], closing: Account) -> None:
    rest = -sum(amount for _, amount in postings)
    if rest == 0:
        return
    tx = _build([*postings, (closing, rest)])
    sums = balances([tx])
    assert sum(sums.values()) == 0
    assert tx.balance_delta == sum(sums[a] for a in BALANCE_ACCOUNTS) == credit_balance(sums)


@BOUNDED
@given(accounts, accounts, st.integers(min_value=1, max_value=MAX_MICROS))
def test_transfer_always_balances(source: Account, target: Account, amount: int) -> None:
    tx = transfer(organization_id=ORG, idempotency_key="k", kind=EntryKind.ADJUSTMENT, description="d",
                  created_at=T0, source=source, target=target, amount_micros=amount)
    assert len(tx.postings) == 2
    assert sum(p.amount_micros for p in tx.postings) == 0
    sums = balances([tx])
    if source != target:
        assert sums[target] == amount and sums[source] == -amount


transfers = st.tuples(accounts, accounts, st.integers(min_value=1, max_value=10**10)).filter(lambda t: t[0] != t[1])


@BOUNDED
@given(st.lists(transfers, max_size=25))
def test_stored_balances_equal_the_sum_of_postings(moves: list[tuple[Account, Account, int]]) -> None:
    wallet = WalletAccount(organization_id=ORG)
    applied = []
    for n, (source, target, amount) in enumerate(moves):
        tx = transfer(organization_id=ORG, idempotency_key=f"k{n}", kind=EntryKind.ADJUSTMENT, description="d",
                      created_at=T0, source=source, target=target, amount_micros=amount)
        stamped = apply_transaction(wallet, tx)
        applied.append(stamped)
        # The running balance stamped on each transaction is the balance of the postings so far.
        assert stamped.wallet_balance_after == credit_balance(balances(applied))
    sums = balances(applied)
    assert wallet.wallet_micros == sums[Account.WALLET]
    assert wallet.unbilled_micros == sums[Account.UNBILLED_USAGE]
    assert wallet.balance_micros == credit_balance(sums)
    assert sum(sums.values()) == 0


@BOUNDED
@given(st.lists(st.tuples(transfers, st.integers(min_value=0, max_value=3)), max_size=25))
def test_storage_posts_each_key_once_and_keeps_balances_equal_to_postings(
        moves: list[tuple[tuple[Account, Account, int], int]]) -> None:
    """Keys repeat (retries): only the first post of a key moves anything."""
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        uow.wallets.create(WalletAccount(organization_id=ORG))
        first_amount: dict[str, int] = {}
        for (source, target, amount), key_no in moves:
            key = f"key-{key_no}"
            posted = uow.wallets.post(transfer(organization_id=ORG, idempotency_key=key, kind=EntryKind.ADJUSTMENT,
                                               description="d", created_at=T0, source=source, target=target,
                                               amount_micros=amount))
            assert posted.replayed is (key in first_amount)
            first_amount.setdefault(key, amount)
            assert posted.transaction.idempotency_key == key
            assert abs(posted.transaction.postings[0].amount_micros) == first_amount[key]
        uow.commit()
    with InMemoryUnitOfWork(store) as uow:
        wallet = uow.wallets.get(ORG)
        sums = uow.ledger.account_sums(ORG)
        stored = uow.ledger.list(ORG, limit=100).items
    assert len(stored) == len(first_amount)
    assert dict(sums) == balances(stored)
    assert wallet.wallet_micros == sums[Account.WALLET]
    assert wallet.unbilled_micros == sums[Account.UNBILLED_USAGE]
    if stored:
        assert stored[0].wallet_balance_after == wallet.balance_micros  # newest first


limits_strategy = st.builds(
    SpendLimits,
    credit_line_micros=st.sampled_from([0, 5 * DOLLAR, 50 * DOLLAR]),
    minimum_production_credit_micros=st.sampled_from([0, DOLLAR]),
    daily_budget_micros=st.one_of(st.none(), st.integers(min_value=1, max_value=30 * DOLLAR)),
    monthly_cap_micros=st.one_of(st.none(), st.integers(min_value=1, max_value=80 * DOLLAR)),
)
steps = st.lists(st.tuples(st.integers(min_value=0, max_value=12 * DOLLAR),
                           st.sampled_from([timedelta(0), timedelta(minutes=7), timedelta(hours=5),
                                            timedelta(hours=23), timedelta(days=3)])),
                 min_size=1, max_size=40)


@BOUNDED
@given(limits_strategy, st.integers(min_value=0, max_value=60 * DOLLAR), steps)
def test_random_debits_never_pass_a_limit(limits: SpendLimits, funds: int,
                                          debits: list[tuple[int, timedelta]]) -> None:
    """Every debit is decided exactly as the limits say, from an independent model of the counters;
    whatever the sequence, the balance never falls below -credit line + minimum and no UTC day or
    month spends past its budget but by the one call that crossed it."""
    store = InMemoryStore()
    wallet = WalletAccount(organization_id=ORG, wallet_micros=funds, limits=limits)
    with InMemoryUnitOfWork(store) as uow:
        uow.wallets.create(wallet)
        uow.commit()
    floor = limits.minimum_production_credit_micros - limits.credit_line_micros
    balance = funds
    per_day: dict[date, int] = defaultdict(int)
    per_month: dict[str, int] = defaultdict(int)
    now = T0
    for n, (amount, wait) in enumerate(debits):
        now += wait
        day, month = now.date(), month_key(now.date())
        if amount == 0:
            continue  # a debit always has a transaction with real postings
        with InMemoryUnitOfWork(store) as uow:
            outcome = uow.wallets.debit(ORG, amount, now, usage_tx(ORG, amount, f"debit-{n}", at=now))
            uow.commit()
        # The budget rule: only what was already used counts; the call that crosses a budget runs.
        daily_room = limits.daily_budget_micros is None or per_day[day] < limits.daily_budget_micros
        monthly_room = limits.monthly_cap_micros is None or per_month[month] < limits.monthly_cap_micros
        credit_room = balance - amount >= floor
        expected = (DenialReason.DAILY_BUDGET_REACHED if not daily_room
                    else DenialReason.MONTHLY_BUDGET_REACHED if not monthly_room
                    else DenialReason.INSUFFICIENT_CREDIT if not credit_room else None)
        assert outcome.decision.reason is expected
        assert outcome.decision.allowed is (expected is None)
        if outcome.decision.allowed:
            assert outcome.transaction is not None and outcome.transaction.wallet_balance_after == balance - amount
            balance -= amount
            per_day[day] += amount
            per_month[month] += amount
            # Past a budget only by this call, the one that crossed it.
            if limits.daily_budget_micros is not None:
                assert per_day[day] - amount < limits.daily_budget_micros
            if limits.monthly_cap_micros is not None:
                assert per_month[month] - amount < limits.monthly_cap_micros
        else:
            assert outcome.transaction is None
        assert outcome.wallet.balance_micros == balance
        assert balance >= min(floor, funds)
    with InMemoryUnitOfWork(store) as uow:
        stored = uow.wallets.get(ORG)
        sums = uow.ledger.account_sums(ORG)
    assert stored.balance_micros == balance == funds + sums[Account.UNBILLED_USAGE]
    if stored.spend_day is not None and stored.spend_month is not None:
        assert stored.spent_today_micros == per_day[stored.spend_day]
        assert stored.spent_month_micros == per_month[stored.spend_month]
