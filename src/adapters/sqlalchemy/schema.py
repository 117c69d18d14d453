"""Schema management: ``alembic upgrade`` from code, with no ini file needed on disk.

The migration scripts ship inside the package (``adapters/sqlalchemy/migrations``); tests and the
``billing migrate`` command create the schema through them, so the schema tested is the schema
shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from adapters.sqlalchemy.engine import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the newest), in one transaction.

    Idempotent: an up-to-date database is left as it is. An engine is used as given (its
    ``search_path`` or file); a URL gets a short-lived engine from :func:`make_engine`.
    """
    _run(url_or_engine, lambda config: command.upgrade(config, revision))


def downgrade(url_or_engine: str | Engine, revision: str) -> None:
    """Downgrade the database to ``revision`` (``"base"`` drops everything the migrations made)."""
    _run(url_or_engine, lambda config: command.downgrade(config, revision))


LEDGER_MAINTENANCE = "billing.ledger_maintenance"
"""On PostgreSQL the ledger tables refuse ``DELETE`` unless this setting is ``on`` for the session
(migration ``0015``, ADR 0019); ``UPDATE`` and ``TRUNCATE`` are always refused."""


def allow_ledger_deletes(connection: Connection) -> None:
    """Let the current transaction delete ledger rows (a test reset, a retention job): postings
    first, then their transactions. A no-op on SQLite, whose ledger keeps its foreign keys."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL {LEDGER_MAINTENANCE} = 'on'")


def declared_for(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` hook for comparing the tables with a ``dialect`` database: a
    constraint declared only for other dialects (``ddl_if``, as the foreign keys PostgreSQL checks
    per statement, ADR 0019) is not expected there. Alembic itself does not read ``ddl_if``."""
    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        wanted = getattr(obj, "_ddl_if", None)
        return reflected or wanted is None or wanted.dialect is None or wanted.dialect == dialect
    return include


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url_or_engine: str | Engine) -> str | None:
    engine, owned = _engine(url_or_engine)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def _engine(url_or_engine: str | Engine) -> tuple[Engine, bool]:
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return make_engine(url_or_engine), True


def _run(url_or_engine: str | Engine, action: Callable[[Config], None]) -> None:
    engine, owned = _engine(url_or_engine)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            action(config)
    finally:
        if owned:
            engine.dispose()
