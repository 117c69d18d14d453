"""Storage case: authorize + debit through ``SqlAlchemyWalletRepository.debit``, one unit of work
(one database transaction) per debit, next to a raw-SQL baseline doing the same write with the
bare driver (``sqlite3`` / ``psycopg``): :func:`benchmarks.raw_debit.raw_debit`, one conditional
``UPDATE`` of the wallet row deciding budgets and balance by the spend guard's rules, an ``INSERT
... ON CONFLICT DO NOTHING`` of the ledger transaction and of its two postings, then ``COMMIT``.

The project path does more on purpose: it locks the row, runs the full spend guard in Python
(``spend_guard.decide``: subscription gate, grace window, day/month rollover), maps rows to
structs, and checks out a pooled connection per unit of work (on PostgreSQL pinged only when it sat
idle in the pool, ``make_engine(ping_after_idle_s=...)``).
The ratio is the price of that, per debit.

Both run in the same process and database (one migrated SQLite file; one fresh PostgreSQL
schema), on separate organizations, with their rounds interleaved so that load on the machine
hits both alike.

    python -m benchmarks.bench_storage_debit            # SQLite, plus PostgreSQL when configured
    BILLING_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test python -m ...

PostgreSQL runs when ``BILLING_BENCH_DATABASE_URL`` (or ``BILLING_TEST_DATABASE_URL``) is set.
``BILLING_BENCH_OPS`` sets the debits per round (default 2000 SQLite, 1000 PostgreSQL).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from adapters.sqlalchemy import make_engine, migrate, sqlalchemy_uow_factory
from adapters.sqlalchemy.engine import PING_AFTER_IDLE_S
from benchmarks.harness import CaseResult, Measurement, print_table
from benchmarks.raw_debit import raw_debit
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.organization import Organization
from billing_core.wallet import SpendLimits, WalletAccount

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AMOUNT = 150
FUNDS = 10**13
REPEAT = 5

def _setup_organization(uow: Callable[[], Any]) -> uuid.UUID:
    org = Organization(id=uuid.uuid4(), name="Bench", created_at=NOW)
    with uow() as work:
        work.organizations.add(org)
        work.wallets.create(WalletAccount(organization_id=org.id))
        work.wallets.set_limits(org.id, SpendLimits(daily_budget_micros=10**14, monthly_cap_micros=10**14))
        work.wallets.post(transfer(organization_id=org.id, idempotency_key="bench-grant", kind=EntryKind.GRANT,
                                   description="bench", created_at=NOW, source=Account.PROMOTIONAL_GRANTS,
                                   target=Account.WALLET, amount_micros=FUNDS))
        work.commit()
    return org.id


def _project_round(uow: Callable[[], Any], org_id: uuid.UUID, ops: int, tag: str) -> None:
    for i in range(ops):
        tx = transfer(organization_id=org_id, idempotency_key=f"{tag}-{i}", kind=EntryKind.USAGE,
                      description="usage", created_at=NOW, source=Account.UNBILLED_USAGE, target=Account.REVENUE,
                      amount_micros=AMOUNT, reference=f"{tag}-{i}")
        with uow() as work:
            outcome = work.wallets.debit(org_id, AMOUNT, NOW, tx)
            work.commit()
        assert outcome.decision.allowed


def _sqlite_baseline(path: Path, org_id: uuid.UUID) -> Callable[[int, str], None]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        db.execute(f"PRAGMA {pragma}")
    return _baseline(db, postgres=False, org_id=org_id)


def _postgres_baseline(url: str, schema: str, org_id: uuid.UUID) -> Callable[[int, str], None]:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    return _baseline(psycopg.connect(dsn, options=f"-csearch_path={schema}"), postgres=True, org_id=org_id)


def _baseline(db: Any, *, postgres: bool, org_id: uuid.UUID) -> Callable[[int, str], None]:
    def run(ops: int, tag: str) -> None:
        for i in range(ops):
            balance = raw_debit(db, postgres=postgres, organization_id=org_id, amount_micros=AMOUNT, key=f"{tag}-{i}",
                                now=NOW)
            assert balance is not None

    return run


def _interleaved(case: str, ops: int, project: Callable[[int, str], None],
                 baseline: Callable[[int, str], None], notes: dict[str, object]) -> CaseResult:
    project(max(ops // 10, 10), "warm-p")
    baseline(max(ops // 10, 10), "warm-b")
    project_times: list[float] = []
    baseline_times: list[float] = []
    for round_no in range(REPEAT):
        for run, times, tag in ((project, project_times, "p"), (baseline, baseline_times, "b")):
            started = time.perf_counter()
            run(ops, f"{tag}{round_no}")
            times.append(time.perf_counter() - started)
    return CaseResult(case, Measurement("project", ops, project_times), Measurement("baseline", ops, baseline_times),
                      notes)


def _sqlite_case(ops: int) -> CaseResult:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        try:
            migrate(engine)
            uow = sqlalchemy_uow_factory(engine)
            project_org, baseline_org = _setup_organization(uow), _setup_organization(uow)
            baseline = _sqlite_baseline(path, baseline_org)
            return _interleaved("S1. debit, SQLAlchemy/SQLite vs sqlite3", ops,
                                lambda n, tag: _project_round(uow, project_org, n, tag), baseline,
                                {"journal": "WAL", "synchronous": "NORMAL", "ops_per_round": ops})
        finally:
            engine.dispose()


def _postgres_case(url: str, ops: int) -> CaseResult:
    admin = make_engine(url, pool_size=1)
    schema = f"billing_bench_{secrets.token_hex(4)}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(url, schema=schema)
    try:
        migrate(engine)
        uow = sqlalchemy_uow_factory(engine)
        project_org, baseline_org = _setup_organization(uow), _setup_organization(uow)
        baseline = _postgres_baseline(url, schema, baseline_org)
        return _interleaved("S2. debit, SQLAlchemy/PostgreSQL vs psycopg", ops,
                            lambda n, tag: _project_round(uow, project_org, n, tag), baseline,
                            {"ping_after_idle_s": PING_AFTER_IDLE_S, "ops_per_round": ops})
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def run() -> list[CaseResult]:
    results = [_sqlite_case(int(os.environ.get("BILLING_BENCH_OPS", "2000")))]
    url = os.environ.get("BILLING_BENCH_DATABASE_URL") or os.environ.get("BILLING_TEST_DATABASE_URL")
    if url:
        results.append(_postgres_case(url, int(os.environ.get("BILLING_BENCH_OPS", "1000"))))
    else:
        print("PostgreSQL case skipped: set BILLING_BENCH_DATABASE_URL=postgresql+psycopg://...", file=sys.stderr)
    return results


def main() -> None:
    results = run()
    print_table(results)
    for result in results:
        p, b = result.project, result.baseline
        print(f"{result.case}: project median {p.median_ops_per_s:,.0f} ops/s (spread {p.spread_pct:.0f}%), "
              f"baseline median {b.median_ops_per_s:,.0f} ops/s (spread {b.spread_pct:.0f}%), "
              f"ratio {result.ratio:.2f}x")


if __name__ == "__main__":
    main()
