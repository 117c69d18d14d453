"""The kit's :mod:`adapters.testing.contracts.scheduled_jobs` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestScheduledJobRepository(contracts.ScheduledJobRepositoryContract):
    pass
