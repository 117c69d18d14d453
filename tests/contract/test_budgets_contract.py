"""The kit's :mod:`adapters.testing.contracts.budgets` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestBudgetRepository(contracts.BudgetRepositoryContract):
    pass
