"""PostgreSQL pool health without a ping per checkout: a connection that idled in the pool is pinged
and replaced if the server dropped it; a recently used one is not pinged, and if it died anyway
the failing unit of work invalidates the pool so the next one reconnects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from adapters.sqlalchemy import SqlAlchemyUnitOfWork
from adapters.sqlalchemy.engine import make_engine
from adapters.testing.builders import fund, new_org, usage_tx
from adapters.testing.storage import migrated_engine, require_postgres_url, sql_backend
from billing_core.errors import StorageUnavailable

pytestmark = pytest.mark.postgres


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = make_engine(require_postgres_url(), pool_size=1, max_overflow=0)
    try:
        with admin.begin() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


@pytest.fixture
def always_ping(tmp_path: Path) -> Iterator[Engine]:
    # Every connection counts as idle: each checkout pings.
    yield from migrated_engine("postgresql", tmp_path, pool_size=1, max_overflow=0, ping_after_idle_s=0.0)


@pytest.fixture
def never_ping(tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine("postgresql", tmp_path, pool_size=1, max_overflow=0, ping_after_idle_s=3600.0)


def test_an_idle_connection_dropped_by_the_server_is_replaced_before_use(always_ping: Engine) -> None:
    backend = sql_backend("postgresql", always_ping)
    org = new_org(backend)
    fund(backend, org.id, 1_000)
    dead = _backend_pid(always_ping)
    _terminate(dead)
    tx = usage_tx(org.id, 100, "u")
    with SqlAlchemyUnitOfWork(always_ping) as uow:
        outcome = uow.wallets.debit(org.id, 100, tx.created_at, tx)
        uow.commit()
    assert outcome.decision.allowed
    assert _backend_pid(always_ping) != dead


def test_a_recently_used_connection_is_not_pinged_and_a_dead_one_fails_once(never_ping: Engine) -> None:
    backend = sql_backend("postgresql", never_ping)
    org = new_org(backend)
    fund(backend, org.id, 1_000)
    dead = _backend_pid(never_ping)
    _terminate(dead)
    tx = usage_tx(org.id, 100, "u")
    with pytest.raises(StorageUnavailable) as failed, SqlAlchemyUnitOfWork(never_ping) as uow:
        uow.wallets.debit(org.id, 100, tx.created_at, tx)
    assert failed.value.code == "storage_unavailable"  # a 503 over HTTP: nothing was committed, retry
    with SqlAlchemyUnitOfWork(never_ping) as uow:
        outcome = uow.wallets.debit(org.id, 100, tx.created_at, tx)
        uow.commit()
    assert outcome.decision.allowed and not outcome.replayed
    assert _backend_pid(never_ping) != dead
