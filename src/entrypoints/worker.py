"""The background worker: :func:`billing_core.services.background.run_cycle` every second or so.

``billing serve`` and ``billing run`` start one as a process they supervise (``billing worker
--parent-pid``, :mod:`entrypoints.supervisor`), or in a thread of the server process with
``BILLING_WORKER=thread`` (none with ``false``); ``billing worker`` runs one in the foreground
without HTTP, for a topology of web processes plus workers. Any number may run against one
PostgreSQL database.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from billing_core.services.background import run_cycle
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import Deliverers
from billing_core.services.grants import SWEEP_BATCH, SweepPacer
from entrypoints import metrics

logger = logging.getLogger("entrypoints.worker")


def worker_name() -> str:
    """This process in job leases: host, pid and a random part (pids are reused after restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class BackgroundWorker:
    """Runs cycles every ``interval`` seconds until :meth:`stop`. A failing cycle is logged and the
    next one runs on time: one broken message or database hiccup never stops the worker."""

    def __init__(self, ctx: BillingContext, deliverers: Deliverers, *, interval: float = 1.0,
                 name: str | None = None, grant_catch_up_interval: float = 0.0,
                 grant_sweep_step: int = SWEEP_BATCH) -> None:
        self.ctx = ctx
        self.deliverers = deliverers
        self.interval = interval
        self.grant_pacer = SweepPacer(round(grant_catch_up_interval * 1000), step=grant_sweep_step)
        """Catches up a busy organization's grants at most every ``grant_catch_up_interval`` seconds,
        ``grant_sweep_step`` ledger transactions per step."""
        self.name = name or worker_name()
        self.cycles = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopped(self) -> threading.Event:
        """Set once :meth:`stop` was asked."""
        return self._stop

    def run_once(self) -> None:
        """One cycle, its metrics recorded; exceptions are logged, never raised."""
        try:
            report = run_cycle(self.ctx, self.deliverers, holder=self.name, grant_pacer=self.grant_pacer)
        except Exception:
            logger.exception("background cycle failed; retrying in %.1fs", self.interval)
        else:
            metrics.observe_cycle(report)
            if report.closed is not None:
                logger.info("closed period %s: %d invoice(s) created", report.closed.period,
                            report.closed.invoices_created)
        finally:
            self.cycles += 1

    def run_until_stopped(self) -> None:
        """Cycle in the calling thread until :meth:`stop` (``billing worker``)."""
        logger.info("background worker %s started (every %.2fs)", self.name, self.interval)
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)
        logger.info("background worker %s stopped", self.name)

    def start(self) -> None:
        """Cycle in a daemon thread (the served app's worker)."""
        if self._thread is not None:
            raise RuntimeError("the background worker is already running")
        self._thread = threading.Thread(target=self.run_until_stopped, name="billing-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to end and wait for the cycle in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def stop_when_orphaned(worker: BackgroundWorker, parent_pid: int, *, every: float = 1.0) -> threading.Thread:
    """Stop ``worker`` once ``parent_pid`` is no longer this process's parent: the server that
    supervised it died without stopping it (SIGKILL, a crash). Checked every ``every`` seconds."""
    def watch() -> None:
        while not worker.stopped.wait(every):
            if os.getppid() != parent_pid:
                logger.warning("the server (pid %d) that started this worker is gone; stopping", parent_pid)
                worker.stop(timeout=0)
                return

    thread = threading.Thread(target=watch, name="billing-worker-parent-watch", daemon=True)
    thread.start()
    return thread


class SqliteInstanceLock:
    """SQLite serves one instance: the first server or worker on a database file holds an
    exclusive lock on ``<file>.instance.lock``; a second one is told so (it still works, because
    writers take turns on the file's lock, but it does not scale and should be PostgreSQL)."""

    def __init__(self, database_url: str) -> None:
        self.path: Path | None = None
        self._handle: IO[str] | None = None
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            self.path = Path(f"{url.database}.instance.lock")

    def acquire(self) -> bool:
        """True when this process is the only instance (or the database is not a SQLite file)."""
        if self.path is None:
            return True
        handle = self.path.open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


SECOND_SQLITE_INSTANCE = ("another billing-core server or worker already uses the SQLite database {path}: "
                          "SQLite serves ONE instance (writers take turns on the file). To run several web "
                          "processes or workers, use PostgreSQL (BILLING_DATABASE_URL=postgresql+psycopg://...).")
