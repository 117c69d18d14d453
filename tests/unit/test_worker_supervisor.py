"""``billing serve``'s worker supervisor (:class:`entrypoints.supervisor.WorkerProcess`) on a stand-in
child: restarted after its delay when it exits, never restarted once stopped, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from entrypoints.supervisor import WorkerProcess


class _Sleeper(WorkerProcess):
    """Supervises a child that sleeps (and exits 0 on SIGTERM) instead of ``billing worker``."""

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-c", "import signal, sys, time; "
                "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); time.sleep(60)"]


def _until(check: object, within: float = 10.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_dead_worker_is_restarted_after_its_delay_and_a_stopped_one_is_not() -> None:
    supervisor = _Sleeper(os.environ, restart_delays=(0.05, 0.3), steady_seconds=3600)
    supervisor.start()
    try:
        first = supervisor.process
        assert first is not None
        _until(lambda: first.pid > 0)
        os.kill(first.pid, signal.SIGKILL)
        _until(lambda: supervisor.restarts == 1)
        second = supervisor.process
        assert second is not None and second.pid != first.pid
        os.kill(second.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        _until(lambda: supervisor.restarts == 2)
        assert time.monotonic() - killed_at >= 0.3, "the second restart waits the second delay"
    finally:
        supervisor.stop(timeout=10)
    last = supervisor.process
    # SIGTERM, not a kill: 0 once its handler is in place, -15 if it came during the child's start.
    assert last is not None and last.returncode in (0, -signal.SIGTERM)
    time.sleep(0.4)
    assert supervisor.process is last, "nothing is started after stop()"


def test_a_stopped_supervisor_cannot_start_again() -> None:
    supervisor = _Sleeper(os.environ, restart_delays=(0.05,))
    supervisor.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        supervisor.start()
