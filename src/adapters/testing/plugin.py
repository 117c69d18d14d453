"""The contract kit's pytest plugin: ``pytest_plugins = ["adapters.testing.plugin"]`` in a conftest.

``storage`` runs a test on the in-memory fake, SQLAlchemy on a SQLite file and SQLAlchemy on
PostgreSQL (when ``BILLING_TEST_DATABASE_URL`` is set); ``sql_storage`` on the two SQL ones only.
A host overrides ``storage`` (in its conftest, module or test class) to run the contracts on its
own unit of work instead.

SQLite: the migrations run once per session into a template file; each test gets a copy.
PostgreSQL: the migrations run once per session into a schema of its own; each test starts with
the tables emptied, and the schema is dropped at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.testing.storage import (
    POSTGRES_SKIP_REASON,
    StorageBackend,
    clear_tables,
    copy_sqlite,
    memory_backend,
    migrated_engine,
    migrated_sqlite_template,
    postgres_url,
    sql_backend,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs BILLING_TEST_DATABASE_URL (PostgreSQL)")


def pytest_report_header() -> str:
    if postgres_url() is None:
        return f"storage contract: memory, sqlite — {POSTGRES_SKIP_REASON}"
    return "storage contract: memory, sqlite, postgresql"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from migrated_engine("postgresql", tmp_path_factory.mktemp("postgres"))


def _sql_storage(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    """A copy of the SQLite template, or the session's PostgreSQL schema with its tables emptied."""
    if kind == "sqlite":
        engine = copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "billing.db")
        try:
            yield sql_backend("sqlite", engine)
        finally:
            engine.dispose()
    else:
        engine = request.getfixturevalue("postgres_engine")
        clear_tables(engine)
        yield sql_backend("postgresql", engine)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    """Each storage billing-core ships, each test on an empty database."""
    if request.param == "memory":
        yield memory_backend()
    else:
        yield from _sql_storage(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    """Only the SQL backends: for behaviour the in-memory fake has no counterpart of (driver
    errors, foreign keys, savepoints)."""
    yield from _sql_storage(request.param, request, tmp_path)
