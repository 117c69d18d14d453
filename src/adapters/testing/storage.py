"""The storage under test: a factory of units of work, and the migrated SQL databases behind it.

Shared by the contract kit's fixtures and by our integration and end-to-end tests.

Every SQL database a test uses is created through the shipped Alembic migrations, never with
``metadata.create_all``, so the schema under test is the schema in production.

Typical fixture use::

    @pytest.fixture(params=["sqlite", "postgresql"])
    def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
        yield from migrated_engine(request.param, tmp_path)

PostgreSQL runs only when ``BILLING_TEST_DATABASE_URL`` is set (for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); otherwise those tests are skipped with
:data:`POSTGRES_SKIP_REASON`. Each PostgreSQL engine lives in its own freshly created schema
(``billing_test_<random>``), dropped afterwards, so concurrent runs never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import Engine, delete

from adapters.fakes import InMemoryStore, InMemoryTokenReader, InMemoryUnitOfWork
from adapters.sqlalchemy import make_engine, migrate, sqlalchemy_uow_factory
from adapters.sqlalchemy.schema import allow_ledger_deletes
from adapters.sqlalchemy.tables import metadata
from adapters.sqlalchemy.tokens import SqlAlchemyTokenReader
from billing_core.ports import TokenReader, UnitOfWork

DATABASE_URL_ENV = "BILLING_TEST_DATABASE_URL"
POSTGRES_SKIP_REASON = (
    f"{DATABASE_URL_ENV} is not set: PostgreSQL storage tests are SKIPPED. "
    f"Set {DATABASE_URL_ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/test to run them."
)
SqlKind = Literal["sqlite", "postgresql"]
UowFactory = Callable[[], UnitOfWork]


def postgres_url() -> str | None:
    """The test database URL, or None when PostgreSQL tests should be skipped."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    return url or None


def require_postgres_url() -> str:
    """The test database URL; skips the calling test (loudly) when it is not configured."""
    url = postgres_url()
    if url is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    return url


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh, empty schema for this test run; dropped (with everything in it) on exit."""
    name = f"billing_test_{secrets.token_hex(6)}"
    admin = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {name}")
        try:
            yield name
        finally:
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        admin.dispose()


def migrated_engine(kind: SqlKind, directory: Path, **engine_options: Any) -> Iterator[Engine]:
    """Yield an engine on a new, migrated database; clean it up afterwards.

    ``kind`` is ``"sqlite"`` (a file in ``directory``) or ``"postgresql"`` (a fresh schema; skips
    when ``BILLING_TEST_DATABASE_URL`` is unset). Use with ``yield from`` inside a fixture.
    """
    with migrated_database(kind, directory) as (url, schema):
        engine = make_engine(url, schema=schema or None, **engine_options)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def migrated_database(kind: SqlKind, directory: Path, name: str = "billing") -> Iterator[tuple[str, str]]:
    """``(url, schema)`` of a new, migrated database, for code that makes its own engines (a child
    process, say): ``make_engine(url, schema=schema or None)``.

    SQLite: the file ``<name>.db`` in ``directory``, and the schema is ``""``. PostgreSQL: a fresh
    schema, dropped on exit; skips when ``BILLING_TEST_DATABASE_URL`` is unset.
    """
    if kind == "sqlite":
        url = f"sqlite:///{directory / (name + '.db')}"
        migrate(url)
        yield url, ""
        return
    url = require_postgres_url()
    with postgres_schema(url) as schema:
        engine = make_engine(url, schema=schema)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        yield url, schema


def migrated_sqlite_template(directory: Path) -> Path:
    """Migrate a SQLite file once; tests copy it (:func:`copy_sqlite`) instead of migrating again."""
    path = directory / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()  # the last connection checkpoints and removes the WAL file
    return path


def copy_sqlite(template: Path, target: Path) -> Engine:
    shutil.copyfile(template, target)
    return make_engine(f"sqlite:///{target}")


def clear_tables(engine: Engine) -> None:
    """Delete every row (children first): a migrated database back to empty, cheaply."""
    with engine.begin() as connection:
        allow_ledger_deletes(connection)
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


@dataclass(frozen=True)
class StorageBackend:
    """One storage implementation under test: a factory of units of work over one database.

    ``kind`` names it in test ids and messages (``"memory"``, ``"sqlite"``, ``"postgresql"``, or a
    host's own name); ``engine`` is set for the SQLAlchemy adapter only. Every unit of work the
    factory makes must see what the others committed: they share one database (or one store).
    """

    kind: str
    uow: UowFactory
    engine: Engine | None = None
    tokens: TokenReader | None = None
    """Authentication's token read over the same database (None: the host gives none)."""

    @property
    def is_sql(self) -> bool:
        return self.engine is not None


def memory_backend() -> StorageBackend:
    store = InMemoryStore()
    factory: UowFactory = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    return StorageBackend("memory", factory, tokens=InMemoryTokenReader(store))


def sql_backend(kind: SqlKind, engine: Engine) -> StorageBackend:
    factory: UowFactory = sqlalchemy_uow_factory(engine)
    return StorageBackend(kind, factory, engine, SqlAlchemyTokenReader(engine))
