"""A billing context over each storage, for tests of the use cases that must hold on all of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.fakes import FixedClock, InMemoryPaymentProvider, InMemoryStore, InMemoryUnitOfWork
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core.catalog import load_catalog
from billing_core.services.context import BillingContext

STORAGES = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""The ``params`` of a fixture that yields :func:`billing_context` for each storage."""


def billing_context(kind: str, directory: Path, clock: FixedClock) -> Iterator[BillingContext]:
    """A context over a new, empty store of ``kind`` (``memory``, ``sqlite`` in ``directory`` or
    ``postgresql`` in a fresh schema), cleaned up afterwards. Use with ``yield from`` in a fixture."""
    catalog, payments = load_catalog(), InMemoryPaymentProvider()
    if kind == "memory":
        store = InMemoryStore()
        yield BillingContext(uow=lambda: InMemoryUnitOfWork(store), clock=clock, catalog=catalog, payments=payments)
        return
    assert kind in ("sqlite", "postgresql"), kind
    for engine in migrated_engine("sqlite" if kind == "sqlite" else "postgresql", directory):
        yield BillingContext(uow=sqlalchemy_uow_factory(engine), clock=clock, catalog=catalog, payments=payments)
