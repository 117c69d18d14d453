"""Concurrency case (PostgreSQL only): authorize + debit through ``SqlAlchemyWalletRepository.debit``
(one unit of work per debit, as in ``bench_storage_debit._project_round``) from 1, 4 and 16 client
threads, (a) all on ONE hot wallet and (b) spread over 1,000 wallets, next to raw psycopg running
the same conditional ``UPDATE`` + ``INSERT``s with the same concurrency (one connection per thread).

Every round debits a fixed total (``BILLING_BENCH_CONCURRENT_OPS``, default 1,200) on fresh wallets
that can afford only part of it: the hot wallet holds funds for 75% of the debits; each of the
1,000 spread wallets holds funds for one debit (so wallets hit twice deny their second debit).
After each round, SQL counts the debited ledger transactions and the overdrafts
(``wallet_micros + unbilled_micros < -credit_line_micros``); ``notes`` report whether the allowed
count equals the affordable count exactly. Wallets are funded by writing their rows directly.

A dedicated schema is created per run and dropped at the end.

    BILLING_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        python -m benchmarks bench_pg_concurrency
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine, insert, text

from adapters.sqlalchemy import make_engine, migrate, sqlalchemy_uow_factory
from adapters.sqlalchemy import rows as row_values
from adapters.sqlalchemy.tables import organizations, wallets
from benchmarks.bench_storage_debit import AMOUNT, NOW
from benchmarks.harness import CaseResult, Measurement, print_table
from benchmarks.raw_debit import raw_debit
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.wallet import SpendLimits, WalletAccount

THREADS = (1, 4, 16)
SPREAD_WALLETS = 1000
REPEAT = 2
LIMITS = SpendLimits(daily_budget_micros=10**14, monthly_cap_micros=10**14)

Debit = Callable[[int, uuid.UUID, str], bool]
"""(thread index, organization, idempotency key) -> allowed."""


def _create_wallets(engine: Engine, funds: list[int]) -> list[uuid.UUID]:
    """Organizations and wallets holding ``funds[i]`` micros each, in one transaction."""
    ids = [uuid.uuid4() for _ in funds]
    with engine.begin() as connection:
        connection.execute(insert(organizations), [
            {"id": org, "name": "Bench", "created_at": NOW, "currency_iso": "USD", "provider_customer_id": None,
             "webhook_secret": None} for org in ids])
        connection.execute(insert(wallets), [
            row_values.wallet_values(WalletAccount(organization_id=org, wallet_micros=amount, limits=LIMITS))
            for org, amount in zip(ids, funds, strict=True)])
    return ids


def _project_debit(uow: Callable[[], Any]) -> Debit:
    def debit(_thread: int, org_id: uuid.UUID, key: str) -> bool:
        tx = transfer(organization_id=org_id, idempotency_key=key, kind=EntryKind.USAGE, description="usage",
                      created_at=NOW, source=Account.UNBILLED_USAGE, target=Account.REVENUE,
                      amount_micros=AMOUNT, reference=key)
        with uow() as work:
            outcome = work.wallets.debit(org_id, AMOUNT, NOW, tx)
            work.commit()
        return bool(outcome.decision.allowed)

    return debit


def _baseline_debit(connections: list[psycopg.Connection[Any]]) -> Debit:
    def debit(thread: int, org_id: uuid.UUID, key: str) -> bool:
        return raw_debit(connections[thread], postgres=True, organization_id=org_id, amount_micros=AMOUNT, key=key,
                         now=NOW) is not None

    return debit


def _run_threads(debit: Debit, threads: int, targets: list[uuid.UUID], tag: str) -> tuple[float, int]:
    """Debit ``targets[i]`` for every i, split round-robin over ``threads``; (seconds, allowed)."""
    allowed = [0] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        barrier.wait()
        try:
            for i in range(t, len(targets), threads):
                if debit(t, targets[i], f"{tag}-{i}"):
                    allowed[t] += 1
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, sum(allowed)


def _audit(engine: Engine, org_ids: list[uuid.UUID]) -> tuple[int, int]:
    """(usage transactions in the ledger, overdrawn wallets) over ``org_ids``, by SQL."""
    with engine.connect() as connection:
        ledger = connection.execute(text(
            "SELECT count(*) FROM ledger_transactions WHERE kind = 'usage' AND organization_id = ANY(:ids)"),
            {"ids": org_ids}).scalar_one()
        overdrafts = connection.execute(text(
            "SELECT count(*) FROM wallets WHERE organization_id = ANY(:ids)"
            " AND wallet_micros + unbilled_micros < -credit_line_micros"), {"ids": org_ids}).scalar_one()
    return int(ledger), int(overdrafts)


def _layout(hot: bool, ops: int) -> tuple[list[int], Callable[[list[uuid.UUID]], list[uuid.UUID]], int]:
    """(funds per wallet, org ids -> debit targets, affordable debits)."""
    if hot:
        units = ops * 3 // 4
        return [units * AMOUNT], lambda ids: [ids[0]] * ops, units
    per_wallet = [len(range(w, ops, SPREAD_WALLETS)) for w in range(SPREAD_WALLETS)]
    affordable = sum(min(n, 1) for n in per_wallet)
    return [AMOUNT] * SPREAD_WALLETS, lambda ids: [ids[i % SPREAD_WALLETS] for i in range(ops)], affordable


def _case(engine: Engine, project: Debit, baseline: Debit, threads: int, hot: bool, ops: int,
          repeat: int) -> CaseResult:
    funds, targets_of, affordable = _layout(hot, ops)
    times: dict[str, list[float]] = {"project": [], "baseline": []}
    allowed: dict[str, list[int]] = {"project": [], "baseline": []}
    ledger_ok = {"project": True, "baseline": True}
    overdrafts = {"project": 0, "baseline": 0}
    for round_no in range(repeat):
        for name, debit in (("project", project), ("baseline", baseline)):
            org_ids = _create_wallets(engine, funds)
            seconds, count = _run_threads(debit, threads, targets_of(org_ids), f"{name[0]}{threads}{round_no}")
            ledger, overdrawn = _audit(engine, org_ids)
            times[name].append(seconds)
            allowed[name].append(count)
            ledger_ok[name] &= ledger == count
            overdrafts[name] += overdrawn
    layout = "hot wallet" if hot else f"{SPREAD_WALLETS} wallets"
    notes: dict[str, object] = {
        "threads": threads, "wallets": 1 if hot else SPREAD_WALLETS, "debits_per_round": ops, "rounds": repeat,
        "affordable_per_round": affordable,
        "project_allowed": allowed["project"], "baseline_allowed": allowed["baseline"],
        "project_overdrafts": overdrafts["project"], "baseline_overdrafts": overdrafts["baseline"],
        "project_exact": all(a == affordable for a in allowed["project"]) and ledger_ok["project"],
        "baseline_exact": all(a == affordable for a in allowed["baseline"]) and ledger_ok["baseline"],
    }
    return CaseResult(f"C. {layout}, {threads:>2} thr, SA/PG vs psycopg",
                      Measurement("project", ops, times["project"]),
                      Measurement("baseline", ops, times["baseline"]), notes)


def run() -> list[CaseResult]:
    url = os.environ.get("BILLING_BENCH_DATABASE_URL") or os.environ.get("BILLING_TEST_DATABASE_URL")
    if not url:
        print("bench_pg_concurrency skipped: set BILLING_BENCH_DATABASE_URL=postgresql+psycopg://...",
              file=sys.stderr)
        return []
    ops = int(os.environ.get("BILLING_BENCH_CONCURRENT_OPS", "1200"))
    repeat = int(os.environ.get("BILLING_BENCH_CONCURRENT_REPEAT", str(REPEAT)))
    schema = f"billing_bench_{secrets.token_hex(4)}"
    admin = make_engine(url, pool_size=1)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(url, schema=schema, pool_size=max(THREADS) + 2, max_overflow=4)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    connections: list[psycopg.Connection[Any]] = []
    try:
        migrate(engine)
        connections = [psycopg.connect(dsn, options=f"-csearch_path={schema}") for _ in range(max(THREADS))]
        project = _project_debit(sqlalchemy_uow_factory(engine))
        baseline = _baseline_debit(connections)
        for name, debit in (("warm-p", project), ("warm-b", baseline)):  # warm pool, caches, connections
            _run_threads(debit, max(THREADS), _create_wallets(engine, [10**12]) * 160, name)
        return [_case(engine, project, baseline, threads, hot, ops, repeat)
                for hot in (True, False) for threads in THREADS]
    finally:
        for raw in connections:
            raw.close()
        engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def main() -> None:
    results = run()
    print_table(results)
    for result in results:
        print(result.case, result.notes)


if __name__ == "__main__":
    main()
