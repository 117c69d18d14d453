"""The live usage path over HTTP (issue 16): ``POST /organizations/{id}/usage/events`` against
``billing serve`` (a subprocess, as the CLI ships it: uvicorn, access log off, background worker
on) next to a bare Litestar app on the same uvicorn whose handler does the same debit in raw SQL
(``benchmarks/bare_usage_app.py``), with load from separate client processes
(``benchmarks/usage_load.py``; every request a new event id), interleaved round by round. Each
server has a database of its own (a SQLite file, a PostgreSQL schema), so that one server's
background worker does not allocate the credit grants of another server's traffic.

SQLite (one server process, as ``billing serve`` allows there) always; PostgreSQL when
``BILLING_BENCH_DATABASE_URL`` (or ``BILLING_TEST_DATABASE_URL``) is set, with
``BILLING_BENCH_HTTP_WORKERS`` server processes (default ``1,2``; the bare app gets as many).
``BILLING_BENCH_HTTP_CLIENTS`` connections (default ``1,16``, spread over up to 4 client
processes), ``BILLING_BENCH_USAGE_HTTP_REQUESTS`` per round (1,000), 2 rounds each. Notes carry
p50 / p99 latencies and the 1-minute load average before and after each case's rounds.
``BILLING_BENCH_SRC`` puts another checkout's ``src`` first on the server's
``PYTHONPATH`` (to measure a "before" with the same harness); ``BILLING_BENCH_BEFORE_SRC`` instead
runs a third server from that ``src`` in the same rounds (interleaved with the other two) and adds
its throughput and latencies to the notes (``before_ops_s``, ``before_p50_ms``, ...): a before/after
on one machine state, which a shared machine needs.

``BILLING_BENCH_USAGE_HTTP_MODE=sustained`` runs each server's rounds back to back instead of
interleaved: interleaving lets a server's background worker catch up while the other servers take
their turn, which hides what the worker costs a server under steady load.
``BILLING_BENCH_HTTP_WORKER`` picks where the server's background worker runs: ``shipped`` (default:
as ``billing serve`` ships it, a worker process it supervises), ``thread`` (``BILLING_WORKER=thread``,
in the server process), ``separate`` (``BILLING_WORKER=false`` beside a ``billing worker`` the
benchmark starts: the topology of web processes plus a worker).

    PYTHONPATH=. .venv/bin/python -m benchmarks bench_usage_http
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine

from adapters.fakes import InMemoryPaymentProvider, SystemClock
from adapters.sqlalchemy import make_engine, migrate, sqlalchemy_uow_factory
from benchmarks.bench_usage_path import PRODUCT, QUANTITY, _organization
from benchmarks.harness import CaseResult, Measurement, print_table
from billing_core.catalog import load_catalog
from billing_core.services.context import BillingContext

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BILLING_BENCH_USAGE_HTTP_REQUESTS", "1000"))
CLIENTS = tuple(int(n) for n in os.environ.get("BILLING_BENCH_HTTP_CLIENTS", "1,16").split(","))
WORKERS = tuple(int(n) for n in os.environ.get("BILLING_BENCH_HTTP_WORKERS", "1,2").split(","))
REPEAT = int(os.environ.get("BILLING_BENCH_USAGE_HTTP_REPEAT", "2"))
SUSTAINED = os.environ.get("BILLING_BENCH_USAGE_HTTP_MODE", "interleaved") == "sustained"
WORKER = os.environ.get("BILLING_BENCH_HTTP_WORKER", "shipped")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(command: list[str], env: dict[str, str], port: int, health: str) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        yield from _served(command, env, port, health, log)


@contextmanager
def _billing_server(command: list[str], env: dict[str, str], port: int) -> Iterator[None]:
    """``billing serve`` with its background worker where ``BILLING_BENCH_HTTP_WORKER`` says."""
    if WORKER != "separate":
        with _server(command, {**env, "BILLING_WORKER": "thread"} if WORKER == "thread" else env, port, "/healthz"):
            yield
        return
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen([*command[:3], "worker"], env=env, cwd=ROOT, stdout=log, stderr=log)  # noqa: S603
        try:
            with _server(command, {**env, "BILLING_WORKER": "false"}, port, "/healthz"):
                yield
        finally:
            _stop(worker)


def _served(command: list[str], env: dict[str, str], port: int, health: str, log: Any) -> Iterator[None]:
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)  # noqa: S603 - our own argv
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{command[:4]} did not start: {log.read()[-2000:]!r}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=1):
                    break
            except OSError as exc:
                if getattr(exc, "code", None) is not None:  # any HTTP answer: it is up
                    break
                time.sleep(0.2)
        yield
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _load(port: int, path: str, token: str | None, connections: int, count: int, tag: str) -> dict[str, Any]:
    job = {"host": "127.0.0.1", "port": port, "path": path, "token": token, "connections": connections,
           "processes": min(4, connections), "count": count, "tag": tag, "status": 201, "product": PRODUCT,
           "quantity": QUANTITY}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "usage_load.py"), json.dumps(job)],  # noqa: S603
                          capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise AssertionError(f"load client failed: {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    if "error" in answer:
        raise AssertionError(f"load client: {answer['error']}")
    return answer


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Store(NamedTuple):
    """One server's own database: a context on it, the server's and the bare app's settings for it."""

    ctx: BillingContext
    env: dict[str, str]
    bare_env: dict[str, str]


