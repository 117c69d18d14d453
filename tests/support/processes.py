"""Child processes for the crash tests: run a worker function of a test module in a fresh
interpreter, read the progress lines it prints, SIGKILL it, and collect what it wrote on stderr.

Typical use::

    with worker(worker_main, url, schema) as child:
        for line in child.lines(within=60):
            if line.startswith("paused"):
                break
        child.kill()

A worker prints one line per step it finished (``flush=True``), so that the test knows how far it
got when the kill landed. The child imports the worker's module afresh, with the repository root
and ``src`` on ``PYTHONPATH``; its arguments are strings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_environment() -> dict[str, str]:
    """This process's environment with the repository root (for ``tests``) and ``src`` importable."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}


class Worker:
    """A running child; its stdout is its progress, one line per step."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def lines(self, *, within: float) -> Iterator[str]:
        """The child's stdout lines, stripped, as they come; fails once ``within`` seconds have passed."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + within
        for line in self.process.stdout:
            yield line.strip()
            assert time.monotonic() < deadline, "the worker made no progress"

    def kill(self) -> str:
        """SIGKILL the child and wait for it; its stderr. Fails unless the kill is what ended it."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        stderr = self.process.stderr.read() if self.process.stderr else ""
        assert self.process.returncode == -signal.SIGKILL, stderr
        return stderr

    def kill_after(self, count: int, *, within: float) -> list[str]:
        """Read ``count`` progress lines, then SIGKILL the child; the lines it printed."""
        seen: list[str] = []
        for line in self.lines(within=within):
            seen.append(line)
            if len(seen) >= count:
                break
        stderr = self.kill()
        assert len(seen) >= count, (seen, stderr)
        return seen

    def finish(self, *, timeout: float = 30) -> list[str]:
        """Wait for the child to end by itself; its stdout lines. Fails unless it exited with 0."""
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err
        return out.splitlines()


@contextmanager
def worker(function: Callable[..., object], *args: str) -> Iterator[Worker]:
    """Run ``function(*args)`` in a child interpreter; on exit the child is gone and its pipes closed.

    ``function`` must be a top-level function of an importable module (a test module is fine).
    """
    module, name = function.__module__, function.__qualname__
    assert module != "__main__" and "." not in name, f"{module}.{name} cannot be imported by a child"
    code = f"import sys; from {module} import {name}; {name}(*sys.argv[1:])"
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=child_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield Worker(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
