"""Ingestion case: batched usage through ``services.usage.report_usage_batch`` (batches of 1,000,
each one unit of work: price, subscription check, per-event spend-guard debit + ledger append, event
insert and hourly-bucket upsert, notices) on SQLite (a temporary file) and PostgreSQL (a fresh
schema, when configured), next to a raw bulk load of the same rows with the bare driver: per batch,
``executemany`` (sqlite3) or ``COPY`` (psycopg) into ``usage_events`` plus one bucket upsert per
event (``executemany``), then ``COMMIT``.

The baseline does no wallet debit and no ledger write: the ratio is the price of the whole
billing hot path per event against just storing the usage. The two sides
alternate in rounds (each side's figure is its median round), each on its own organization in the
same database; afterwards both organizations' event counts and bucket totals are checked by SQL and
reported in ``notes``.

    BILLING_BENCH_INGEST_EVENTS=100000 (default; smaller is fine; rounded down to whole rounds)
    BILLING_BENCH_INGEST_ROUNDS=5 (default: each case alternates 5 rounds of each side)
    BILLING_BENCH_INGEST_CATCH_UP=timed (I3: the wait for the worker's catch-up counts in the route's
        round; by default it is untimed and only reported)
    BILLING_BENCH_DATABASE_URL (or BILLING_TEST_DATABASE_URL)=postgresql+psycopg://...  adds PostgreSQL

On PostgreSQL the batch route is measured too (case I3): ``POST /organizations/{id}/usage/events/batch``
of ``billing serve`` (a subprocess) with the same events, 1,000 per request on one keep-alive
connection, in rounds alternated with a ``COPY`` of the same rows; before each ``COPY`` round the
server's background worker has caught up the grants of what the route wrote (untimed, the waits are
in ``notes``), so that catch-up never runs into the baseline's rounds. The route's rounds carry
whatever of the catch-up the worker did while they ran (it sweeps at most every
``BILLING_GRANT_CATCH_UP_INTERVAL``, 1 s): with rounds shorter than that much of it falls into the
waits, which is why the default size makes rounds of 20,000 events.
"""

from __future__ import annotations

import http.client
import os
import secrets
import sqlite3
import statistics
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
from sqlalchemy import Engine, func, select

from adapters.fakes import FixedClock, InMemoryPaymentProvider, InMemoryTaxIdVerifier
from adapters.sqlalchemy import make_engine, migrate
from adapters.sqlalchemy.tables import NIL_UUID, grant_cursors, ledger_transactions, usage_buckets, usage_events
from adapters.sqlalchemy.uow import sqlalchemy_uow_factory
from benchmarks.harness import CaseResult, Measurement, print_table
from billing_core.catalog import load_catalog
from billing_core.organization import Organization
from billing_core.permissions import Actor, Permission
from billing_core.services.context import BillingContext
from billing_core.services.grants import catch_up_organization
from billing_core.services.organizations import authenticate, create_organization, issue_token
from billing_core.services.product_subscriptions import subscribe_product
from billing_core.services.usage import MAX_BATCH, UsageEventInput, report_usage_batch
from billing_core.services.wallet import grant_credits
from billing_core.usage import truncate_to_hour

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PRODUCTS = ("compute", "storage", "inference")
HOURS = 48
"""Events are spread over the last 48 hours, so bucket upserts hit 3 x 48 open buckets."""
GRANT_MICROS = 10**13
ROUNDS = int(os.environ.get("BILLING_BENCH_INGEST_ROUNDS", "5"))
"""Billing-core and the baseline alternate this many rounds."""
CATCH_UP_TIMED = os.environ.get("BILLING_BENCH_INGEST_CATCH_UP", "untimed") == "timed"
"""I3: whether the wait for the worker's catch-up after each route round counts in the round."""


