"""Run the same worker in several threads at once, for the concurrency contracts."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(worker: Callable[[int], None], count: int) -> None:
    """Call ``worker(0)`` … ``worker(count - 1)``, each in a thread of its own, wait for all of them,
    and re-raise the first exception a worker raised (a failed worker must fail the test)."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            worker(n)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
