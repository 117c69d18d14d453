"""The read-only unit of work (``BillingContext.snapshot``, ``SqlAlchemyUnitOfWork(snapshot=True)``):
on SQLite it reads while a writer holds the single writer's lock, sees only what was committed, and
can never commit; on PostgreSQL it is an ordinary transaction that cannot commit either."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import SqlAlchemyUnitOfWork, sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core.catalog import load_catalog
from billing_core.ports import GrantCursor
from billing_core.services.context import BillingContext
from billing_core.services.organizations import create_organization
from tests.e2e.conftest import START


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path, pool_size=4)


def _organization(engine: Engine) -> uuid.UUID:
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(START), catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    return create_organization(ctx, name="Snap", owner_user_id="ada", owner_email="ada@snap.test").id


def _cursor_sequence(engine: Engine, org: uuid.UUID) -> int:
    with SqlAlchemyUnitOfWork(engine, snapshot=True) as reader:
        return reader.grants.cursor(org).sequence


def test_a_snapshot_reads_beside_an_open_writer_and_sees_only_what_was_committed(engine: Engine) -> None:
    org = _organization(engine)
    with SqlAlchemyUnitOfWork(engine) as writer:
        writer.grants.lock_cursor(org)  # on SQLite: BEGIN IMMEDIATE, the writer lock held
        assert writer.grants.apply(GrantCursor(organization_id=org, sequence=7), [], [], expected_sequence=0)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Another thread: a writer's unit of work would queue behind this one until it ends.
            seen = pool.submit(_cursor_sequence, engine, org).result(timeout=5)
        assert seen == 0, "the snapshot does not see what is not committed"
        writer.commit()
    assert _cursor_sequence(engine, org) == 7


def test_a_snapshot_cannot_commit(engine: Engine) -> None:
    org = _organization(engine)
    with SqlAlchemyUnitOfWork(engine, snapshot=True) as reader:
        reader.grants.cursor(org)
        with pytest.raises(RuntimeError, match="read-only"):
            reader.commit()
