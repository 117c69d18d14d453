"""The usage path's references hold in both databases (ADR 0019): SQLite by its declared foreign
keys, PostgreSQL by statement-level triggers (migration ``0015``) that check every inserted row,
lock each organization named as the foreign key did, refuse deleting an organization that has
ledger transactions or usage events, and keep the ledger append-only. Each test would fail if
the check it names were missing (on PostgreSQL the foreign keys themselves are gone)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, Executable, delete, exc, insert, text

from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.sqlalchemy.errors import translate
from adapters.sqlalchemy.schema import allow_ledger_deletes
from adapters.sqlalchemy.tables import ledger_postings, ledger_transactions, organizations
from adapters.testing.builders import NOW, fund, new_org, usage_event
from adapters.testing.storage import StorageBackend, migrated_engine
from billing_core.errors import NotFound

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageBackend]:
    for engine in migrated_engine(request.param, tmp_path):
        yield StorageBackend(kind=request.param, uow=sqlalchemy_uow_factory(engine), engine=engine)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine("postgresql", tmp_path)


def _engine(storage: StorageBackend) -> Engine:
    assert storage.engine is not None
    return storage.engine


def _refused(engine: Engine, statement: str | Executable, **params: object) -> exc.DBAPIError:
    """The error ``statement`` raises; its transaction is rolled back."""
    with engine.connect() as connection, pytest.raises(exc.DBAPIError) as raised:
        connection.execute(text(statement) if isinstance(statement, str) else statement, params)
    return raised.value


def _transaction(org: uuid.UUID, key: str = "k") -> Executable:
    return insert(ledger_transactions).values(id=uuid.uuid4(), organization_id=org, idempotency_key=key, kind="usage",
                                              description="x", created_at=NOW, wallet_balance_after=0)


def _count(connection: Connection, sql: str, **params: object) -> int:
    return int(connection.execute(text(sql), params).scalar_one())


_INSERT_EVENT = ("INSERT INTO usage_events (organization_id, event_id, product_id, quantity, occurred_at, "
                 "amount_micros, unit_price_micros) VALUES (:org, 'a', :org, 1, :at, 1, 1)")
_INSERT_EVENTS = _INSERT_EVENT + ", (:other, 'b', :org, 1, :at, 1, 1)"


def _bare_organization(engine: Engine) -> uuid.UUID:
    """An organization row and nothing else (no wallet, nothing that refers to it)."""
    org = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO organizations (id, name, created_at, currency_iso) "
                                "VALUES (:id, 'Acme', :at, 'USD')"), {"id": org, "at": NOW})
    return org


def test_events_of_an_unknown_organization_are_refused_and_none_of_the_batch_is_stored(
        storage: StorageBackend) -> None:
    org = new_org(storage)
    ghost = uuid.uuid4()
    with pytest.raises(NotFound) as raised, storage.uow() as uow:
        uow.usage.record_many([usage_event(org.id, "kept"), usage_event(ghost, "orphan")])
    assert "fk_usage_events_organization_id_organizations" in str(raised.value) or storage.kind == "sqlite"
    with _engine(storage).connect() as connection:
        assert _count(connection, "SELECT count(*) FROM usage_events") == 0


def test_a_ledger_transaction_of_an_unknown_organization_is_refused(storage: StorageBackend) -> None:
    error = _refused(_engine(storage), _transaction(uuid.uuid4()))
    assert isinstance(translate(error), NotFound)


def test_a_posting_without_its_transaction_is_refused(storage: StorageBackend) -> None:
    org = new_org(storage)
    fund(storage, org.id, 1_000)  # seq 1 exists; 999 does not
    error = _refused(_engine(storage), insert(ledger_postings).values(
        transaction_seq=999, line_no=0, organization_id=org.id, account="wallet", amount_micros=5))
    refused = translate(error)
    assert isinstance(refused, NotFound)
    if storage.kind == "postgresql":
        assert "fk_ledger_postings_transaction_seq_ledger_transactions" in str(refused)


def test_an_organization_with_usage_events_or_ledger_transactions_cannot_be_deleted(storage: StorageBackend) -> None:
    with_events = new_org(storage, wallet=False)
    with storage.uow() as uow:
        uow.usage.record_many([usage_event(with_events.id, "e")])
        uow.commit()
    with_ledger = new_org(storage, wallet=False)
    with _engine(storage).begin() as connection:
        connection.execute(_transaction(with_ledger.id))
    for org in (with_events, with_ledger):
        refused = _refused(_engine(storage), delete(organizations).where(organizations.c.id == org.id))
        assert isinstance(translate(refused), NotFound)
    bare = new_org(storage, wallet=False)
    with _engine(storage).begin() as connection:  # nothing refers to it: it goes
        assert connection.execute(delete(organizations).where(organizations.c.id == bare.id)).rowcount == 1


@pytest.mark.postgres
def test_one_statement_naming_a_known_and_an_unknown_organization_is_refused_whole(postgres: Engine) -> None:
    org = _bare_organization(postgres)
    error = _refused(postgres, _INSERT_EVENTS, org=org, other=uuid.uuid4(), at=NOW)
    assert isinstance(translate(error), NotFound)
    with postgres.connect() as connection:
        assert _count(connection, "SELECT count(*) FROM usage_events") == 0


@pytest.mark.postgres
def test_an_event_moved_to_an_unknown_organization_is_refused(postgres: Engine) -> None:
    org = _bare_organization(postgres)
    with postgres.begin() as connection:
        connection.execute(text(_INSERT_EVENT), {"org": org, "at": NOW})
    error = _refused(postgres, "UPDATE usage_events SET organization_id = :ghost", ghost=uuid.uuid4())
    assert isinstance(translate(error), NotFound)


@pytest.mark.postgres
@pytest.mark.parametrize("change", [
    "UPDATE ledger_transactions SET description = 'edited'",
    "UPDATE ledger_postings SET amount_micros = amount_micros * 2",
    "DELETE FROM ledger_postings",
    "DELETE FROM ledger_transactions",
    "TRUNCATE ledger_transactions CASCADE",
    "TRUNCATE ledger_postings",
])
def test_the_ledger_is_append_only(tmp_path: Path, change: str) -> None:
    for engine in migrated_engine("postgresql", tmp_path):
        storage = StorageBackend(kind="postgresql", uow=sqlalchemy_uow_factory(engine), engine=engine)
        fund(storage, new_org(storage).id, 1_000)
        error = _refused(engine, change)
        assert getattr(error.orig, "sqlstate", None) == "23001", error
        assert "append-only" in str(error)
        if not change.startswith("DELETE"):  # maintenance lets deletes through, nothing else
            with engine.connect() as connection:
                allow_ledger_deletes(connection)
                with pytest.raises(exc.DBAPIError, match="append-only"):
                    connection.execute(text(change))
        with engine.connect() as connection:
            assert _count(connection, "SELECT count(*) FROM ledger_transactions") == 1
            assert _count(connection, "SELECT sum(amount_micros) FROM ledger_postings WHERE amount_micros > 0") \
                == 1_000


@pytest.mark.postgres
def test_ledger_maintenance_deletes_postings_then_their_transactions_never_a_transaction_alone(
        postgres: Engine) -> None:
    storage = StorageBackend(kind="postgresql", uow=sqlalchemy_uow_factory(postgres), engine=postgres)
    fund(storage, new_org(storage).id, 1_000)
    with postgres.connect() as connection:
        allow_ledger_deletes(connection)
        with pytest.raises(exc.DBAPIError) as raised:
            connection.execute(text("DELETE FROM ledger_transactions"))
    assert isinstance(translate(raised.value), NotFound)
    with postgres.begin() as connection:
        allow_ledger_deletes(connection)
        assert connection.execute(text("DELETE FROM ledger_postings")).rowcount == 2
        assert connection.execute(text("DELETE FROM ledger_transactions")).rowcount == 1
    # SET LOCAL: the next transaction is append-only again
    with postgres.connect() as connection, pytest.raises(exc.DBAPIError, match="append-only"):
        connection.execute(text("DELETE FROM ledger_postings"))


@pytest.mark.postgres
def test_a_writer_holds_the_organizations_it_names_until_it_commits(postgres: Engine) -> None:
    """As the foreign key's row lock did: an organization cannot be deleted between the check of a
    row naming it and that row's commit; the delete waits, then is refused."""
    org = _bare_organization(postgres)
    refused: list[BaseException] = []
    with postgres.connect() as writer, postgres.connect() as deleter:
        writer.execute(text(_INSERT_EVENT), {"org": org, "at": NOW})
        deleter.execute(text("SET lock_timeout = '200ms'"))
        with pytest.raises(exc.DBAPIError) as waited:
            deleter.execute(text("DELETE FROM organizations WHERE id = :id"), {"id": org})
        deleter.rollback()
        assert getattr(waited.value.orig, "sqlstate", None) == "55P03"  # it waited for the writer's lock

        def delete() -> None:
            try:
                deleter.execute(text("SET lock_timeout = '10s'"))
                deleter.execute(text("DELETE FROM organizations WHERE id = :id"), {"id": org})
            except exc.DBAPIError as error:
                refused.append(error)
            finally:
                deleter.rollback()

        waiting = threading.Thread(target=delete)
        waiting.start()
        writer.commit()
        waiting.join(timeout=20)
    assert refused and isinstance(translate(refused[0]), NotFound), refused
    with postgres.connect() as connection:
        assert _count(connection, "SELECT count(*) FROM organizations WHERE id = :id", id=org) == 1
