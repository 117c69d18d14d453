"""The kit's :mod:`adapters.testing.contracts.sql_storage` on SQLite and PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestSqlStorage(contracts.SqlStorageContract):
    pass
