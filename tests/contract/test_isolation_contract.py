"""The kit's :mod:`adapters.testing.contracts.isolation` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestIsolation(contracts.IsolationContract):
    pass
