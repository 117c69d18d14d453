"""Fixtures shared by every test tier."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.fakes import FixedClock, InMemoryStore, InMemoryUnitOfWork
from billing_core.catalog import Catalog, load_catalog

# The contract kit's ``storage`` / ``sql_storage`` fixtures (memory, SQLite, PostgreSQL) for every tier.
pytest_plugins = ["adapters.testing.plugin"]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 14, 9, 30, tzinfo=UTC))


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def uow(store: InMemoryStore) -> InMemoryUnitOfWork:
    return InMemoryUnitOfWork(store)
