"""The live usage path as users call it (issue 16): ``services.usage.report_usage`` from 1, 4 and 16
client PROCESSES (not threads: the GIL would hide the database), next to the bare driver doing the
same debit SQL from the same number of processes, in the same run and database:

* PostgreSQL (when ``BILLING_BENCH_DATABASE_URL`` or ``BILLING_TEST_DATABASE_URL`` is set): raw
  ``psycopg``; SQLite (always): raw ``sqlite3`` on the same WAL file (``synchronous=NORMAL``,
  ``BEGIN IMMEDIATE``).
* The baseline per event: :func:`benchmarks.raw_debit.raw_debit` (one conditional ``UPDATE`` of
  the wallet row deciding budgets and balance by the spend guard's rules, the ledger transaction,
  its two postings, ``COMMIT``). It writes neither the usage event nor its hourly bucket, checks
  no product subscription and queues no notice: ``report_usage`` does all of that.
* The project per event: ``report_usage(ctx, platform_actor, ...)`` on an organization set up as a
  new user would (the use cases: an organization, its platform token, the ``inference`` product
  subscribed for the whole organization, a large grant, no caps).

Layouts: ``spread`` gives every client process its own organization; ``hot`` puts every client on
ONE organization (one wallet row: the issue's "one hot wallet must not collapse"). Each client runs
``BILLING_BENCH_USAGE_OPS`` / clients events per round (default 800 events per round in all); the
rate is all events over the wall time from the first client's start to the last client's end
(``time.perf_counter`` is CLOCK_MONOTONIC, shared by the processes). Rounds of the project and the
baseline are interleaved. After the run the ledger is audited: the number of usage transactions
equals the events reported, and no wallet is overdrawn.

    PYTHONPATH=. .venv/bin/python -m benchmarks bench_usage_path
    BILLING_BENCH_USAGE_BACKENDS=postgresql BILLING_BENCH_USAGE_CLIENTS=1,16 python -m benchmarks.bench_usage_path
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Uuid, bindparam, text

from adapters.fakes import InMemoryPaymentProvider, SystemClock
from adapters.sqlalchemy import make_engine, migrate, sqlalchemy_uow_factory
from benchmarks.harness import CaseResult, Measurement, print_table
from benchmarks.raw_debit import raw_debit
from billing_core import Permission, services
from billing_core.catalog import load_catalog
from billing_core.services.context import BillingContext

CLIENTS = tuple(int(n) for n in os.environ.get("BILLING_BENCH_USAGE_CLIENTS", "1,4,16").split(","))
OPS = int(os.environ.get("BILLING_BENCH_USAGE_OPS", "800"))
REPEAT = int(os.environ.get("BILLING_BENCH_USAGE_REPEAT", "3"))
LAYOUTS = tuple(os.environ.get("BILLING_BENCH_USAGE_LAYOUTS", "spread,hot").split(","))
PRODUCT = "inference"
QUANTITY = 3
FUNDS = 10**12
DESCRIPTION = "Inference: 3 1K tokens"

# ---------------------------------------------------------------------------------------- the clients


class _Client:
    """One client process's two ways of reporting an event."""

    def __init__(self, url: str, schema: str | None, sqlite_path: str | None) -> None:
        self.engine = make_engine(url, schema=schema, pool_size=1, max_overflow=1)
        self.ctx = BillingContext(uow=sqlalchemy_uow_factory(self.engine), clock=SystemClock(),
                                  catalog=load_catalog(), payments=InMemoryPaymentProvider())
        self.postgres = sqlite_path is None
        if self.postgres:
            import psycopg

            dsn = url.replace("postgresql+psycopg://", "postgresql://")
            options = f"-csearch_path={schema}" if schema else ""
            self.raw: Any = psycopg.connect(dsn, options=options)
            self.p = "%s"
        else:
            self.raw = sqlite3.connect(sqlite_path or "", isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
                self.raw.execute(f"PRAGMA {pragma}")
            self.p = "?"
        self.actors: dict[str, Any] = {}

    def project(self, org: str, secret: str, ops: int, tag: str) -> None:
        actor = self.actors.get(secret)
        if actor is None:
            actor = self.actors[secret] = services.organizations.authenticate(self.ctx, secret)
        org_id = uuid.UUID(org)
        for i in range(ops):
            outcome = services.usage.report_usage(self.ctx, actor, organization_id=org_id,
                                                     event_id=f"{tag}-{i}", product=PRODUCT, quantity=QUANTITY)
            assert outcome.allowed and not outcome.replayed, outcome

    def baseline(self, org: str, amount: int, ops: int, tag: str) -> None:
        org_id = uuid.UUID(org)
        for i in range(ops):
            balance = raw_debit(self.raw, postgres=self.postgres, organization_id=org_id, amount_micros=amount,
                                key=f"usage:{tag}-{i}", now=datetime.now(UTC), description=DESCRIPTION)
            assert balance is not None


def _client_main(pipe: Connection, url: str, schema: str | None, sqlite_path: str | None) -> None:
    client = _Client(url, schema, sqlite_path)
    pipe.send("ready")
    while True:
        job = pipe.recv()
        if job is None:
            break
        kind, start_at, args = job
        while time.perf_counter() < start_at:
            time.sleep(0.0005)
        started = time.perf_counter()
        try:
            getattr(client, kind)(*args)
        except BaseException as exc:  # reported to the parent, which fails the case
            pipe.send(("error", repr(exc)))
            continue
        pipe.send((started, time.perf_counter()))
    client.engine.dispose()
    client.raw.close()


class _Clients:
    def __init__(self, count: int, url: str, schema: str | None, sqlite_path: str | None) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for _ in range(count):
            parent, child = spawn.Pipe()
            process = spawn.Process(target=_client_main, args=(child, url, schema, sqlite_path), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
        for pipe in self.pipes:
            assert pipe.recv() == "ready"

    def run(self, kind: str, args_of: Callable[[int], tuple[Any, ...]]) -> float:
        """Every client runs ``kind(*args_of(i))`` from the same instant; the wall time of them all."""
        start_at = time.perf_counter() + 0.2
        for i, pipe in enumerate(self.pipes):
            pipe.send((kind, start_at, args_of(i)))
        answers = [pipe.recv() for pipe in self.pipes]
        for answer in answers:
            if answer[0] == "error":
                raise AssertionError(f"{kind} client failed: {answer[1]}")
        return float(max(a[1] for a in answers) - min(a[0] for a in answers))

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(timeout=30)


# ---------------------------------------------------------------------------------------- the cases


def _organization(ctx: BillingContext, name: str) -> tuple[str, str]:
    """An organization as a new user sets one up; its id and the platform's token secret."""
    org = services.organizations.create_organization(ctx, name=name, owner_user_id="owner",
                                                     owner_email="owner@bench.test")
    _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="owner", user_id="owner")
    _, platform_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                            scopes=frozenset({Permission.USAGE_WRITE}))
    owner = services.organizations.authenticate(ctx, owner_secret)
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product=PRODUCT,
                                                     project_id=None)
    services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=FUNDS, description="bench",
                                  idempotency_key="bench-grant")
    return str(org.id), platform_secret


