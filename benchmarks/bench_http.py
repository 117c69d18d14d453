"""HTTP case: the real app (``create_app`` over a ``Container`` with in-memory storage, seeded with the
demo organization) served by uvicorn in a thread on a free loopback port, next to a bare Litestar app
(a second uvicorn thread) answering the same routes with the same bytes, captured from the real app.

The load comes from a separate process (``benchmarks/loadgen.py``, stdlib only), so the client does
not share the servers' GIL: ``BILLING_BENCH_HTTP_CONNECTIONS`` keep-alive connections (2), one
request in flight on each, send the same prepared request bytes to the real app and to the bare
one, interleaved round by round:

* ``GET /billing/usage?organization_id=...&from=...&to=...`` (the previous month's usage report);
* ``POST /organizations/{id}/usage/authorize`` (the spend-guard check of the platform's hot path).

Every round checks the status and that the first answer's body equals the captured bytes. The ratio
is the cost of authentication, the use case, storage reads and presenters per request, on top of
what the server and the framework cost anyway. Loopback only.

    python -m benchmarks.bench_http          # BILLING_BENCH_HTTP_REQUESTS sets requests per round (500)
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import uvicorn
from dependency_injector import providers
from litestar import Litestar, Request, Response, get, post

from benchmarks.harness import CaseResult, Measurement, print_table
from benchmarks.loadgen import LoadGenerator
from entrypoints.container import Container, settings_from_env
from entrypoints.demo import seed_demo
from entrypoints.http.app import create_app

REQUESTS = min(int(os.environ.get("BILLING_BENCH_HTTP_REQUESTS", "500")), 5000)
CONNECTIONS = max(1, min(int(os.environ.get("BILLING_BENCH_HTTP_CONNECTIONS", "2")), 64))
REPEAT = 5
WARMUP = 50


def _free_socket() -> socket.socket:
    """A bound loopback socket for uvicorn's ``sockets=``. Served that way, uvicorn's accepted
    connections lack the TCP_NODELAY asyncio sets on its own listeners, and every small response
    (headers and body written apart) waits ~40 ms for a delayed ACK; Linux copies the listener's
    TCP_NODELAY to accepted sockets, so it is set here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def _serve(app: Any, name: str) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread; yields its base URL."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=name)
    thread.start()
    deadline = time.monotonic() + 15
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _bare_app(answers: dict[str, tuple[int, bytes]]) -> Litestar:
    """The same routes answering the captured bytes, with the same content type."""
    usage_status, usage_body = answers["usage"]
    authorize_status, authorize_body = answers["authorize"]

    @get("/billing/usage", sync_to_thread=False)
    def usage(request: Request[Any, Any, Any]) -> Response[bytes]:
        return Response(usage_body, status_code=usage_status, media_type="application/json")

    @post("/organizations/{organization_id:str}/usage/authorize", sync_to_thread=False)
    def authorize(organization_id: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        return Response(authorize_body, status_code=authorize_status, media_type="application/json")

    return Litestar([usage, authorize], debug=False)


class _Requests:
    """The raw HTTP/1.1 requests, the same bytes for the real app and the bare one."""

    def __init__(self, organization_id: str, token: str) -> None:
        # The previous whole month: the demo organization has usage all through it.
        end = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        start = (end - timedelta(days=1)).replace(day=1)
        query = urlencode({"organization_id": organization_id, "from": start.isoformat(), "to": end.isoformat()})
        head = f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nUser-Agent: billing-bench\r\n"
        self.usage = f"GET /billing/usage?{query} HTTP/1.1\r\n{head}\r\n".encode()
        body = b'{"amount_micros":150}'
        self.authorize = (f"POST /organizations/{organization_id}/usage/authorize HTTP/1.1\r\n{head}"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


Send = Callable[[int], tuple[float, bytes]]


def _interleaved(case: str, project: Send, baseline: Send, expected: bytes, notes: dict[str, object]) -> CaseResult:
    for warm in (project, baseline):
        warm(WARMUP)
    project_times: list[float] = []
    baseline_times: list[float] = []
    for _round in range(REPEAT):
        for run, times in ((project, project_times), (baseline, baseline_times)):
            seconds, body = run(REQUESTS)
            times.append(seconds)
            assert body == expected, body[:300]
    return CaseResult(case, Measurement("project", REQUESTS, project_times),
                      Measurement("baseline", REQUESTS, baseline_times), notes)


def _target(load: LoadGenerator, base_url: str, request: bytes, status: int) -> Send:
    """``send(n)``: n requests from the load generator, timed there; returns (seconds, the first body)."""
    port = int(base_url.rsplit(":", 1)[1])

    def send(count: int) -> tuple[float, bytes]:
        return load.run(host="127.0.0.1", port=port, request=request, count=count, connections=CONNECTIONS,
                        status=status)

    return send


def _capture(base_url: str, request: bytes) -> tuple[int, bytes]:
    """One request over a plain socket: the status and body the bare app must answer with."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        raise AssertionError("expected a Content-Length answer")
    return int(head.split(b" ", 2)[1]), body


def run() -> list[CaseResult]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_from_env({"BILLING_STORAGE": "memory", "BILLING_ENV": "test", "BILLING_DEMO": "0",
                                      "BILLING_DATA_DIR": data_dir})
        container = Container()
        container.settings.override(providers.Object(settings))
        try:
            credentials = seed_demo(container.billing_context(), container.deliverers())
            requests = _Requests(str(credentials.organization_id), credentials.tokens["service"])
            with _serve(create_app(container), "bench-app") as app_url, LoadGenerator() as load:
                answers = {"usage": _capture(app_url, requests.usage),
                           "authorize": _capture(app_url, requests.authorize)}
                for name, (status, body) in answers.items():
                    if status != 200:
                        raise AssertionError(f"{name}: {status} {body[:300]!r}")
                with _serve(_bare_app(answers), "bench-bare") as bare_url:
                    notes: dict[str, object] = {"requests_per_round": REQUESTS, "connections": CONNECTIONS,
                                                "client": "separate process", "storage": "memory"}
                    usage_body, authorize_body = answers["usage"][1], answers["authorize"][1]
                    return [
                        _interleaved("H1. GET /billing/usage, app vs bare Litestar",
                                     _target(load, app_url, requests.usage, 200),
                                     _target(load, bare_url, requests.usage, 200), usage_body,
                                     {**notes, "response_bytes": len(usage_body)}),
                        _interleaved("H2. POST .../usage/authorize, app vs bare Litestar",
                                     _target(load, app_url, requests.authorize, 200),
                                     _target(load, bare_url, requests.authorize, 200), authorize_body,
                                     {**notes, "response_bytes": len(authorize_body)}),
                    ]
        finally:
            container.settings.reset_override()


def main() -> None:
    results = run()
    print_table(results)
    for result in results:
        p, b = result.project, result.baseline
        print(f"{result.case}: project median {p.median_ops_per_s:,.0f} req/s (spread {p.spread_pct:.0f}%), "
              f"baseline median {b.median_ops_per_s:,.0f} req/s (spread {b.spread_pct:.0f}%), "
              f"ratio {result.ratio:.2f}x, notes {result.notes}")


if __name__ == "__main__":
    main()
