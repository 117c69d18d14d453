"""Concurrent debits on one wallet through the SQLAlchemy adapter: many threads, each debit its own
unit of work, and the balance, the daily budget and the monthly cap hold exactly.

PostgreSQL is the target (row locks, ``SELECT ... FOR UPDATE``, ``SKIP LOCKED``); SQLite runs the
same tests (writers serialize on ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.testing.builders import grant, outbox_message, usage_tx
from adapters.testing.storage import UowFactory, migrated_engine
from billing_core.ledger import Account, credit_balance
from billing_core.organization import Organization
from billing_core.outbox import OutboxStatus
from billing_core.spend_guard import DenialReason
from billing_core.wallet import SpendLimits, WalletAccount

THREADS = 8
DEBITS_PER_THREAD = 200
AMOUNT = 1_000
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path, pool_size=THREADS + 2)


def _organization(uow: UowFactory, funds: int, limits: SpendLimits | None = None) -> uuid.UUID:
    org = Organization(id=uuid.uuid4(), name="Load", created_at=NOW)
    with uow() as work:
        work.organizations.add(org)
        work.wallets.create(WalletAccount(organization_id=org.id))
        work.wallets.post(grant(org.id, funds))
        if limits is not None:
            work.wallets.set_limits(org.id, limits)
        work.commit()
    return org.id


def _hammer(uow: UowFactory, org_id: uuid.UUID, at: Callable[[int], datetime],
            per_thread: int = DEBITS_PER_THREAD) -> Counter[str]:
    """THREADS x ``per_thread`` debits of AMOUNT, released together; counts outcomes by reason."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            local: Counter[str] = Counter()
            for i in range(per_thread):
                with uow() as work:
                    key = f"{at(i).date()}:{n}:{i}"
                    outcome = work.wallets.debit(org_id, AMOUNT, at(i), usage_tx(org_id, AMOUNT, key, at(i)))
                    work.commit()
                local["allowed" if outcome.decision.allowed else str(outcome.decision.reason)] += 1
            with lock:
                outcomes.update(local)
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(outcomes.values()) == THREADS * per_thread
    return outcomes


def _check_ledger(uow: UowFactory, org_id: uuid.UUID, allowed: int) -> WalletAccount:
    with uow() as work:
        wallet = work.wallets.get(org_id)
        sums = work.ledger.account_sums(org_id)
        usage_rows = work.ledger.list(org_id, limit=THREADS * DEBITS_PER_THREAD + 10).items
    assert wallet.wallet_micros == sums[Account.WALLET]
    assert wallet.unbilled_micros == sums[Account.UNBILLED_USAGE]
    assert wallet.balance_micros == credit_balance(sums)
    assert sum(sums.values()) == 0
    assert sums[Account.REVENUE] == allowed * AMOUNT
    assert len(usage_rows) == allowed + 1  # the debits and the funding grant
    # every stored running balance is distinct: the debits were applied one after another
    balances = [tx.wallet_balance_after for tx in usage_rows]
    assert len(set(balances)) == len(balances)
    return wallet


def test_the_balance_allows_exactly_the_affordable_number_of_debits(engine: Engine) -> None:
    uow = sqlalchemy_uow_factory(engine)
    affordable = 537
    org_id = _organization(uow, affordable * AMOUNT + AMOUNT // 2)
    outcomes = _hammer(uow, org_id, lambda i: NOW)
    assert outcomes["allowed"] == affordable
    assert set(outcomes) == {"allowed", DenialReason.INSUFFICIENT_CREDIT.value}
    wallet = _check_ledger(uow, org_id, affordable)
    assert wallet.balance_micros == AMOUNT // 2
    assert wallet.spent_today_micros == affordable * AMOUNT


def test_the_daily_budget_allows_exactly_its_amount(engine: Engine) -> None:
    uow = sqlalchemy_uow_factory(engine)
    budgeted = 411
    org_id = _organization(uow, 10**12, SpendLimits(daily_budget_micros=budgeted * AMOUNT))
    outcomes = _hammer(uow, org_id, lambda i: NOW)
    assert outcomes["allowed"] == budgeted
    assert set(outcomes) == {"allowed", DenialReason.DAILY_BUDGET_REACHED.value}
    wallet = _check_ledger(uow, org_id, budgeted)
    assert wallet.spent_today_micros == budgeted * AMOUNT
    assert wallet.balance_micros == 10**12 - budgeted * AMOUNT


def test_the_monthly_cap_holds_across_a_day_boundary(engine: Engine) -> None:
    """A day of debits up to the daily budget, then the next UTC day up to the monthly cap: the
    counters roll over and both limits hold exactly under concurrency."""
    uow = sqlalchemy_uow_factory(engine)
    day_budget, cap = 250, 350
    limits = SpendLimits(daily_budget_micros=day_budget * AMOUNT, monthly_cap_micros=cap * AMOUNT)
    org_id = _organization(uow, 10**12, limits)
    first_day = _hammer(uow, org_id, lambda i: NOW, per_thread=50)
    second_day = _hammer(uow, org_id, lambda i: NOW + timedelta(days=1), per_thread=50)
    assert first_day["allowed"] == day_budget
    assert second_day["allowed"] == cap - day_budget
    assert set(second_day) == {"allowed", DenialReason.MONTHLY_BUDGET_REACHED.value}
    wallet = _check_ledger(uow, org_id, cap)
    assert (wallet.spent_yesterday_micros, wallet.spent_today_micros, wallet.spent_month_micros) == (
        day_budget * AMOUNT, (cap - day_budget) * AMOUNT, cap * AMOUNT)


def test_invoice_numbers_stay_gapless_when_closes_run_in_parallel_and_some_roll_back(engine: Engine) -> None:
    uow = sqlalchemy_uow_factory(engine)
    kept: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        start.wait()
        for i in range(10):
            with uow() as work:
                number = work.invoices.next_number("INV-")
                if (n + i) % 3 == 0:
                    continue  # leave without commit: the number goes back
                work.commit()
            with lock:
                kept.append(number)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(kept) == [f"INV-{n:06d}" for n in range(1, len(kept) + 1)]


def test_dispatchers_never_take_the_same_outbox_message(engine: Engine) -> None:
    """Each dispatcher holds its batch (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on
    SQLite) until it has marked it sent; no message is delivered twice, none is left behind."""
    uow = sqlalchemy_uow_factory(engine)
    org_id = _organization(uow, 1)
    with uow() as work:
        for i in range(120):
            work.outbox.add(outbox_message(org_id, f"m{i}", created_at=NOW + timedelta(seconds=i)))
        work.commit()
    delivered: list[str] = []
    lock = threading.Lock()

    def dispatcher() -> None:
        while True:
            with uow() as work:
                batch = work.outbox.due(NOW + timedelta(hours=1), limit=7)
                if not batch:
                    return
                for message in batch:
                    message.status = OutboxStatus.SENT
                    message.sent_at = NOW
                    work.outbox.save(message)
                work.commit()
            with lock:
                delivered.extend(m.dedupe_key for m in batch)

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(delivered) == sorted(f"m{i}" for i in range(120))
