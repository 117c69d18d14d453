"""A PostgreSQL unit of work that begins its transaction with its first statement
(``SqlAlchemyUnitOfWork.begin_with``, ADR 0010): the connection is in psycopg's autocommit mode
while the transaction the unit of work opened runs, and in no other moment. These tests would fail
if it stayed in that mode: every later statement, of this unit of work after a commit or of the
next one on the same pooled connection, would then commit on its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.sqlalchemy.uow import SqlAlchemyUnitOfWork
from adapters.testing.builders import NOW, PRODUCT, fund, grant, new_org, usage_tx
from adapters.testing.storage import StorageBackend, migrated_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[StorageBackend]:
    # One pooled connection: every unit of work below reuses the same one.
    for engine in migrated_engine("postgresql", tmp_path, pool_size=1, max_overflow=0):
        yield StorageBackend(kind="postgresql", uow=sqlalchemy_uow_factory(engine), engine=engine)


def _in_autocommit(engine: Engine | None) -> bool:
    assert engine is not None
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        return bool(driver.autocommit)


def _own_uow(storage: StorageBackend) -> SqlAlchemyUnitOfWork:
    assert storage.engine is not None
    return SqlAlchemyUnitOfWork(storage.engine)


class Boom(Exception):
    pass


def _then_fail(*writes: Callable[[], object]) -> None:
    for write in writes:
        write()
    raise Boom


def test_a_unit_of_work_that_began_itself_leaves_autocommit_mode_when_it_commits(storage: StorageBackend) -> None:
    org = new_org(storage)
    fund(storage, org.id, 1_000)
    with _own_uow(storage) as uow:
        uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW)
        driver = uow.dbapi_connection()
        assert driver.autocommit  # the transaction is the server's, begun with the lock
        uow.commit()
        assert not driver.autocommit
        # Statements after the commit are a transaction again: a failure takes all of them back.
        with pytest.raises(Boom):
            _then_fail(lambda: uow.wallets.post(grant(org.id, 500, "after-commit")),
                       lambda: uow.wallets.debit(org.id, 100, NOW, usage_tx(org.id, 100, "after-commit-debit")))
    with storage.uow() as uow:
        assert uow.wallets.get(org.id).balance_micros == 1_000
        assert uow.ledger.get_by_key(org.id, "after-commit") is None
    assert not _in_autocommit(storage.engine)


def test_a_unit_of_work_that_began_itself_and_failed_writes_nothing(storage: StorageBackend) -> None:
    org = new_org(storage)
    fund(storage, org.id, 1_000)
    with storage.uow() as uow, pytest.raises(Boom):
        _then_fail(lambda: uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW),
                   lambda: uow.wallets.debit(org.id, 100, NOW, usage_tx(org.id, 100, "u")))
    assert not _in_autocommit(storage.engine)
    # The next unit of work on the same connection is atomic: its SQLAlchemy statements do not
    # commit one by one.
    with storage.uow() as uow, pytest.raises(Boom):
        _then_fail(lambda: uow.wallets.post(grant(org.id, 500, "g")))
    with storage.uow() as uow:
        assert uow.wallets.get(org.id).balance_micros == 1_000
        assert uow.ledger.get_by_key(org.id, "u") is None
        assert uow.ledger.get_by_key(org.id, "g") is None


def test_a_connection_handed_back_in_autocommit_mode_is_checked_out_without_it(storage: StorageBackend) -> None:
    assert storage.engine is not None
    with storage.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.autocommit = True
    assert not _in_autocommit(storage.engine)


def test_a_second_statement_does_not_begin_again(storage: StorageBackend) -> None:
    org = new_org(storage)
    fund(storage, org.id, 1_000)
    with _own_uow(storage) as uow:
        uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW)
        assert uow.begin_with([("SELECT 1", ())]) is None  # the transaction is open
        uow.wallets.debit(org.id, 100, NOW, usage_tx(org.id, 100, "u"))
        uow.commit()
    with storage.uow() as uow:
        assert uow.wallets.get(org.id).balance_micros == 900
