"""The SIGKILL soak of the spend-control registry on PostgreSQL (issue 21, "How it is proven").

The parent (:class:`Soak`) keeps the :class:`~tests.support.spend_control.Model`, draws seeded
steps from the registry and sends them, one JSON line each, to a child process (:func:`child_main`)
that applies them through the public use cases over its own engine. The parent SIGKILLs the child
at commit points (the child announces ``commit before`` / ``commit after`` around the k-th
``commit()`` of a step when told to, and waits to be killed) and on a random timer, starts a new
child, redelivers the step that was in flight (same idempotency key, event id, hold id), and
checks the books of the organization it touched after every restart, and all books at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import Engine, text

from adapters.fakes import FixedClock, in_memory_billing
from adapters.fakes.payment_provider import InMemoryPaymentProvider
from adapters.sqlalchemy import make_engine, sqlalchemy_uow_factory
from billing_core.catalog import load_catalog
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from tests.support.processes import ROOT, child_environment
from tests.support.spend_control import (
    T0,
    BookKeeping,
    Model,
    OrgHandle,
    Step,
    World,
    apply_step,
    check_books,
    make_step,
    record,
    setup_org,
)


def context(url: str, schema: str) -> tuple[BillingContext, FixedClock, Engine]:
    engine = make_engine(url, schema=schema or None)
    clock = FixedClock(T0)
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=clock, catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    return ctx, clock, engine


# --------------------------------------------------------------------------- the child


class _KillPoints:
    """Wraps the unit-of-work factory: around the ``at``-th commit of the current step, announce
    the point on stdout and wait for the parent's SIGKILL."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.mode: str | None = None
        self.at = 0
        self.commits = 0

    def __call__(self) -> UnitOfWork:
        return _Uow(self.inner(), self)

    def commit(self, uow: Any) -> None:
        self.commits += 1
        hit = self.mode is not None and self.commits == self.at
        if hit and self.mode == "before":
            print("commit before", flush=True)
            time.sleep(3600)
        uow.commit()
        if hit and self.mode == "after":
            print("commit after", flush=True)
            time.sleep(3600)


