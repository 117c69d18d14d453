"""HTTP case: the real app (``create_app`` over a ``Container`` with in-memory storage, seeded with the
demo organization) served by uvicorn in a thread on a free loopback port, next to a bare Litestar app
(a second uvicorn thread) answering the same routes with the same bytes, captured from the real app.

One ``httpx.Client`` (keep-alive) sends a bounded number of requests per round, sequentially:

* ``GET /billing/usage?organization_id=...&from=...&to=...`` (the month's usage report);
* ``POST /organizations/{id}/usage/authorize`` (the spend-guard check of the platform's hot path).

The ratio is the cost of authentication, the use case, storage reads and presenters per request,
on top of what the server, the framework and the client cost anyway. Loopback only.

    python -m benchmarks.bench_http          # BILLING_BENCH_HTTP_REQUESTS sets requests per round (500)
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from dependency_injector import providers
from litestar import Litestar, Request, Response, get, post

from benchmarks.harness import CaseResult, Measurement, print_table
from entrypoints.container import Container, settings_from_env
from entrypoints.demo import seed_demo
from entrypoints.http.app import create_app

REQUESTS = min(int(os.environ.get("BILLING_BENCH_HTTP_REQUESTS", "500")), 5000)
REPEAT = 3
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
    def __init__(self, organization_id: str, token: str) -> None:
        # The previous whole month: the demo organization has usage all through it.
        end = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        start = (end - timedelta(days=1)).replace(day=1)
        self.usage_path = "/billing/usage"
        self.usage_params = {"organization_id": organization_id, "from": start.isoformat(), "to": end.isoformat()}
        self.authorize_path = f"/organizations/{organization_id}/usage/authorize"
        self.headers = {"Authorization": f"Bearer {token}"}

    def usage(self, client: httpx.Client) -> httpx.Response:
        return client.get(self.usage_path, params=self.usage_params, headers=self.headers)

    def authorize(self, client: httpx.Client) -> httpx.Response:
        return client.post(self.authorize_path, json={"amount_micros": 150}, headers=self.headers)


def _interleaved(case: str, project: Callable[[int], None], baseline: Callable[[int], None],
                 notes: dict[str, object]) -> CaseResult:
    for warm in (project, baseline):
        warm(WARMUP)
    project_times: list[float] = []
    baseline_times: list[float] = []
    for _round in range(REPEAT):
        for run, times in ((project, project_times), (baseline, baseline_times)):
            started = time.perf_counter()
            run(REQUESTS)
            times.append(time.perf_counter() - started)
    return CaseResult(case, Measurement("project", REQUESTS, project_times),
                      Measurement("baseline", REQUESTS, baseline_times), notes)


def _client(base_url: str) -> httpx.Client:
    """A keep-alive client with TCP_NODELAY, so a POST's headers and body (written apart) leave at once."""
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(base_url=base_url, transport=transport)


def _loop(client: httpx.Client, send: Callable[[httpx.Client], httpx.Response], status: int, count: int) -> None:
    for _ in range(count):
        response = send(client)
        if response.status_code != status:
            raise AssertionError(f"{response.status_code}: {response.text[:300]}")


def run() -> list[CaseResult]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the app's logging setup makes it log each request
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_from_env({"BILLING_STORAGE": "memory", "BILLING_ENV": "test", "BILLING_DEMO": "0",
                                      "BILLING_DATA_DIR": data_dir})
        container = Container()
        container.settings.override(providers.Object(settings))
        try:
            credentials = seed_demo(container.billing_context(), container.deliverers())
            requests = _Requests(str(credentials.organization_id), credentials.tokens["service"])
            with _serve(create_app(container), "bench-app") as app_url, _client(app_url) as client:
                usage, authorize = requests.usage(client), requests.authorize(client)
                for response in (usage, authorize):
                    response.raise_for_status()
                answers = {"usage": (usage.status_code, usage.content),
                           "authorize": (authorize.status_code, authorize.content)}
                with _serve(_bare_app(answers), "bench-bare") as bare_url, _client(bare_url) as bare:
                    bare_usage, bare_authorize = requests.usage(bare), requests.authorize(bare)
                    assert bare_usage.content == usage.content and bare_authorize.content == authorize.content
                    notes: dict[str, object] = {"requests_per_round": REQUESTS, "clients": 1, "storage": "memory"}
                    return [
                        _interleaved("H1. GET /billing/usage, app vs bare Litestar",
                                     lambda n: _loop(client, requests.usage, usage.status_code, n),
                                     lambda n: _loop(bare, requests.usage, usage.status_code, n),
                                     {**notes, "response_bytes": len(usage.content)}),
                        _interleaved("H2. POST .../usage/authorize, app vs bare Litestar",
                                     lambda n: _loop(client, requests.authorize, authorize.status_code, n),
                                     lambda n: _loop(bare, requests.authorize, authorize.status_code, n),
                                     {**notes, "response_bytes": len(authorize.content)}),
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
