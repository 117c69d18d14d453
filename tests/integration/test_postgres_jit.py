"""PostgreSQL connections run with the server's JIT compiler off (ADR 0020): a statement whose
estimated cost passes ``jit_above_cost`` is planned and run without compiling it first, and the
setting survives the pool's reset, the schema option and options given in the URL;
``postgres_jit=True`` leaves the server's setting alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, make_url, text

from adapters.sqlalchemy import SqlAlchemyUnitOfWork
from adapters.sqlalchemy.engine import make_engine
from adapters.testing.storage import migrated_engine, require_postgres_url

pytestmark = pytest.mark.postgres

# Any statement passes a cost threshold of zero: with JIT on, EXPLAIN ANALYZE reports the compiling.
_COSTLY = "EXPLAIN (ANALYZE, FORMAT TEXT) SELECT count(*) FROM generate_series(1, 1000) AS g WHERE g % 7 = 3"


@pytest.fixture
def default_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine("postgresql", tmp_path, pool_size=1, max_overflow=0)


@pytest.fixture
def jit_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine("postgresql", tmp_path, pool_size=1, max_overflow=0, postgres_jit=True)


def _compiles(connection: Connection) -> bool:
    connection.execute(text("SET LOCAL jit_above_cost = 0"))
    plan = "\n".join(row[0] for row in connection.execute(text(_COSTLY)))
    return "JIT:" in plan


def test_a_statement_past_the_cost_threshold_is_not_compiled(default_engine: Engine) -> None:
    for _ in range(2):  # a fresh connection, then the same one back from the pool after its reset
        with default_engine.begin() as connection:
            setting, source = connection.execute(text(
                "SELECT setting, source FROM pg_settings WHERE name = 'jit'")).one()
            assert (setting, source) == ("off", "client")
            assert not _compiles(connection)
            assert connection.execute(text("SELECT current_schema()")).scalar_one().startswith("billing_test_")


def test_options_in_the_url_are_kept_beside_it(default_engine: Engine) -> None:
    with default_engine.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    url = make_url(require_postgres_url()).update_query_dict({"options": f"-csearch_path={schema} -cwork_mem=5MB"})
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_schema()")).scalar_one() == schema
            assert connection.execute(text("SHOW work_mem")).scalar_one() == "5MB"
            assert connection.execute(text("SHOW jit")).scalar_one() == "off"
    finally:
        engine.dispose()


def test_the_units_of_work_run_on_those_connections(default_engine: Engine) -> None:
    with SqlAlchemyUnitOfWork(default_engine) as uow:
        assert uow.execute(text("SHOW jit")).scalar_one() == "off"


def test_postgres_jit_leaves_the_servers_setting(jit_engine: Engine) -> None:
    with jit_engine.begin() as connection:
        setting, source = connection.execute(text("SELECT setting, source FROM pg_settings WHERE name = 'jit'")).one()
        assert source != "client", "the connection did not ask for a jit setting of its own"
        if setting != "on" or not connection.execute(text("SELECT pg_jit_available()")).scalar_one():
            pytest.skip("this server does not compile with JIT: nothing to compare against")
        assert _compiles(connection), "so the default engine's test would see JIT were it on"
