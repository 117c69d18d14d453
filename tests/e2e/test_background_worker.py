"""The served app does its own background work: ``billing serve`` delivers what a request queued and
closes last month without a cron or a second command; ``billing worker`` does the same without HTTP;
SQLite says so when a second instance starts on its file; ``/readyz`` and ``/metrics`` report it."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from billing_core.services.invoicing import previous_period
from billing_core.services.notifications import enqueue_email
from entrypoints.container import Container
from entrypoints.demo import DEMO_ORGANIZATION_ID, seed_demo
from tests.support.processes import child_environment

CLI = "from entrypoints.cli.main import app; app()"
WAIT_SECONDS = 30


@dataclass
class Service:
    process: subprocess.Popen[str]
    lines: queue.Queue[str]

    def wait_for(self, text: str, within: float = WAIT_SECONDS) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if text in line:
                return seen
        pytest.fail(f"{text!r} did not appear:\n" + "".join(seen))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if it hangs
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A migrated, seeded SQLite database with one email waiting in the outbox."""
    env = {"BILLING_DATABASE_URL": f"sqlite:///{tmp_path / 'billing.db'}", "BILLING_DATA_DIR": str(tmp_path / "var"),
           "BILLING_STORAGE": "sqlalchemy", "BILLING_ENV": "test", "BILLING_WORKER_INTERVAL": "0.1"}
    for name in ("BILLING_STRIPE_API_KEY", "BILLING_SMTP_HOST", "BILLING_WORKER", "BILLING_DEMO"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    container = Container()
    from adapters.sqlalchemy.schema import migrate

    migrate(container.engine())
    ctx = container.billing_context()
    seed_demo(ctx, container.deliverers())
    with ctx.uow() as uow:
        assert enqueue_email(uow, organization_id=DEMO_ORGANIZATION_ID, to="ops@example.com",
                             subject="Queued before the server started", text="hello", now=ctx.clock.now(),
                             dedupe_key="background-worker-test")
        uow.commit()
    container.engine().dispose()
    return {**child_environment(), **env}


def _start(args: list[str], env: dict[str, str]) -> Service:
    process = subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return Service(process, lines)


@pytest.fixture(params=["process", "thread"])
def served(environment: dict[str, str], request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, str]]]:
    """``billing serve`` with its worker as a supervised process (the default) or in a thread."""
    port = _free_port()
    service = _start(["serve", "--port", str(port)], {**environment, "BILLING_WORKER": request.param})
    try:
        service.wait_for("Uvicorn running on")
        yield f"http://127.0.0.1:{port}", environment
    finally:
        service.stop()


def _mail(environment: dict[str, str]) -> list[str]:
    directory = Path(environment["BILLING_DATA_DIR"]) / "mail"
    return [p.read_text(encoding="utf-8") for p in directory.glob("*.eml")] if directory.exists() else []


def _eventually(check: object, within: float = WAIT_SECONDS) -> None:
    assert callable(check)
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the background worker did not do its work in time"
        time.sleep(0.1)


def test_billing_serve_delivers_the_outbox_and_closes_last_month_by_itself(
        served: tuple[str, dict[str, str]]) -> None:
    base_url, environment = served
    last_month = previous_period(datetime.now(UTC))
    with httpx.Client(base_url=base_url, timeout=10) as client:
        _eventually(lambda: any("Queued before the server started" in m for m in _mail(environment)))
        _eventually(lambda: client.get("/readyz").json()["last_closed_period"] == last_month)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "storage": "sqlalchemy", "last_closed_period": last_month,
                                "background_worker": True}
        _eventually(lambda: "billing_outbox_pending 0.0" in client.get("/metrics").text)
        scrape = client.get("/metrics")
        assert scrape.headers["content-type"].startswith("text/plain")
        assert 'billing_outbox_deliveries_total{result="sent"}' in scrape.text
        assert "billing_outbox_dead_letters 0.0" in scrape.text
        assert 'billing_http_request_duration_seconds_count{method="GET",route="/readyz",status="200"}' in scrape.text


def test_a_second_instance_on_one_sqlite_file_is_told_so(served: tuple[str, dict[str, str]]) -> None:
    _, environment = served
    second = _start(["worker"], environment)
    try:
        second.wait_for("SQLite serves ONE instance")
    finally:
        second.stop()


def test_billing_worker_does_the_background_work_without_http(environment: dict[str, str]) -> None:
    worker = _start(["worker"], environment)
    try:
        worker.wait_for("billing worker")
        _eventually(lambda: any("Queued before the server started" in m for m in _mail(environment)))
    finally:
        worker.stop()
    assert worker.process.returncode == 0, "SIGTERM ends the worker cleanly"