def _rounds(count: int) -> tuple[int, int]:
    """(events per round, rounds): ``ROUNDS`` rounds of whole batches, ``count`` rounded down."""
    per_round = max(1, count // (ROUNDS * MAX_BATCH)) * MAX_BATCH if count >= MAX_BATCH else count
    return per_round, max(1, count // per_round)

Row = tuple[str, uuid.UUID, int, datetime, int, int]
"""event_id, product_id, quantity, occurred_at, amount_micros, unit_price_micros."""


def _events(count: int) -> list[UsageEventInput]:
    return [UsageEventInput(event_id=f"evt-{i:07d}", product=PRODUCTS[i % 3], quantity=1 + i % 5,
                            occurred_at=NOW - timedelta(hours=i % HOURS, minutes=i % 60)) for i in range(count)]


def _context(engine: Engine) -> BillingContext:
    """Like ``adapters.fakes.bundle``, but storing through SQLAlchemy."""
    return BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(NOW), catalog=load_catalog(),
                          payments=InMemoryPaymentProvider(), tax_ids=InMemoryTaxIdVerifier())


def _organization(ctx: BillingContext, name: str) -> tuple[Organization, Actor]:
    org, actor, _ = _organization_with_token(ctx, name)
    return org, actor


def _organization_with_token(ctx: BillingContext, name: str) -> tuple[Organization, Actor, str]:
    """An organization subscribed (org-wide) to the 3 products, with credits and a usage token."""
    org = create_organization(ctx, name=name, owner_user_id="owner", owner_email="owner@example.com")
    _, owner_secret = issue_token(ctx, organization_id=org.id, name="owner", user_id="owner")
    owner = authenticate(ctx, owner_secret)
    for product in PRODUCTS:
        subscribe_product(ctx, owner, organization_id=org.id, product=product, project_id=None,
                          start_date=NOW - timedelta(days=30))
    grant_credits(ctx, organization_id=org.id, amount_micros=GRANT_MICROS, description="bench",
                  idempotency_key="bench-grant")
    _, service_secret = issue_token(ctx, organization_id=org.id, name="ingest",
                                    scopes=frozenset({Permission.USAGE_WRITE}))
    return org, authenticate(ctx, service_secret), service_secret


def _rows(ctx: BillingContext, events: list[UsageEventInput]) -> list[Row]:
    """The rows the service stores for ``events`` (same pricing inputs, priced here)."""
    found = []
    for event in events:
        product = ctx.catalog.product_by_code(str(event.product))
        assert event.occurred_at is not None
        found.append((event.event_id, product.id, event.quantity, event.occurred_at,
                      event.quantity * product.unit_price_micros, product.unit_price_micros))
    return found


def _batches(items: list[Any]) -> list[list[Any]]:
    return [items[i:i + MAX_BATCH] for i in range(0, len(items), MAX_BATCH)]


def _project(ctx: BillingContext, actor: Actor, org_id: uuid.UUID, events: list[UsageEventInput]) -> int:
    allowed = 0
    for batch in _batches(events):
        outcomes = report_usage_batch(ctx, actor, organization_id=org_id, events=batch)
        allowed += sum(1 for o in outcomes if o.allowed and not o.replayed)
    return allowed


_SQLITE_EVENT = ("INSERT INTO usage_events (organization_id, event_id, project_id, product_id, quantity, "
                 "occurred_at, amount_micros, unit_price_micros) VALUES (?, ?, NULL, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (organization_id, event_id) DO NOTHING")
_BUCKET_UPSERT = """
INSERT INTO usage_buckets (organization_id, project_id, project_key, product_id, hour, quantity, amount_micros,
                           invoice_id)
VALUES ({p}, NULL, {p}, {p}, {p}, {p}, {p}, NULL)
ON CONFLICT (organization_id, project_key, product_id, hour) WHERE invoice_id IS NULL
DO UPDATE SET quantity = usage_buckets.quantity + excluded.quantity,
              amount_micros = usage_buckets.amount_micros + excluded.amount_micros
"""


def _sqlite_text(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_baseline(path: Path, org_id: uuid.UUID, rows: list[Row]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        org, nil = org_id.hex, NIL_UUID.hex
        upsert = _BUCKET_UPSERT.format(p="?")
        for batch in _batches(rows):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_SQLITE_EVENT, [(org, e, p.hex, q, _sqlite_text(at), a, u) for e, p, q, at, a, u in batch])
            db.executemany(upsert, [(org, nil, p.hex, _sqlite_text(truncate_to_hour(at)), q, a)
                                    for _, p, q, at, a, _ in batch])
            db.execute("COMMIT")
    finally:
        db.close()


def _postgres_baseline(url: str, schema: str, org_id: uuid.UUID, rows: list[Row]) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    upsert = _BUCKET_UPSERT.format(p="%s")
    with psycopg.connect(dsn, options=f"-csearch_path={schema}") as db:
        for batch in _batches(rows):
            with db.cursor() as cursor:
                with cursor.copy("COPY usage_events (organization_id, event_id, project_id, product_id, quantity, "
                                 "occurred_at, amount_micros, unit_price_micros) FROM STDIN") as copy:
                    for e, p, q, at, a, u in batch:
                        copy.write_row((org_id, e, None, p, q, at, a, u))
                cursor.executemany(upsert, [(org_id, NIL_UUID, p, truncate_to_hour(at), q, a)
                                            for _, p, q, at, a, _ in batch])
            db.commit()


def _route(port: int, org_id: uuid.UUID, secret: str, events: list[UsageEventInput]) -> float:
    """``POST /organizations/{id}/usage/events/batch`` with every batch, one after another on one
    keep-alive connection; the seconds it took. Bodies are encoded, and answers checked, untimed."""
    bodies = [msgspec.json.encode({"events": [{"event_id": e.event_id, "product": e.product, "quantity": e.quantity,
                                               "occurred_at": e.occurred_at} for e in batch]})
              for batch in _batches(events)]
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    path = f"/organizations/{org_id}/usage/events/batch"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    answers: list[tuple[int, bytes]] = []
    try:
        started = time.perf_counter()
        for body in bodies:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    for status, answer in answers:
        assert status == 200, answer[:500]
        results = msgspec.json.decode(answer)["results"]
        assert all(r["allowed"] and not r["replayed"] for r in results), answer[:500]
    return seconds


def _check(engine: Engine, org_id: uuid.UUID) -> tuple[int, int, int]:
    """(events, bucket quantity, bucket amount) stored for ``org_id``."""
    e, b = usage_events.c, usage_buckets.c
    with engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(usage_events)
                                    .where(e.organization_id == org_id)).scalar_one()
        quantity, amount = connection.execute(
            select(func.coalesce(func.sum(b.quantity), 0), func.coalesce(func.sum(b.amount_micros), 0))
            .where(b.organization_id == org_id)).one()
    return int(events), int(quantity), int(amount)


def _case(case: str, engine: Engine, count: int, baseline: Callable[[uuid.UUID, list[Row]], None],
          notes: dict[str, object]) -> CaseResult:
    """Billing-core and the baseline in alternating rounds of whole batches (``ROUNDS`` of each),
    so both see the machine at the same moments: on a shared 2-core machine the baseline alone
    swung by ±30 % between one pass and the next. Each side's figure is its median round."""
    ctx = _context(engine)
    per_round, rounds = _rounds(count)
    count = rounds * per_round
    events = _events(count)
    rows = _rows(ctx, events)
    project_org, actor = _organization(ctx, "Bench ingest")
    baseline_org, _ = _organization(ctx, "Bench baseline")
    warm = _events(MAX_BATCH)  # warm caches and the pool on throwaway organizations
    warm_org, warm_actor = _organization(ctx, "Bench warm")
    _project(ctx, warm_actor, warm_org.id, warm)
    baseline(_organization(ctx, "Bench warm baseline")[0].id, _rows(ctx, warm))

    allowed = 0
    project_seconds: list[float] = []
    baseline_seconds: list[float] = []
    for start in range(0, count, per_round):
        started = time.perf_counter()
        allowed += _project(ctx, actor, project_org.id, events[start:start + per_round])
        project_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        baseline(baseline_org.id, rows[start:start + per_round])
        baseline_seconds.append(time.perf_counter() - started)

    stored_project, stored_baseline = _check(engine, project_org.id), _check(engine, baseline_org.id)
    expected = (count, sum(r[2] for r in rows), sum(r[4] for r in rows))
    notes.update(events=count, batch=MAX_BATCH, rounds=rounds, project_allowed=allowed,
                 project_stored_ok=stored_project == expected, baseline_stored_ok=stored_baseline == expected,
                 project_events_per_s=round(count / sum(project_seconds)),
                 baseline_events_per_s=round(count / sum(baseline_seconds)),
                 round_ratios=[round(b / p, 3) for p, b in zip(project_seconds, baseline_seconds, strict=True)])
    return CaseResult(case, Measurement("project", per_round, project_seconds),
                      Measurement("baseline", per_round, baseline_seconds), notes)


def _sqlite_case(count: int) -> CaseResult:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        engine = make_engine(f"sqlite:///{path}")
        try:
            migrate(engine)
            return _case("I1. ingest batch, SQLAlchemy/SQLite vs sqlite3", engine, count,
                         lambda org, rows: _sqlite_baseline(path, org, rows),
                         {"journal": "WAL", "synchronous": "NORMAL", "baseline": "executemany"})
        finally:
            engine.dispose()


def _postgres_case(url: str, count: int) -> list[CaseResult]:
    admin = make_engine(url, pool_size=1)
    schema = f"billing_bench_{secrets.token_hex(4)}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(url, schema=schema)
    try:
        migrate(engine)
        library = _case("I2. ingest batch, SQLAlchemy/PG vs psycopg COPY", engine, count,
                        lambda org, rows: _postgres_baseline(url, schema, org, rows),
                        {"baseline": "COPY + executemany upsert"})
        return [library, _route_case(url, schema, engine, count, library)]
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def _route_case(url: str, schema: str, engine: Engine, count: int, library: CaseResult) -> CaseResult:
    """The batch route of ``billing serve`` (a subprocess, one server process, as the CLI ships it),
    in rounds alternated with a COPY of the same rows on the same database. Before each COPY round
    the server's worker has caught up the grants of what the route wrote (the wait is in the notes,
    and in the route's round with ``BILLING_BENCH_INGEST_CATCH_UP=timed``), so the COPY never
    shares the machine with that catch-up; the route's rounds carry whatever of it the worker did
    while they ran."""
    from benchmarks.bench_usage_http import _free_port, _server

    ctx = _context(engine)
    per_round, rounds = _rounds(count)
    count = rounds * per_round
    events = _events(count)
    rows = _rows(ctx, events)
    org, _, secret = _organization_with_token(ctx, "Bench route")
    warm_org, _, warm_secret = _organization_with_token(ctx, "Bench route warm")
    baseline_org, _ = _organization(ctx, "Bench route baseline")
    _catch_up_everyone(ctx)
    port = _free_port()
    env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_DATABASE_SCHEMA": schema, "BILLING_ENV": "development",
           "BILLING_DEMO": "0", "BILLING_DATA_DIR": tempfile.mkdtemp(prefix="billing-bench-")}
    serve = [sys.executable, "-c", "from entrypoints.cli.main import app; app()", "serve", "--port", str(port)]
    route_seconds: list[float] = []
    baseline_seconds: list[float] = []
    catch_up_waits: list[float] = []
    with _server(serve, env, port, "/healthz"):
        _route(port, warm_org.id, warm_secret, _events(MAX_BATCH))
        _postgres_baseline(url, schema, _organization(ctx, "Bench route warm baseline")[0].id,
                           _rows(ctx, _events(MAX_BATCH)))
        for start in range(0, count, per_round):
            sent = _route(port, org.id, secret, events[start:start + per_round])
            catch_up_waits.append(_caught_up(engine, org.id))
            route_seconds.append(sent + (catch_up_waits[-1] if CATCH_UP_TIMED else 0.0))
            started = time.perf_counter()
            _postgres_baseline(url, schema, baseline_org.id, rows[start:start + per_round])
            baseline_seconds.append(time.perf_counter() - started)
    expected = (count, sum(r[2] for r in rows), sum(r[4] for r in rows))
    notes: dict[str, object] = {
        "events": count, "batch": MAX_BATCH, "rounds": rounds, "baseline": "COPY + executemany upsert",
        "route_stored_ok": _check(engine, org.id) == expected,
        "route_events_per_s": round(count / sum(route_seconds)),
        "baseline_events_per_s": round(count / sum(baseline_seconds)),
        "round_ratios": [round(b / r, 3) for r, b in zip(route_seconds, baseline_seconds, strict=True)],
        "catch_up_wait_s": [round(w, 2) for w in catch_up_waits],
        "route_vs_library": round(per_round / statistics.median(route_seconds) / library.project.median_ops_per_s, 3)}
    return CaseResult("I3. ingest batch, POST usage/events/batch (PG) vs psycopg COPY",
                      Measurement("project", per_round, route_seconds),
                      Measurement("baseline", per_round, baseline_seconds), notes)


