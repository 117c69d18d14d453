"""Storage case: authorize + debit through ``SqlAlchemyWalletRepository.debit``, one unit of work
(one database transaction) per debit, next to a raw-SQL baseline doing the same write with the
bare driver (``sqlite3`` / ``psycopg``): one conditional ``UPDATE`` of the wallet row that checks
balance, daily budget and monthly cap, an ``INSERT ... ON CONFLICT DO NOTHING`` of the ledger
transaction and an ``INSERT`` of its two postings, then ``COMMIT``.

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
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.organization import Organization
from billing_core.wallet import SpendLimits, WalletAccount

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AMOUNT = 150
FUNDS = 10**13
REPEAT = 5

_CONDITIONAL_UPDATE = """
UPDATE wallets SET
    unbilled_micros = unbilled_micros - {a},
    spent_today_micros = CASE WHEN spend_day = {day} THEN spent_today_micros + {a} ELSE {a} END,
    spent_month_micros = CASE WHEN spend_month = {month} THEN spent_month_micros + {a} ELSE {a} END,
    spend_day = {day}, spend_month = {month}, version = version + 1
WHERE organization_id = {org}
  AND wallet_micros + unbilled_micros - {a} + credit_line_micros >= minimum_production_credit_micros
  AND (daily_budget_micros IS NULL
       OR (CASE WHEN spend_day = {day} THEN spent_today_micros ELSE 0 END) + {a} <= daily_budget_micros)
  AND (monthly_cap_micros IS NULL
       OR (CASE WHEN spend_month = {month} THEN spent_month_micros ELSE 0 END) + {a} <= monthly_cap_micros)
RETURNING wallet_micros + unbilled_micros
"""
_INSERT_TX = """
INSERT INTO ledger_transactions (id, organization_id, idempotency_key, kind, description, reason, reference,
                                 created_at, wallet_balance_after)
VALUES ({p}, {p}, {p}, 'usage', 'usage', NULL, {p}, {p}, {p})
ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING seq
"""
_INSERT_POSTING = """
INSERT INTO ledger_postings (transaction_seq, line_no, organization_id, account, amount_micros)
VALUES ({p}, {p}, {p}, {p}, {p})
"""


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
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    org, day, month = org_id.hex, NOW.date().isoformat(), NOW.strftime("%Y-%m")
    created = NOW.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    update_sql = _CONDITIONAL_UPDATE.format(a=":a", day=":day", month=":month", org=":org")
    update_args = {"a": AMOUNT, "day": day, "month": month, "org": org}
    insert_tx = _INSERT_TX.format(p="?")
    insert_posting = _INSERT_POSTING.format(p="?")

    def run(ops: int, tag: str) -> None:
        for i in range(ops):
            key = f"{tag}-{i}"
            db.execute("BEGIN IMMEDIATE")
            balance = db.execute(update_sql, update_args).fetchone()
            assert balance is not None
            seq = db.execute(insert_tx, (uuid.uuid4().hex, org, key, key, created, balance[0])).fetchone()
            assert seq is not None
            db.executemany(insert_posting, [(seq[0], 0, org, "revenue", AMOUNT),
                                            (seq[0], 1, org, "unbilled_usage", -AMOUNT)])
            db.execute("COMMIT")

    return run


def _postgres_baseline(url: str, schema: str, org_id: uuid.UUID) -> Callable[[int, str], None]:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    db = psycopg.connect(dsn, options=f"-csearch_path={schema}")
    update_sql = _CONDITIONAL_UPDATE.format(a="%(a)s", day="%(day)s", month="%(month)s", org="%(org)s")
    params = {"a": AMOUNT, "day": NOW.date(), "month": NOW.strftime("%Y-%m"), "org": org_id}
    insert_tx = _INSERT_TX.format(p="%s")
    insert_posting = _INSERT_POSTING.format(p="%s")

    def run(ops: int, tag: str) -> None:
        for i in range(ops):
            key = f"{tag}-{i}"
            with db.cursor() as cursor:
                balance = cursor.execute(update_sql, params).fetchone()
                assert balance is not None
                seq = cursor.execute(insert_tx, (uuid.uuid4(), org_id, key, key, NOW, balance[0])).fetchone()
                assert seq is not None
                cursor.executemany(insert_posting, [(seq[0], 0, org_id, "revenue", AMOUNT),
                                                    (seq[0], 1, org_id, "unbilled_usage", -AMOUNT)])
            db.commit()

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
