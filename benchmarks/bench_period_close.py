"""Period close case: ``services.invoicing.close_period`` over ``BENCH_ORGS`` organizations x 720 hours
x 3 products of hourly usage buckets, next to one raw-SQL aggregate over the same uninvoiced rows
(``SELECT organization_id, product_id, project_id, sum(quantity), sum(amount_micros) FROM
usage_buckets WHERE invoice_id IS NULL AND hour < :end GROUP BY ...``) with the bare driver.

The project does much more on purpose: per organization one unit of work that reads every bucket
into structs, builds the invoice lines, applies credit, takes the next gapless number, writes the
invoice, marks the buckets invoiced, posts the balanced close entry and queues the legal invoice.
The ratio (baseline time / project time, the harness's ``ratio``) is the price of that; ops are
organizations closed.

Seeding: organizations through ``services.organizations.create_organization`` with credits, the
buckets inserted directly into the ``usage_buckets`` table (executemany on SQLite, COPY on
PostgreSQL), and one usage ledger transfer per organization for the bucket total, so the stored
unbilled balance matches and the close entry is valid (every organization reconciles after the
close: checked once). Between rounds the close is undone with SQL (buckets reopened; invoices,
close entries, outbox rows and the number counter deleted; wallets restored).

    python -m benchmarks.bench_period_close         # SQLite, plus PostgreSQL when configured
    BILLING_BENCH_CLOSE_ORGS=1000 python -m benchmarks.bench_period_close

PostgreSQL runs when ``BILLING_BENCH_DATABASE_URL`` (or ``BILLING_TEST_DATABASE_URL``) is set.
"""

from __future__ import annotations

import os
import random
import secrets
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import make_engine, migrate, sqlalchemy_uow_factory
from benchmarks.harness import CaseResult, Measurement, print_table
from billing_core.catalog import load_catalog
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.services import invoicing, organizations, wallet
from billing_core.services.context import BillingContext

BENCH_ORGS = min(int(os.environ.get("BILLING_BENCH_CLOSE_ORGS", "200")), 1000)
HOURS = 720
PERIOD = "2026-05"
START = datetime(2026, 5, 1, tzinfo=UTC)
END = datetime(2026, 6, 1, tzinfo=UTC)
CLOSE_AT = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
REPEAT = 3
PRODUCTS = ("compute", "storage", "inference")

AGGREGATE = ("SELECT organization_id, product_id, project_id, sum(quantity), sum(amount_micros) FROM usage_buckets "
             "WHERE invoice_id IS NULL AND hour < {end} GROUP BY organization_id, product_id, project_id")
_UNDO = [
    "UPDATE usage_buckets SET invoice_id = NULL",
    "DELETE FROM outbox_messages",
    "DELETE FROM invoices",
    "DELETE FROM invoice_counters",
    "DELETE FROM ledger_postings WHERE transaction_seq IN "
    "(SELECT seq FROM ledger_transactions WHERE idempotency_key LIKE 'invoice-close:%')",
    "DELETE FROM ledger_transactions WHERE idempotency_key LIKE 'invoice-close:%'",
]


class _Seeded:
    def __init__(self, engine: Engine, ctx: BillingContext, org_ids: list[uuid.UUID], rows: int) -> None:
        self.engine, self.ctx, self.org_ids, self.rows = engine, ctx, org_ids, rows
        with engine.connect() as connection:
            self.wallets = [dict(row._mapping) for row in connection.execute(text(
                "SELECT organization_id, wallet_micros, unbilled_micros, version FROM wallets"))]

    def undo(self) -> None:
        with self.engine.begin() as connection:
            for statement in _UNDO:
                connection.execute(text(statement))
            connection.execute(text("UPDATE wallets SET wallet_micros = :wallet_micros, unbilled_micros = "
                                    ":unbilled_micros, version = :version WHERE organization_id = :organization_id"),
                               self.wallets)


def _seed(engine: Engine, insert: Callable[[list[tuple[Any, ...]]], None], orgs: int) -> _Seeded:
    """Organizations with credits, their buckets (``insert`` writes rows of
    (organization, project, project_key, product, hour, quantity, amount)), and matching usage entries."""
    catalog = load_catalog()
    clock = FixedClock(START)
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=clock, catalog=catalog,
                         payments=InMemoryPaymentProvider())
    rng = random.Random(7)
    products = [catalog.product_by_code(code) for code in PRODUCTS]
    hours = [START + timedelta(hours=h) for h in range(HOURS)]
    org_ids, rows = [], 0
    for n in range(orgs):
        org = organizations.create_organization(ctx, name=f"Bench {n}", owner_user_id=f"u{n}",
                                                owner_email=f"o{n}@bench.test")
        wallet.grant_credits(ctx, organization_id=org.id, amount_micros=rng.choice([5_000_000, 10**10]),
                             description="bench", idempotency_key="bench-grant")
        project = uuid.uuid4()
        batch: list[tuple[Any, ...]] = []
        total = 0
        for product in products:
            for hour in hours:
                quantity = rng.randint(1, 50)
                amount = quantity * product.unit_price_micros
                total += amount
                batch.append((org.id, project, project, product.id, hour, quantity, amount))
        insert(batch)
        rows += len(batch)
        with ctx.uow() as uow:
            uow.wallets.post(transfer(organization_id=org.id, idempotency_key="bench-usage", kind=EntryKind.USAGE,
                                      description="bench usage", created_at=START, source=Account.UNBILLED_USAGE,
                                      target=Account.REVENUE, amount_micros=total))
            uow.commit()
        org_ids.append(org.id)
    clock.set(CLOSE_AT)
    return _Seeded(engine, ctx, org_ids, rows)


