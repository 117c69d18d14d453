"""Support of the route-wide concurrency suite (``test_concurrent_routes.py``): the mutating routes
of the app as served, a real ``billing serve`` child process over a migrated SQLite file or
PostgreSQL schema, and bursts of requests released together from many client threads of this
process (the server is another process: every request crosses a real socket)."""

from __future__ import annotations

import json
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar

from tests.support.processes import ROOT, child_environment

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns a failure

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLI = "from entrypoints.cli.main import app; app()"
START_S = 60.0


def mutating_routes(app: Litestar) -> set[tuple[str, str]]:
    """Every (method, path template) of the app that may change state, from its route list (the
    same list the OpenAPI document is generated from)."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in getattr(handler, "http_methods", ()):
                if method in MUTATING:
                    found.add((method, route.path))
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A ``billing serve`` child; its stderr is pumped into ``log`` so that it never blocks."""

    url: str
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def tail(self, lines: int = 60) -> str:
        return "".join(self.log[-lines:])


@contextmanager
def billing_serve(env: dict[str, str]) -> Iterator[Server]:
    """``billing serve`` on a free port with ``env`` (on top of this process's), ready when its
    ``/readyz`` answers 200; terminated on exit."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--port", str(port)],
                               env={**child_environment(), **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    server = Server(url=f"http://127.0.0.1:{port}", process=process)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            server.log.append(line)
            lines.put(line)

    threading.Thread(target=pump, name="pump-billing-serve", daemon=True).start()
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert process.poll() is None, "billing serve exited:\n" + server.tail()
            assert time.monotonic() < deadline, "billing serve did not get ready:\n" + server.tail()
            try:
                if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if the server hangs
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Call:
    """One HTTP request: ``body`` is sent as JSON, ``content`` as raw bytes (a signed webhook)."""

    method: str
    path: str
    token: str | None = None
    body: Any = None
    key: str | None = None
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def send(self, client: httpx.Client) -> httpx.Response:
        headers = dict(self.headers)
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.key is not None:
            headers["Idempotency-Key"] = self.key
        if self.content is not None:
            return client.request(self.method, self.path, content=self.content, headers=headers)
        if self.body is None:
            return client.request(self.method, self.path, headers=headers)
        return client.request(self.method, self.path, json=self.body, headers=headers)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict):
            code = self.body.get("code")
            return code if isinstance(code, str) else None
        return None


def fire(base_url: str, calls: Sequence[Call]) -> list[Answer]:
    """Send every call from its own client thread, all released together by a barrier (after each
    has its connection open); the answers in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))
    answers: list[Answer | None] = [None] * len(calls)
    failures: list[BaseException] = []

    def run(index: int, call: Call) -> None:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            try:
                client.get("/healthz")  # open the connection before the barrier
                barrier.wait()
                response = call.send(client)
            except BaseException as exc:  # reported below, never swallowed
                failures.append(exc)
                return
        try:
            body = response.json() if response.content else None
        except json.JSONDecodeError:
            body = None
        answers[index] = Answer(response.status_code, body, response.text[:500])

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    done = [answer for answer in answers if answer is not None]
    assert len(done) == len(calls)
    return done
