"""The kit's :mod:`adapters.testing.contracts.grants` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestGrantRepository(contracts.GrantRepositoryContract):
    pass
