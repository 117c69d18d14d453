"""The real thing: ``uvicorn`` serving ``create_app`` in its own process, spoken to over TCP with httpx."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 90  # a loaded CI machine has taken 15 s to import and seed


@dataclass
class Server:
    base_url: str
    organization_id: str
    tokens: dict[str, str]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("server")
    env = {**os.environ, "BILLING_STORAGE": "memory", "BILLING_DEMO": "1", "BILLING_ENV": "test",
           "BILLING_DATA_DIR": str(data_dir)}
    env.pop("BILLING_STRIPE_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "entrypoints.http.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    organization_id, tokens, seen = "", {}, list[str]()
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("the server did not start:\n" + "".join(seen))
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if line.startswith("demo organization: "):
                organization_id = line.split(": ", 1)[1].strip()
            elif line.startswith("demo token "):
                role, secret = line.removeprefix("demo token ").split(": ", 1)
                tokens[role] = secret.strip()
            elif "Uvicorn running on" in line:
                break
        yield Server(base_url=f"http://127.0.0.1:{port}", organization_id=organization_id, tokens=tokens)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if the server hangs
            process.kill()
            process.wait()


def test_the_real_server_answers_over_tcp(server: Server) -> None:
    assert set(server.tokens) == {"primary-owner", "owner", "member", "service"}
    org = f"/organizations/{server.organization_id}"
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert "paths" in client.get("/openapi.json").json()
        unauthenticated = client.get(org + "/billing/overview")
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"] == "application/problem+json"

        member = {"Authorization": f"Bearer {server.tokens['member']}"}
        overview = client.get(org + "/billing/overview", headers=member)
        assert overview.status_code == 200 and overview.json()["credit_balance"]["display"].startswith("$")
        invoices = client.get(org + "/invoices", headers=member).json()["items"]
        assert invoices and invoices[0]["pdf_available"]
        pdf = client.get(org + "/invoices/download", params={"invoice_id": invoices[0]["id"]}, headers=member)
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF")
        assert client.put(org + "/billing_email", json={"email": "x@example.com"}, headers=member).status_code == 403

        owner = {"Authorization": f"Bearer {server.tokens['owner']}", "Idempotency-Key": "real-server-1"}
        first = client.put(org + "/billing_email", json={"email": "ops@example.com"}, headers=owner)
        replay = client.put(org + "/billing_email", json={"email": "ops@example.com"}, headers=owner)
        assert first.status_code == replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"

        service = {"Authorization": f"Bearer {server.tokens['service']}"}
        event = client.post(org + "/usage/events", headers=service,
                            json={"event_id": "real-server-evt", "product": "compute", "quantity": 1,
                                  "project_id": "00000000-0000-4000-8000-0000000000a1"})
        assert event.status_code == 201, event.text
        assert client.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}
                           ).status_code == 400
