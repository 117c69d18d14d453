"""The kit's :mod:`adapters.testing.contracts.usage_debit` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestUsageDebit(contracts.UsageDebitContract):
    pass


class TestUsageBatchWrite(contracts.UsageBatchWriteContract):
    pass


class TestUsageBatchParts(contracts.UsageBatchPartsContract):
    pass
