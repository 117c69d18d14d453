"""SQLite units of work keep their pooled connection for the next one (``engine.idle_connections``)
instead of a pool check-in and checkout per unit of work; only a clean connection is kept, and
``engine.dispose()`` still closes every connection."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import SqlAlchemyUnitOfWork, make_engine, migrate, sqlalchemy_uow_factory
from adapters.sqlalchemy.engine import IDLE_CONNECTIONS_KEPT, idle_connections
from billing_core.catalog import load_catalog
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.services.context import BillingContext
from billing_core.services.organizations import create_organization
from tests.e2e.conftest import START


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'idle.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _organization(engine: Engine) -> uuid.UUID:
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(START), catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    return create_organization(ctx, name="Idle", owner_user_id="ada", owner_email="ada@idle.test").id


def _driver(uow: SqlAlchemyUnitOfWork) -> Any:
    return uow.dbapi_connection()


def _credit(uow: SqlAlchemyUnitOfWork, org: uuid.UUID, key: str) -> None:
    uow.wallets.post(transfer(organization_id=org, idempotency_key=key, kind=EntryKind.GRANT, description="grant",
                              created_at=START, source=Account.PROMOTIONAL_GRANTS, target=Account.WALLET,
                              amount_micros=1))


def test_the_next_unit_of_work_gets_the_connection_the_last_one_kept(engine: Engine) -> None:
    with SqlAlchemyUnitOfWork(engine) as first:
        kept = _driver(first)
    assert idle_connections(engine) is not None and len(idle_connections(engine) or []) == 1
    with SqlAlchemyUnitOfWork(engine) as second:
        assert _driver(second) is kept
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedout() == 1, "the kept connection stays checked out between units of work"


def test_a_connection_left_in_a_transaction_is_returned_to_the_pool_not_kept(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    org = _organization(engine)
    with SqlAlchemyUnitOfWork(engine) as uow:
        _credit(uow, org, "left-open")
        dirty = _driver(uow)
        monkeypatch.setattr(uow, "_driver_end", lambda statement: None)  # the rollback did not happen
    assert all(pooled.driver_connection is not dirty for pooled in idle_connections(engine) or [])
    assert not dirty.in_transaction, "the pool's reset rolled it back"
    with SqlAlchemyUnitOfWork(engine) as uow:
        _credit(uow, org, "next")
        uow.commit()
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.ledger.get_by_key(org, "left-open") is None, "the unfinished transaction was not adopted"
        assert uow.ledger.get_by_key(org, "next") is not None


def test_an_invalidated_connection_is_not_kept(engine: Engine) -> None:
    with SqlAlchemyUnitOfWork(engine) as uow:
        dead = _driver(uow)
        uow._pooled.invalidate()
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert _driver(uow) is not dead


def test_dispose_closes_the_kept_connections_and_a_unit_of_work_open_across_it_gives_its_back(
        engine: Engine, tmp_path: Path) -> None:
    org = _organization(engine)
    with SqlAlchemyUnitOfWork(engine) as uow:
        _credit(uow, org, "before-dispose")
        uow.commit()
        kept = _driver(uow)
    engine.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        kept.execute("SELECT 1")
    assert not (tmp_path / "idle.db-wal").exists(), "the last connection closed checkpoints the WAL"
    with SqlAlchemyUnitOfWork(engine) as across:
        old_pool_connection = _driver(across)
        engine.dispose()
    assert idle_connections(engine) == [], "a connection of the pool before dispose() is not kept"
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert _driver(uow) is not old_pool_connection
        assert uow.ledger.get_by_key(org, "before-dispose") is not None


def test_concurrent_units_of_work_never_share_a_connection(engine: Engine) -> None:
    org = _organization(engine)
    in_use: set[int] = set()
    guard = threading.Lock()
    shared: list[int] = []

    def work(n: int) -> None:
        with SqlAlchemyUnitOfWork(engine) as uow:
            connection = id(_driver(uow))
            with guard:
                if connection in in_use:
                    shared.append(connection)
                in_use.add(connection)
            try:
                _credit(uow, org, f"t-{n}")
                uow.commit()
            finally:
                with guard:
                    in_use.discard(connection)

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(work, range(400)))
    assert shared == []
    assert len(idle_connections(engine) or []) <= IDLE_CONNECTIONS_KEPT + 12
    with SqlAlchemyUnitOfWork(engine) as uow:
        assert uow.wallets.get(org).balance_micros == 400
