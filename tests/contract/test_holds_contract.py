"""The kit's :mod:`adapters.testing.contracts.holds` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestHoldRepository(contracts.HoldRepositoryContract):
    pass