class _Uow:
    def __init__(self, inner: Any, points: _KillPoints) -> None:
        self._inner = inner
        self._points = points

    def __enter__(self) -> _Uow:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._inner.__exit__(*exc)

    def commit(self) -> None:
        self._points.commit(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def child_main(url: str, schema: str, orgs: str) -> None:
    """Apply the steps read from stdin (``{"step": …, "kill": [mode, k] | null}``); print
    ``done <n> <result>`` after each."""
    ctx, clock, engine = context(url, schema)
    points = _KillPoints(ctx.uow)
    ctx = dataclasses.replace(ctx, uow=points)
    handles = msgspec.json.decode(orgs.encode(), type=list[OrgHandle])
    world = World(ctx=ctx, clock=clock, orgs=handles, deliverers=in_memory_billing(T0).deliverers)
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            message = json.loads(line)
            step = msgspec.convert(message["step"], Step)
            kill = message.get("kill")
            points.mode, points.at, points.commits = (kill[0], kill[1], 0) if kill else (None, 0, 0)
            result = apply_step(world, step)
            print(f"done {step.n} {json.dumps(result, default=str)}", flush=True)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the parent


class Child:
    def __init__(self, url: str, schema: str, orgs: list[OrgHandle]) -> None:
        code = "import sys; from tests.reliability.soak_support import child_main; child_main(*sys.argv[1:])"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, url, schema, msgspec.json.encode(orgs).decode()], cwd=ROOT,
            env=child_environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line(120) == "ready", self.stderr()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return ""

    def send(self, payload: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(payload, default=str) + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL, self.stderr()
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        try:
            return self.process.stderr.read()
        except (OSError, ValueError):
            return ""


@dataclass
class SoakReport:
    steps: int = 0
    kills: dict[str, int] = field(default_factory=lambda: {"before": 0, "after": 0, "timer": 0})
    restarts: int = 0
    redeliveries: int = 0
    book_checks: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def sigkills(self) -> int:
        return sum(self.kills.values())


class Soak:
    """Drive ``steps`` seeded steps on ``orgs`` organizations through killed and restarted children."""

    def __init__(self, url: str, schema: str, *, orgs: int, seed: int, kill_rate: float) -> None:
        self.url, self.schema = url, schema
        self.ctx, self.clock, self.engine = context(url, schema)
        self.orgs = [setup_org(self.ctx, i) for i in range(orgs)]
        self.model = Model(orgs=orgs)
        self.rng = random.Random(seed)
        self.kill_rate = kill_rate
        self.kept = BookKeeping()
        self.report = SoakReport()

    def run(self, steps: int) -> SoakReport:
        started = time.monotonic()
        child = Child(self.url, self.schema, self.orgs)
        try:
            while self.report.steps < steps:
                step = make_step(self.model, self.rng)
                if step is None:
                    continue
                child = self._deliver(child, step)
                self.report.steps += 1
                if self.report.steps % 5000 == 0:  # progress of a long run, with the numbers so far
                    print(f"soak progress: {self.report.steps} steps, {self.report.kills}, "
                          f"{self.report.restarts} restarts, {time.monotonic() - started:.0f} s", flush=True)
        finally:
            child.close()
        check_books(self.ctx, self.orgs, self.model, kept=self.kept, every_transaction=True)
        self._check_sql()
        self.report.book_checks = self.kept.checks
        self.report.counts = dict(self.model.counts)
        self.report.seconds = time.monotonic() - started
        self.engine.dispose()
        return self.report

    def _deliver(self, child: Child, step: Step) -> Child:
        roll = self.rng.random()
        mode = None
        if roll < self.kill_rate * 0.4:
            mode = "before"
        elif roll < self.kill_rate * 0.8:
            mode = "after"
        elif roll < self.kill_rate:
            mode = "timer"
        kill = [mode, self.rng.randint(1, 2)] if mode in ("before", "after") else None
        child.send({"step": msgspec.to_builtins(step), "kill": kill})
        timeout = self.rng.uniform(0.0, 0.005) if mode == "timer" else 300.0
        line = child.next_line(timeout)
        if line and line.startswith("done "):
            self._record(step, line)
            return child
        assert line != "" or mode == "timer", f"step {step} made no progress: {child.stderr()}"
        assert line is not None, f"the child died on {step}: {child.stderr()}"
        assert line in ("", "commit before", "commit after"), line
        self.report.kills["timer" if line == "" else line.split()[1]] += 1
        child.kill()
        # Restart and redeliver the step in flight, with no kill this time.
        child = Child(self.url, self.schema, self.orgs)
        self.report.restarts += 1
        self.report.redeliveries += 1
        child.send({"step": msgspec.to_builtins(step), "kill": None})
        line = child.next_line(300.0)
        assert line and line.startswith("done "), f"redelivery of {step}: {line} {child.stderr()}"
        self._record(step, line)
        check_books(self.ctx, [self.orgs[step.org]], self.model, kept=self.kept, now=step.at)
        return child

    def _record(self, step: Step, line: str) -> None:
        _, n, payload = line.split(" ", 2)
        assert int(n) == step.n, (line, step)
        record(self.model, step, json.loads(payload))

    def _check_sql(self) -> None:
        with self.engine.connect() as connection:
            unbalanced = connection.execute(text(
                "SELECT transaction_seq FROM ledger_postings GROUP BY transaction_seq HAVING sum(amount_micros) <> 0"
            )).all()
            repeated = connection.execute(text(
                "SELECT organization_id, idempotency_key FROM ledger_transactions "
                "GROUP BY organization_id, idempotency_key HAVING count(*) <> 1")).all()
        assert unbalanced == [] and repeated == [], (unbalanced, repeated)

