"""Period close case: ``services.invoicing.close_period`` over ``BENCH_ORGS`` organizations x 720 hours
x 3 products of hourly usage buckets, next to hand-written SQL on the bare driver doing the same
writes (sqlite3 on SQLite, psycopg on PostgreSQL).

Both do, per organization in one transaction: check the period is not invoiced yet, aggregate the
uninvoiced buckets (``GROUP BY`` project and product), read the currency and the wallet, take the
next gapless number (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on the counter row), insert
the invoice with its items, mark the ~2,160 buckets invoiced (``UPDATE``), post the balanced close
entry (transaction, postings, wallet) and queue the legal invoice in the outbox. The project also
reads the billing settings and tax registrations, validates every value and goes through the unit of
work; the ratio (project throughput / baseline throughput) is the price of that. The project takes the
organization's wallet lock first and marks the buckets and sums them in one statement (``UPDATE ...
RETURNING``; on PostgreSQL summed inside it), so its invoice counts exactly the rows it marked; the
baseline keeps the separate ``GROUP BY`` and ``UPDATE``, which only its lack of concurrency keeps exact. Ops are
organizations closed. The notes also give the read-only ``GROUP BY`` over every organization (the
previous baseline) as ``aggregate_only_orgs_per_s``.

Seeding: organizations through ``services.organizations.create_organization`` with credits, the
buckets inserted directly into the ``usage_buckets`` table (executemany on SQLite, COPY on
PostgreSQL), and one usage ledger transfer per organization for the bucket total, so the stored
unbilled balance matches and the close entry is valid (every organization reconciles after the
close: checked once). After each close (the baseline's and the project's) it is undone with SQL
(buckets reopened; invoices, close entries, outbox rows and the number counter deleted; wallets
restored; on PostgreSQL ``VACUUM ANALYZE`` of the touched tables, so no run pays for the dead rows of
the one before).

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

import msgspec
import psycopg
from sqlalchemy import Engine, text

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import make_engine, migrate, sqlalchemy_uow_factory
from adapters.sqlalchemy.schema import allow_ledger_deletes
from benchmarks.harness import CaseResult, Measurement, print_table
from billing_core.catalog import Catalog, load_catalog
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.money import MICROS_PER_CENT
from billing_core.outbox import OutboxTopic
from billing_core.services import invoicing, organizations, reconcile, wallet
from billing_core.services.context import BillingContext

BENCH_ORGS = min(int(os.environ.get("BILLING_BENCH_CLOSE_ORGS", "1000")), 1000)
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
        self.after_undo: Callable[[], None] = lambda: None
        with engine.connect() as connection:
            self.wallets = [dict(row._mapping) for row in connection.execute(text(
                "SELECT organization_id, wallet_micros, unbilled_micros, version FROM wallets"))]

    def undo(self) -> None:
        with self.engine.begin() as connection:
            allow_ledger_deletes(connection)
            for statement in _UNDO:
                connection.execute(text(statement))
            connection.execute(text("UPDATE wallets SET wallet_micros = :wallet_micros, unbilled_micros = "
                                    ":unbilled_micros, version = :version WHERE organization_id = :organization_id"),
                               self.wallets)
        self.after_undo()


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


class _Driver:
    """The bare driver's connection (sqlite3, or psycopg in autocommit mode), one spelling for both:
    statements are written with ``?`` placeholders; ids and times are bound as each stores them."""

    def __init__(self, connection: Any, *, sqlite: bool) -> None:
        self.connection, self.sqlite = connection, sqlite
        self.begin = "BEGIN IMMEDIATE" if sqlite else "BEGIN"
        self.for_update = "" if sqlite else " FOR UPDATE"

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        return self.connection.execute(statement if self.sqlite else statement.replace("?", "%s"), params)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if self.sqlite:
            self.connection.executemany(statement, rows)
        else:
            with self.connection.cursor() as cursor:
                cursor.executemany(statement.replace("?", "%s"), rows)

    def uid(self, value: uuid.UUID) -> Any:
        return value.hex if self.sqlite else value

    def text_id(self, value: Any) -> str | None:
        """A stored id as the canonical UUID text (SQLite keeps 32 hex digits)."""
        return None if value is None else str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))

    def ts(self, value: datetime) -> Any:
        if self.sqlite:
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value


def _cents(micros: int) -> int:
    sign, (whole, rest) = (-1 if micros < 0 else 1), divmod(abs(micros), MICROS_PER_CENT)
    return sign * (whole + (rest * 2 >= MICROS_PER_CENT))


def _raw_close(db: _Driver, catalog: Catalog, start: datetime, end: datetime, now: datetime) -> int:
    """The period close as hand-written SQL: per organization one transaction with the same reads
    and writes as ``close_period`` (no settings or tax registrations read: no tax)."""
    products = {key: product for product in catalog.products for key in (product.id, product.id.hex)}
    orgs = [row[0] for row in db.execute(
        "SELECT DISTINCT organization_id FROM usage_buckets WHERE invoice_id IS NULL AND hour < ? "
        "ORDER BY organization_id", (db.ts(end),)).fetchall()]
    closed = 0
    for org in orgs:
        db.execute(db.begin)
        if db.execute("SELECT 1 FROM invoices WHERE organization_id = ? AND period_start = ?",
                      (org, db.ts(start))).fetchone() is not None:
            db.execute("COMMIT")
            continue
        groups = db.execute(
            "SELECT project_id, product_id, sum(quantity), sum(amount_micros), min(hour) FROM usage_buckets "
            "WHERE organization_id = ? AND invoice_id IS NULL AND hour < ? GROUP BY project_id, product_id",
            (org, db.ts(end))).fetchall()
        (currency,) = db.execute("SELECT currency_iso FROM organizations WHERE id = ?", (org,)).fetchone()
        wallet_micros, unbilled_micros = db.execute(
            f"SELECT wallet_micros, unbilled_micros FROM wallets WHERE organization_id = ?{db.for_update}",
            (org,)).fetchone()
        items: list[dict[str, Any]] = []
        for project_id, product_id, quantity, micros, _first_hour in groups:
            product = products[product_id]
            items.append({"product_id": str(product.id), "product": product.name,
                          "project_id": db.text_id(project_id), "quantity": int(quantity), "unit": product.unit,
                          "unit_price_micros": product.unit_price_micros, "amount_micros": int(micros),
                          "amount": {"cents": _cents(int(micros)), "currency_iso": currency}})
        items.sort(key=lambda item: (item["product"], str(item["project_id"])))
        usage = sum(item["amount_micros"] for item in items)
        subtotal = sum(item["amount"]["cents"] for item in items)
        credit = min(subtotal, wallet_micros // MICROS_PER_CENT) if subtotal > 0 and wallet_micros > 0 else 0
        (number,) = db.execute(
            "INSERT INTO invoice_counters (prefix, last_number) VALUES (?, 1) ON CONFLICT (prefix) DO UPDATE "
            "SET last_number = invoice_counters.last_number + 1 RETURNING last_number", ("INV-",)).fetchone()
        invoice_id = uuid.uuid4()
        paid = subtotal - credit <= 0
        db.execute(
            "INSERT INTO invoices (id, organization_id, period_start, period_end, status, currency_iso, items, "
            "usage_micros, subtotal_cents, credit_applied_cents, tax_treatment, tax_rate_basis_points, tax_cents, "
            "created_at, number, finalized_at, due_at, paid_at, includes_earlier_usage) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'no_vat', 0, 0, ?, ?, ?, ?, ?, ?)",
            (db.uid(invoice_id), org, db.ts(start), db.ts(end), "paid" if paid else "open", currency,
             msgspec.json.encode(items).decode(), usage, subtotal, credit, db.ts(now), f"INV-{number:06d}",
             db.ts(now), db.ts(now + timedelta(days=14)), db.ts(now) if paid else None, False))
        db.execute("UPDATE usage_buckets SET invoice_id = ? WHERE organization_id = ? AND invoice_id IS NULL "
                   "AND hour < ?", (db.uid(invoice_id), org, db.ts(end)))
        applied, owed = credit * MICROS_PER_CENT, (subtotal - credit) * MICROS_PER_CENT
        postings = [(account, amount) for account, amount in (
            (Account.UNBILLED_USAGE, usage), (Account.WALLET, -applied), (Account.RECEIVABLE, -owed),
            (Account.REVENUE, -(usage - subtotal * MICROS_PER_CENT))) if amount != 0]
        if len(postings) >= 2:
            wallet_after, unbilled_after = wallet_micros - applied, unbilled_micros + usage
            (seq,) = db.execute(
                "INSERT INTO ledger_transactions (id, organization_id, idempotency_key, kind, description, "
                "reference, created_at, wallet_balance_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (db.uid(uuid.uuid4()), org, f"invoice-close:{db.text_id(org)}:{start.isoformat()}",
                 EntryKind.INVOICE_CREDIT_APPLIED.value, f"Applied credit balance to invoice INV-{number:06d}",
                 str(invoice_id), db.ts(now), wallet_after + unbilled_after)).fetchone()
            db.executemany("INSERT INTO ledger_postings (transaction_seq, line_no, organization_id, account, "
                           "amount_micros) VALUES (?, ?, ?, ?, ?)",
                           [(seq, line, org, account.value, amount) for line, (account, amount) in enumerate(postings)])
            db.execute("UPDATE wallets SET wallet_micros = ?, unbilled_micros = ?, version = version + 1 "
                       "WHERE organization_id = ?", (wallet_after, unbilled_after, org))
        db.execute("INSERT INTO outbox_messages (id, organization_id, topic, payload, created_at, dedupe_key, status, "
                   "attempts) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0)",
                   (db.uid(uuid.uuid4()), org, OutboxTopic.LEGAL_INVOICE.value,
                    msgspec.json.encode({"invoice_id": str(invoice_id)}).decode(), db.ts(now),
                    f"legal-invoice:{invoice_id}"))
        db.execute("COMMIT")
        closed += 1
    return closed


def _interleaved(case: str, seeded: _Seeded, db: _Driver, aggregate: Callable[[], int],
                 notes: dict[str, object]) -> CaseResult:
    orgs = len(seeded.org_ids)
    start, end = invoicing.parse_period(PERIOD)
    project_times: list[float] = []
    baseline_times: list[float] = []
    aggregate_times: list[float] = []
    for round_no in range(REPEAT):
        started = time.perf_counter()
        groups = aggregate()
        aggregate_times.append(time.perf_counter() - started)
        assert groups == orgs * len(PRODUCTS), groups
        started = time.perf_counter()
        closed = _raw_close(db, seeded.ctx.catalog, start, end, CLOSE_AT)
        baseline_times.append(time.perf_counter() - started)
        assert closed == orgs, closed
        seeded.undo()
        started = time.perf_counter()
        report = invoicing.close_period(seeded.ctx, period=PERIOD)
        project_times.append(time.perf_counter() - started)
        assert report.invoices_created == orgs, report
        if round_no == 0:
            for org_id in seeded.org_ids:
                reconcile.reconcile(seeded.ctx, organization_id=org_id, strict=True)
        seeded.undo()
    return CaseResult(case, Measurement("project", orgs, project_times), Measurement("baseline", orgs, baseline_times),
                      {**notes, "organizations": orgs, "buckets": seeded.rows, "rounds": REPEAT,
                       "aggregate_only_orgs_per_s": round(Measurement("aggregate", orgs, aggregate_times)
                                                          .median_ops_per_s, 1)})


def _sqlite_case(orgs: int) -> CaseResult:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            migrate(engine)
            # the engine's settings (adapters.sqlalchemy.engine): WAL, synchronous=NORMAL, foreign keys on
            for pragma in ("busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON"):
                db.execute(f"PRAGMA {pragma}")

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

            def group_by() -> int:
                return len(db.execute(aggregate, (end,)).fetchall())

            return _interleaved("P1. period close, SQLAlchemy/SQLite vs the same SQL on sqlite3", seeded,
                                _Driver(db, sqlite=True), group_by, {"journal": "WAL"})
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
        aggregate = AGGREGATE.format(end="%s")

        def group_by() -> int:
            with db.cursor() as cursor:
                return len(cursor.execute(aggregate, (END,)).fetchall())

        def vacuum() -> None:
            for table in ("usage_buckets", "invoices", "ledger_transactions", "ledger_postings", "outbox_messages",
                          "wallets", "invoice_counters"):
                db.execute(f"VACUUM ANALYZE {table}")

        seeded.after_undo = vacuum
        vacuum()
        return _interleaved("P2. period close, SQLAlchemy/PostgreSQL vs the same SQL on psycopg", seeded,
                            _Driver(db, sqlite=False), group_by, {})
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