def _interleaved(case: str, seeded: _Seeded, baseline: Callable[[], int], notes: dict[str, object]) -> CaseResult:
    orgs = len(seeded.org_ids)
    project_times: list[float] = []
    baseline_times: list[float] = []
    for round_no in range(REPEAT):
        started = time.perf_counter()
        groups = baseline()
        baseline_times.append(time.perf_counter() - started)
        assert groups == orgs * len(PRODUCTS), groups
        started = time.perf_counter()
        report = invoicing.close_period(seeded.ctx, period=PERIOD)
        project_times.append(time.perf_counter() - started)
        assert report.invoices_created == orgs, report
        if round_no == 0:
            for org_id in seeded.org_ids:
                wallet.reconcile(seeded.ctx, organization_id=org_id, strict=True)
        seeded.undo()
    return CaseResult(case, Measurement("project", orgs, project_times), Measurement("baseline", orgs, baseline_times),
                      {**notes, "organizations": orgs, "buckets": seeded.rows, "rounds": REPEAT})


def _sqlite_case(orgs: int) -> CaseResult:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            migrate(engine)
            db.execute("PRAGMA busy_timeout=30000")

            def insert(rows: list[tuple[Any, ...]]) -> None:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT INTO usage_buckets (organization_id, project_id, project_key, product_id, hour, quantity, "
                    "amount_micros, invoice_id) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    [(o.hex, p.hex, k.hex, pr.hex, h.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
                      q, a) for o, p, k, pr, h, q, a in rows])
                db.execute("COMMIT")

            seeded = _seed(engine, insert, orgs)
            end = END.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            aggregate = AGGREGATE.format(end="?")

            def baseline() -> int:
                return len(db.execute(aggregate, (end,)).fetchall())

            return _interleaved("P1. period close, SQLAlchemy/SQLite vs sqlite3 GROUP BY", seeded, baseline,
                                {"journal": "WAL"})
        finally:
            db.close()
            engine.dispose()


def _postgres_case(url: str, orgs: int) -> CaseResult:
    admin = make_engine(url, pool_size=1)
    schema = f"billing_bench_{secrets.token_hex(4)}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(url, schema=schema)
    db = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), options=f"-csearch_path={schema}",
                         autocommit=True)
    try:
        migrate(engine)

        def insert(rows: list[tuple[Any, ...]]) -> None:
            with db.cursor() as cursor, cursor.copy(
                    "COPY usage_buckets (organization_id, project_id, project_key, product_id, hour, quantity, "
                    "amount_micros) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

        seeded = _seed(engine, insert, orgs)
        with db.cursor() as cursor:
            cursor.execute("ANALYZE")
        aggregate = AGGREGATE.format(end="%s")

        def baseline() -> int:
            with db.cursor() as cursor:
                return len(cursor.execute(aggregate, (END,)).fetchall())

        return _interleaved("P2. period close, SQLAlchemy/PostgreSQL vs psycopg GROUP BY", seeded, baseline, {})
    finally:
        db.close()
        engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def run() -> list[CaseResult]:
    results = [_sqlite_case(BENCH_ORGS)]
    url = os.environ.get("BILLING_BENCH_DATABASE_URL") or os.environ.get("BILLING_TEST_DATABASE_URL")
    if url:
        results.append(_postgres_case(url, BENCH_ORGS))
    else:
        print("PostgreSQL case skipped: set BILLING_BENCH_DATABASE_URL=postgresql+psycopg://...", file=sys.stderr)
    return results


def main() -> None:
    results = run()
    print_table(results)
    for result in results:
        p, b = result.project, result.baseline
        print(f"{result.case}: project median {p.median_ops_per_s:,.1f} orgs/s (spread {p.spread_pct:.0f}%), "
              f"baseline median {b.median_ops_per_s:,.1f} orgs/s (spread {b.spread_pct:.0f}%), "
              f"ratio {result.ratio:.4f}x, notes {result.notes}")


if __name__ == "__main__":
    main()
