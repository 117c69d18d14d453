"""The kit's :mod:`adapters.testing.contracts.unit_of_work` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestUnitOfWork(contracts.UnitOfWorkContract):
    pass
