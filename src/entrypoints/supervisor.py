"""``billing serve``'s background worker as a child process it supervises (``BILLING_WORKER=process``,
the default).

In the server's process the worker's cycles (the grant sweep above all) shared the GIL with the
requests: under sustained load on this 2-core machine that cost 15-25 % of throughput and ~10 ms of
p99 on both databases (issue 16, ninth pass; ADR 0018 addendum). The child is ``billing worker``,
started in a session of its own (a Ctrl-C in the terminal reaches only the server, which stops the
child itself), restarted with a growing delay if it exits unexpectedly, and told which process is
its parent so that it stops when the server dies without stopping it (``--parent-pid``).

No Prometheus import here: the server sets ``PROMETHEUS_MULTIPROC_DIR`` before the client library
is first imported, so that a scrape of the server adds up the worker's counters.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess  # nosec B404 - starts only our own worker command
import sys
import tempfile
import threading
import time
from collections.abc import Mapping

logger = logging.getLogger("entrypoints.supervisor")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess directory: set, every process of one server writes its metrics there."""

SUPERVISED_ENV = "BILLING_WORKER_SUPERVISED"
"""Set by ``billing serve`` for its HTTP app: a supervised worker process does the background work."""

CLI = "from entrypoints.cli.main import app; app()"
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before each restart of a worker that keeps exiting; the last one repeats."""
STEADY_SECONDS = 60.0
"""A worker that ran this long before it exited is restarted after the first delay again."""


class WorkerProcess:
    """Runs ``billing worker --parent-pid <this pid>`` until :meth:`stop`, restarting it when it exits."""

    def __init__(self, environ: Mapping[str, str], *, restart_delays: tuple[float, ...] = RESTART_DELAYS,
                 steady_seconds: float = STEADY_SECONDS) -> None:
        self.environ = dict(environ)
        self.restart_delays = restart_delays
        self.steady_seconds = steady_seconds
        self.restarts = 0
        """How many times the worker was restarted."""
        self._failures = 0
        self._started_at = 0.0
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-c", CLI, "worker", "--parent-pid", str(os.getpid())]

    def start(self) -> None:
        """Start the worker and the thread that restarts it."""
        if self._watcher is not None or not self._spawn():
            raise RuntimeError("the worker process is already supervised, or was stopped")
        self._watcher = threading.Thread(target=self._watch, name="billing-worker-supervisor", daemon=True)
        self._watcher.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the worker to finish its cycle and exit (SIGTERM); kill it after ``timeout``."""
        with self._lock:  # after this, the watcher starts no new worker
            self._stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("background worker %d did not stop in %.0fs; killing it", process.pid, timeout)
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(timeout)

    def _spawn(self) -> bool:
        """Start a worker unless :meth:`stop` was asked; whether it did."""
        with self._lock:
            if self._stopping.is_set():
                return False
            # A session of its own: the terminal's Ctrl-C goes to the server, which stops the worker.
            self.process = subprocess.Popen(self.argv, env=self.environ, start_new_session=True)  # noqa: S603  # nosec B603
            self._started_at = time.monotonic()
            return True

    def _watch(self) -> None:
        while True:
            with self._lock:
                process = self.process
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at >= self.steady_seconds:
                self._failures = 0
            delay = self.restart_delays[min(self._failures, len(self.restart_delays) - 1)]
            self._failures += 1
            logger.error("background worker %d exited with status %s; restarting it in %.0fs",
                         process.pid, code, delay)
            if self._stopping.wait(delay) or not self._spawn():
                return
            self.restarts += 1


class MetricsDirectory:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR`` for one server's processes, removed when it stops (one
    set by the operator is used as it is and left in place)."""

    def __init__(self) -> None:
        self.path: str | None = None

    def ensure(self) -> None:
        if os.environ.get(MULTIPROCESS_ENV):
            return
        if "prometheus_client" in sys.modules:  # pragma: no cover - a programming error in the CLI
            raise RuntimeError("set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported")
        self.path = tempfile.mkdtemp(prefix="billing-metrics-")
        os.environ[MULTIPROCESS_ENV] = self.path

    def remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.environ.pop(MULTIPROCESS_ENV, None)
            self.path = None