_ORG = bindparam("o", type_=Uuid)


def _audit(engine: Engine, orgs: list[str]) -> tuple[int, int]:
    """(usage transactions, overdrawn wallets) of ``orgs``."""
    with engine.connect() as connection:
        usage = overdrawn = 0
        for org in orgs:
            key = uuid.UUID(org)
            usage += connection.execute(text("SELECT count(*) FROM ledger_transactions WHERE organization_id = :o "
                                             "AND kind = 'usage'").bindparams(_ORG), {"o": key}).scalar_one()
            overdrawn += connection.execute(text(
                "SELECT count(*) FROM wallets WHERE organization_id = :o AND "
                "wallet_micros + unbilled_micros + credit_line_micros < 0").bindparams(_ORG), {"o": key}).scalar_one()
    return usage, overdrawn


def _layout_case(pool: _Clients, backend: str, layout: str, clients: int, orgs: list[tuple[str, str]],
                 base_orgs: list[tuple[str, str]], amount: int) -> CaseResult:
    per_client = max(1, OPS // clients)
    total = per_client * clients

    def pick(i: int) -> int:
        return 0 if layout == "hot" else i

    def project(tag: str, ops: int) -> Callable[[int], tuple[Any, ...]]:
        return lambda i: (orgs[pick(i)][0], orgs[pick(i)][1], ops, f"{tag}-{i}")

    def baseline(tag: str, ops: int) -> Callable[[int], tuple[Any, ...]]:
        return lambda i: (base_orgs[pick(i)][0], amount, ops, f"{tag}-{i}")

    warm = f"warm-{secrets.token_hex(3)}"
    pool.run("project", project(warm, 5))
    pool.run("baseline", baseline(warm, 5))
    times: dict[str, list[float]] = {"project": [], "baseline": []}
    for _round in range(REPEAT):
        tag = secrets.token_hex(4)
        times["project"].append(pool.run("project", project(tag, per_client)))
        times["baseline"].append(pool.run("baseline", baseline(tag, per_client)))
    return CaseResult(f"U. report_usage {backend}, {layout}, {clients:>2} proc vs raw",
                      Measurement("project", total, times["project"]),
                      Measurement("baseline", total, times["baseline"]),
                      {"backend": backend, "layout": layout, "client_processes": clients,
                       "events_per_round": total, "rounds": REPEAT})


def _cases(backend: str, url: str, schema: str | None, sqlite_path: str | None, engine: Engine) -> list[CaseResult]:
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=SystemClock(), catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    amount = ctx.catalog.product_by_code(PRODUCT).unit_price_micros * QUANTITY
    orgs = [_organization(ctx, f"Bench {i}") for i in range(max(CLIENTS))]
    base_orgs = [_organization(ctx, f"Baseline {i}") for i in range(max(CLIENTS))]
    results: list[CaseResult] = []
    for clients in CLIENTS:
        pool = _Clients(clients, url, schema, sqlite_path)
        try:
            for layout in LAYOUTS:
                if layout == "hot" and clients == 1:
                    continue  # the same as spread with one client
                results.append(_layout_case(pool, backend, layout, clients, orgs, base_orgs, amount))
        finally:
            pool.close()
    usage, overdrawn = _audit(engine, [org for org, _ in orgs])
    for result in results:
        result.notes["overdrawn_wallets_after_run"] = overdrawn
        result.notes["project_usage_transactions_after_run"] = usage
    return results


def run() -> list[CaseResult]:
    backends = os.environ.get("BILLING_BENCH_USAGE_BACKENDS", "sqlite,postgresql").split(",")
    results: list[CaseResult] = []
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            url = f"sqlite:///{path}"
            engine = make_engine(url)
            try:
                migrate(engine)
                results += _cases("SQLite", url, None, str(path), engine)
            finally:
                engine.dispose()
    pg_url = os.environ.get("BILLING_BENCH_DATABASE_URL") or os.environ.get("BILLING_TEST_DATABASE_URL")
    if "postgresql" in backends and pg_url:
        schema = f"billing_bench_{secrets.token_hex(4)}"
        admin = make_engine(pg_url, pool_size=1)
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        engine = make_engine(pg_url, schema=schema, pool_size=2)
        try:
            migrate(engine)
            results += _cases("PG", pg_url, schema, None, engine)
        finally:
            engine.dispose()
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.dispose()
    elif "postgresql" in backends:
        print("bench_usage_path: PostgreSQL skipped (set BILLING_BENCH_DATABASE_URL)", file=sys.stderr)
    return results


def main() -> None:
    results = run()
    print_table(results)
    for result in results:
        print(result.case, result.notes)


if __name__ == "__main__":
    main()