def _catch_up_everyone(ctx: BillingContext) -> None:
    """Allocate every organization's ledger to its grants, untimed. The library cases write into the
    same schema with no worker beside them; the served app's worker would otherwise allocate their
    100,000 transactions during the route's rounds (until 2026-12-07 it did)."""
    with ctx.uow() as uow:
        late = uow.grants.behind(10_000)
    for organization_id in late:
        catch_up_organization(ctx, organization_id)


def _caught_up(engine: Engine, org_id: uuid.UUID, timeout: float = 300.0) -> float:
    """Wait until the served app's worker has allocated every ledger transaction of ``org_id`` to
    its grants (its grant cursor at the ledger's last ``seq``); the seconds it took."""
    t, c = ledger_transactions.c, grant_cursors.c
    last = select(func.max(t.seq)).where(t.organization_id == org_id).scalar_subquery()
    cursor = select(c.sequence).where(c.organization_id == org_id).scalar_subquery()
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with engine.connect() as connection:
            if connection.execute(select(func.coalesce(cursor, 0) >= last)).scalar_one():
                return time.perf_counter() - started
        time.sleep(0.01)
    raise TimeoutError("the server's worker did not catch up the route's grants")


def run() -> list[CaseResult]:
    count = int(os.environ.get("BILLING_BENCH_INGEST_EVENTS", "100000"))
    results = [_sqlite_case(count)]
    url = os.environ.get("BILLING_BENCH_DATABASE_URL") or os.environ.get("BILLING_TEST_DATABASE_URL")
    if url:
        results += _postgres_case(url, count)
    else:
        print("PostgreSQL ingestion case skipped: set BILLING_BENCH_DATABASE_URL=postgresql+psycopg://...",
              file=sys.stderr)
    return results


def main() -> None:
    results = run()
    print_table(results)
    for result in results:
        print(result.case, result.notes)


if __name__ == "__main__":
    main()