def _backend_cases(backend: str, store: Callable[[], _Store], workers: int) -> list[CaseResult]:
    """Every server (billing-core, the bare app, the "before" code) on a database of its own, made by
    ``store``: a server's background worker allocates the credit grants of every organization of its
    database (ADR 0016), so on a shared one each worker also did the others' traffic's grants."""
    own, bare_store = store(), store()
    org, token = _organization(own.ctx, f"HTTP {backend} {workers}")
    base_org, _ = _organization(bare_store.ctx, f"HTTP bare {backend} {workers}")
    unit = own.ctx.catalog.product_by_code(PRODUCT).unit_price_micros
    env = {**os.environ, **own.env, "BILLING_ENV": "development", "BILLING_DEMO": "0",
           "BILLING_DATA_DIR": tempfile.mkdtemp(prefix="billing-bench-")}
    source = os.environ.get("BILLING_BENCH_SRC")
    if source:
        env["PYTHONPATH"] = os.pathsep.join([source, str(ROOT)])
    app_port, bare_port, before_port = _free_port(), _free_port(), _free_port()
    serve = [sys.executable, "-c", "from entrypoints.cli.main import app; app()", "serve", "--port", str(app_port),
             "--workers", str(workers)]
    before_source = os.environ.get("BILLING_BENCH_BEFORE_SRC")
    before_store = store() if before_source else own
    before_org, before_token = _organization(before_store.ctx, f"HTTP before {backend} {workers}") \
        if before_source else (org, token)
    before_env = {**env, **before_store.env, "PYTHONPATH": os.pathsep.join([before_source or "", str(ROOT)]),
                  "BILLING_DATA_DIR": tempfile.mkdtemp(prefix="billing-bench-")}
    before_serve = [*serve[:5], str(before_port), *serve[6:]]
    # The same uvicorn settings as billing serve (its httptools protocol with TCP_NODELAY, no access log).
    bare = [sys.executable, "-c", "import sys, uvicorn; from entrypoints.http.tcp import NoDelayHttpToolsProtocol; "
            "uvicorn.run('benchmarks.bare_usage_app:create', factory=True, host='127.0.0.1', port=int(sys.argv[1]), "
            "workers=int(sys.argv[2]), access_log=False, log_level='warning', http=NoDelayHttpToolsProtocol)",
            str(bare_port), str(workers)]
    bare_full_env = {**os.environ, **bare_store.bare_env, "BENCH_BARE_UNIT_PRICE": str(unit),
                     "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    results: list[CaseResult] = []
    with ExitStack() as stack:
        stack.enter_context(_billing_server(serve, env, app_port))
        stack.enter_context(_server(bare, bare_full_env, bare_port, "/"))
        path, base_path = f"/organizations/{org}/usage/events", f"/organizations/{base_org}/usage/events"
        servers = [("project", app_port, path, token), ("baseline", bare_port, base_path, None)]
        if before_source:
            stack.enter_context(_billing_server(before_serve, before_env, before_port))
            servers.append(("before", before_port, f"/organizations/{before_org}/usage/events", before_token))
        for connections in CLIENTS:
            warm = secrets.token_hex(3)
            for _name, port, target, auth in servers:
                _load(port, target, auth, connections, max(50, connections * 5), f"w{warm}")
            load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
            times: dict[str, list[float]] = {name: [] for name, *_ in servers}
            latencies: dict[str, list[float]] = {name: [] for name, *_ in servers}
            # Sustained: one turn per server, its REPEAT rounds back to back.
            turns, per_turn = (1, REPEAT) if SUSTAINED else (REPEAT, 1)
            for round_ in range(turns):
                tag = secrets.token_hex(4)
                # Each round starts with the next server: two A/A runs favoured whichever ran third
                # by 7-11 % (the machine warms up, others' load shifts), so no server keeps one place.
                shift = round_ % len(servers)
                for name, port, target, auth in servers[shift:] + servers[:shift]:
                    for _ in range(per_turn):
                        answer = _load(port, target, auth, connections, REQUESTS, tag + secrets.token_hex(2))
                        times[name].append(float(answer["seconds"]))
                        latencies[name] += answer["latencies_ms"]
            notes: dict[str, object] = {"backend": backend, "server_processes": workers, "connections": connections,
                                        "client_processes": min(4, connections), "requests_per_round": REQUESTS,
                                        "rounds": REPEAT,
                                        "mode": "sustained" if SUSTAINED else "interleaved",
                                        "worker": WORKER,
                                        "load_avg_1m_before": round(load_before, 2),
                                        "load_avg_1m_after": round(os.getloadavg()[0], 2)}
            for name, values in latencies.items():
                notes[f"{name}_p50_ms"] = round(statistics.median(values), 2)
                notes[f"{name}_p99_ms"] = round(_percentile(values, 0.99), 2)
            if before_source:
                notes["before_ops_s"] = round(REQUESTS / statistics.median(times["before"]), 1)
                before_seconds = statistics.median(times["before"])
                notes["before_ratio"] = round(statistics.median(times["baseline"]) / before_seconds, 3)
            results.append(CaseResult(f"UH. POST usage/events {backend}, {workers} srv, {connections:>2} conn vs bare",
                                      Measurement("project", REQUESTS, times["project"]),
                                      Measurement("baseline", REQUESTS, times["baseline"]), notes))
    return results


def run() -> list[CaseResult]:
    results: list[CaseResult] = []
    backends = os.environ.get("BILLING_BENCH_USAGE_BACKENDS", "sqlite,postgresql").split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            def sqlite_store() -> _Store:
                path = Path(tmp) / f"http-{secrets.token_hex(4)}.db"
                engine = make_engine(f"sqlite:///{path}")
                stack.callback(engine.dispose)
                migrate(engine)
                return _Store(_context(engine), {"BILLING_DATABASE_URL": f"sqlite:///{path}"},
                              {"BENCH_BARE_DATABASE": str(path)})

            results += _backend_cases("SQLite", sqlite_store, 1)
    url = os.environ.get("BILLING_BENCH_DATABASE_URL") or os.environ.get("BILLING_TEST_DATABASE_URL")
    if "postgresql" in backends and url:
        admin = make_engine(url, pool_size=1)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        schemas: list[str] = []
        try:
            with ExitStack() as stack:
                def postgres_store() -> _Store:
                    schema = f"billing_bench_{secrets.token_hex(4)}"
                    with admin.begin() as connection:
                        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
                    schemas.append(schema)
                    engine = make_engine(url, schema=schema, pool_size=2)
                    stack.callback(engine.dispose)
                    migrate(engine)
                    return _Store(_context(engine), {"BILLING_DATABASE_URL": url, "BILLING_DATABASE_SCHEMA": schema},
                                  {"BENCH_BARE_DATABASE": dsn, "BENCH_BARE_SCHEMA": schema})

                for workers in WORKERS:
                    results += _backend_cases("PG", postgres_store, workers)
        finally:
            with admin.begin() as connection:
                for schema in schemas:
                    connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.dispose()
    return results


def _context(engine: Engine) -> BillingContext:
    return BillingContext(uow=sqlalchemy_uow_factory(engine), clock=SystemClock(), catalog=load_catalog(),
                          payments=InMemoryPaymentProvider())


def main() -> None:
    results = run()
    print_table(results)
    for result in results:
        print(result.case, result.notes)


if __name__ == "__main__":
    main()