def test_with_the_worker_off_nothing_is_delivered(environment: dict[str, str]) -> None:
    port = _free_port()
    service = _start(["serve", "--port", str(port)], {**environment, "BILLING_WORKER": "false"})
    try:
        service.wait_for("Uvicorn running on")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/readyz").json()["background_worker"] is False
            time.sleep(1.0)  # ten worker intervals
            assert "billing_outbox_pending 1.0" in client.get("/metrics").text
        assert not any("Queued before the server started" in m for m in _mail(environment))
    finally:
        service.stop()


def _worker_pid(service: Service, skip: int = 0) -> int:
    """The pid of the (``skip`` + 1)-th worker process ``service`` started, from its start line
    (``billing worker <host>:<pid>:<random>: ...``)."""
    for _ in range(skip + 1):
        line = next(line for line in service.wait_for("billing worker ") if "billing worker " in line)
    return int(line.split("billing worker ", 1)[1].split(":")[1])


def _gone(pid: int, within: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":  # exited; its new parent has not reaped it yet
            return True
        time.sleep(0.1)
    return False


def _queue_mail(environment: dict[str, str], subject: str) -> None:
    container = Container()
    ctx = container.billing_context()
    with ctx.uow() as uow:
        assert enqueue_email(uow, organization_id=DEMO_ORGANIZATION_ID, to="ops@example.com", subject=subject,
                             text="hello", now=ctx.clock.now(), dedupe_key=subject)
        uow.commit()
    container.engine().dispose()


def test_the_supervised_worker_is_restarted_when_it_dies_and_stops_with_the_server(
        environment: dict[str, str]) -> None:
    port = _free_port()
    service = _start(["serve", "--port", str(port)], environment)
    try:
        first = _worker_pid(service)
        assert first != service.process.pid
        _eventually(lambda: any("Queued before the server started" in m for m in _mail(environment)))
        os.kill(first, signal.SIGKILL)
        service.wait_for(f"background worker {first} exited with status -9; restarting it")
        second = _worker_pid(service)
        assert second != first
        _queue_mail(environment, "Queued after the worker was restarted")
        _eventually(lambda: any("Queued after the worker was restarted" in m for m in _mail(environment)))
    finally:
        service.stop()
    assert service.process.returncode == -signal.SIGTERM, "ended by the SIGTERM, after its graceful shutdown"
    assert _gone(second, within=0.5), "stopping the server stops its worker (not the orphan watch, 1 s)"


def test_the_supervised_worker_stops_when_its_server_is_killed(environment: dict[str, str]) -> None:
    service = _start(["serve", "--port", str(_free_port())], environment)
    try:
        worker = _worker_pid(service)
        service.wait_for("Uvicorn running on")
        os.kill(service.process.pid, signal.SIGKILL)  # no chance to stop its worker itself
        service.process.wait(timeout=15)
        assert _gone(worker), "an orphaned worker stops by itself"
    finally:
        service.stop()


def test_several_server_processes_need_postgresql(environment: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-c", CLI, "serve", "--workers", "2"], env=environment,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "--workers above 1 needs PostgreSQL" in result.stderr


def test_the_worker_settings_are_checked() -> None:
    from entrypoints.container import ConfigurationError, settings_from_env

    assert settings_from_env({}).worker == "process"
    assert settings_from_env({"BILLING_WORKER": "true"}).worker == "process"
    assert settings_from_env({"BILLING_WORKER": "Thread"}).worker == "thread"
    assert settings_from_env({"BILLING_WORKER": "off"}).worker == "off"
    assert settings_from_env({"BILLING_WORKER": "false"}).worker == "off"
    with pytest.raises(ConfigurationError, match="BILLING_WORKER must be true, false, process or thread"):
        settings_from_env({"BILLING_WORKER": "fork"})
    assert settings_from_env({"BILLING_WORKER_INTERVAL": "0.5"}).worker_interval_seconds == 0.5
    for bad in ("0", "nan", "-1", "fast", "7200"):
        with pytest.raises(ConfigurationError, match="BILLING_WORKER_INTERVAL"):
            settings_from_env({"BILLING_WORKER_INTERVAL": bad})
    with pytest.raises(ConfigurationError, match="BILLING_LOG_FORMAT"):
        settings_from_env({"BILLING_LOG_FORMAT": "xml"})
    assert os.environ.get("BILLING_WORKER") is None
