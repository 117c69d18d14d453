"""The kit's :mod:`adapters.testing.contracts.batch` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestDebitMany(contracts.DebitManyContract):
    pass


class TestDebitManyEqualsDebitsOneByOne(contracts.DebitManyEqualsDebitsOneByOneContract):
    pass


class TestRecordMany(contracts.RecordManyContract):
    pass
