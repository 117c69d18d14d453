"""Contract of :class:`~billing_core.ports.ScheduledJobRepository`: leases that let any number of
workers run a scheduled job once per period, on every backend."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from adapters.testing.builders import NOW
from adapters.testing.storage import StorageBackend
from adapters.testing.threads import run_in_threads

LEASE = NOW + timedelta(minutes=5)


def _claim(storage: StorageBackend, holder: str, *, period: str = "2026-02", now: datetime = NOW) -> bool:
    with storage.uow() as uow:
        won = uow.scheduled_jobs.claim("close-period", period, holder, now, LEASE)
        uow.commit()
        return won


def _complete(storage: StorageBackend, holder: str, period: str = "2026-02") -> bool:
    with storage.uow() as uow:
        done = uow.scheduled_jobs.complete("close-period", period, holder)
        uow.commit()
        return done


class ScheduledJobRepositoryContract:
    def test_one_holder_at_a_time_until_the_lease_ends(self, storage: StorageBackend) -> None:
        assert _claim(storage, "a")
        assert not _claim(storage, "b")
        assert _claim(storage, "a"), "the holder renews its own lease"
        assert _claim(storage, "b", now=LEASE + timedelta(seconds=1)), "an expired lease is taken over"
        assert not _complete(storage, "a"), "a holder whose lease was taken cannot complete"
        assert _complete(storage, "b")

    def test_a_completed_period_is_not_claimed_again_but_the_next_is(self, storage: StorageBackend) -> None:
        assert _claim(storage, "a")
        assert _complete(storage, "a")
        with storage.uow() as uow:
            assert uow.scheduled_jobs.last_completed("close-period") == "2026-02"
            assert uow.scheduled_jobs.last_completed("other") is None
        assert not _claim(storage, "b")
        assert not _claim(storage, "a")
        assert _claim(storage, "b", period="2026-03")

    def test_an_uncommitted_claim_leaves_nothing(self, storage: StorageBackend) -> None:
        with storage.uow() as uow:
            assert uow.scheduled_jobs.claim("close-period", "2026-02", "a", NOW, LEASE)
        assert _claim(storage, "b")

    def test_concurrent_claims_have_one_winner(self, storage: StorageBackend) -> None:
        barrier = threading.Barrier(8)
        winners: list[str] = []

        def worker(n: int) -> None:
            barrier.wait(timeout=10)
            if _claim(storage, f"w{n}"):
                winners.append(f"w{n}")

        run_in_threads(worker, 8)
        assert len(winners) == 1
