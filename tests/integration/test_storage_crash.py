"""A process doing batches of debits is SIGKILLed mid-batch; every debit is then all-or-nothing.

The worker (this module run as a program) opens one unit of work per batch of five debits, each
debit with its usage event and hourly bucket, plus a grant every few batches, and reports on stdout
when a batch begins and commits. The test kills it either at a chosen point inside a batch (after
some of its writes) or at a random moment, then checks on a fresh engine that:

* the stored wallet equals the sum of its postings (``ledger.account_sums``), and the spend
  counter equals the usage debits;
* every ledger transaction has all of its postings, and they sum to zero;
* every batch is there completely or not at all, every acknowledged batch is there, and the batch
  the worker was killed in is not;
* the hourly usage buckets equal the unbilled usage.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from adapters.sqlalchemy import make_engine, sqlalchemy_uow_factory
from adapters.testing.builders import PRODUCT, grant, usage_tx
from adapters.testing.storage import migrated_database
from billing_core.ledger import Account, credit_balance
from billing_core.organization import Organization
from billing_core.usage import UsageEvent
from billing_core.wallet import WalletAccount
from tests.support.processes import worker

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
BATCH = 5
AMOUNT = 1_000
STOP_AT_BATCH = 8  # the deterministic kill happens inside this batch


# --------------------------------------------------------------------------- the worker process


def worker_main(url: str, schema: str, organization_id: str, mode: str) -> None:
    """Debit forever in batches; in ``mode == "pause"`` stop inside batch STOP_AT_BATCH and wait."""
    engine = make_engine(url, schema=schema or None)
    uow = sqlalchemy_uow_factory(engine)
    org_id = uuid.UUID(organization_id)
    batch = 0
    while True:
        print(f"begin {batch}", flush=True)
        with uow() as work:
            for j in range(BATCH):
                key = f"b{batch}-{j}"
                at = NOW + timedelta(seconds=batch)
                outcome = work.wallets.debit(org_id, AMOUNT, at, usage_tx(org_id, AMOUNT, key, at))
                assert outcome.decision.allowed, outcome.decision
                work.usage.record(UsageEvent(event_id=key, organization_id=org_id, project_id=None,
                                             product_id=PRODUCT, quantity=1, occurred_at=at,
                                             amount_micros=AMOUNT, unit_price_micros=AMOUNT))
                if mode == "pause" and batch == STOP_AT_BATCH and j == 2:
                    print(f"paused {batch}", flush=True)
                    time.sleep(120)
            if batch % 4 == 3:
                work.wallets.post(grant(org_id, 3 * AMOUNT, f"grant-{batch}"))
            work.commit()
        print(f"committed {batch}", flush=True)
        batch += 1


# --------------------------------------------------------------------------- the test


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, schema) of a migrated database; schema is empty for SQLite."""
    with migrated_database(request.param, tmp_path, "crash") as database:
        yield database


def _organization(engine: Engine) -> uuid.UUID:
    org = Organization(id=uuid.uuid4(), name="Crash", created_at=NOW)
    with sqlalchemy_uow_factory(engine)() as work:
        work.organizations.add(org)
        work.wallets.create(WalletAccount(organization_id=org.id))
        work.wallets.post(grant(org.id, 10**12, "funding"))
        work.commit()
    return org.id


def _run_and_kill(url: str, schema: str, org_id: uuid.UUID, mode: str) -> tuple[int, int | None]:
    """Start the worker, SIGKILL it, return (last batch acknowledged as committed, batch killed in)."""
    committed, begun, killed_in = -1, -1, None
    with worker(worker_main, url, schema, str(org_id), mode) as child:
        for line in child.lines(within=60):
            event, number = line.split()
            if event == "committed":
                committed = int(number)
            elif event == "begin":
                begun = int(number)
            elif event == "paused":
                killed_in = int(number)
                break
            if mode == "random" and committed >= 10:
                time.sleep(random.uniform(0, 0.02))
                break
        child.kill()
    assert begun >= committed
    return committed, killed_in


@pytest.mark.parametrize("mode", ["pause", "random"])
def test_a_killed_batch_of_debits_is_all_or_nothing(database: tuple[str, str], mode: str) -> None:
    url, schema = database
    engine = make_engine(url, schema=schema or None)
    try:
        org_id = _organization(engine)
        committed, killed_in = _run_and_kill(url, schema, org_id, mode)
        if mode == "pause":
            assert killed_in == STOP_AT_BATCH and committed == STOP_AT_BATCH - 1
        _check_all_or_nothing(engine, org_id, committed, killed_in)
    finally:
        engine.dispose()


def _check_all_or_nothing(engine: Engine, org_id: uuid.UUID, committed: int, killed_in: int | None) -> None:
    with sqlalchemy_uow_factory(engine)() as work:
        wallet = work.wallets.get(org_id)
        sums = work.ledger.account_sums(org_id)
        buckets = work.usage.uninvoiced(org_id, datetime.max.replace(tzinfo=UTC))
    assert wallet.wallet_micros == sums[Account.WALLET]
    assert wallet.unbilled_micros == sums[Account.UNBILLED_USAGE]
    assert wallet.balance_micros == credit_balance(sums)
    assert sum(sums.values()) == 0
    assert -wallet.unbilled_micros == sum(b.amount_micros for b in buckets)

    with engine.connect() as connection:
        transactions = connection.execute(text(
            "SELECT t.idempotency_key, count(p.line_no), coalesce(sum(p.amount_micros), 0) "
            "FROM ledger_transactions t LEFT JOIN ledger_postings p ON p.transaction_seq = t.seq "
            "GROUP BY t.idempotency_key")).all()
        events = connection.execute(text("SELECT event_id FROM usage_events")).scalars().all()
    assert all(count == 2 and total == 0 for _key, count, total in transactions), transactions
    debits = [key for key, _count, _total in transactions if key.startswith("b")]
    per_batch = Counter(int(key[1:].split("-")[0]) for key in debits)
    assert all(count == BATCH for count in per_batch.values()), per_batch
    assert set(range(committed + 1)) <= set(per_batch)
    if killed_in is not None:
        assert killed_in not in per_batch
    assert sorted(events) == sorted(debits)
    assert wallet.spent_month_micros == len(debits) * AMOUNT
    grants = {key for key, _count, _total in transactions if key.startswith("grant-")}
    assert grants == {f"grant-{b}" for b in per_batch if b % 4 == 3}
