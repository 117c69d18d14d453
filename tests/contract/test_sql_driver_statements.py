"""The kit's :mod:`adapters.testing.contracts.sql_driver` on SQLite and PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestSqlDriverStatements(contracts.SqlDriverStatementsContract):
    pass
