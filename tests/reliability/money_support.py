"""Shared set-up of the money-mutation concurrency tests: a billing context over a real database
(or the fakes), an organization with its primary owner, and a way to fire calls at once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

import pytest

from adapters.fakes import InMemoryPaymentProvider, InMemoryStore
from adapters.fakes.clock import FixedClock
from adapters.fakes.storage import in_memory_uow_factory
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core import services
from billing_core.catalog import load_catalog
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext

T = TypeVar("T")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CONCURRENCY = 18


@dataclass
class Money:
    """A context over one storage backend, with the provider fake and clock at hand."""

    ctx: BillingContext
    provider: InMemoryPaymentProvider
    clock: FixedClock


def backends(kinds: tuple[str, ...] = ("memory", "sqlite", "postgresql")) -> list[object]:
    params: list[object] = []
    for kind in kinds:
        params.append(pytest.param(kind, marks=pytest.mark.postgres) if kind == "postgresql" else kind)
    return params


def money_context(kind: str, tmp_path: Path) -> Iterator[Money]:
    """Yield a :class:`Money` over ``kind`` storage (memory, sqlite or postgresql)."""
    clock = FixedClock(NOW)
    provider = InMemoryPaymentProvider()
    if kind == "memory":
        store = InMemoryStore()
        yield Money(BillingContext(uow=in_memory_uow_factory(store), clock=clock, catalog=load_catalog(),
                                   payments=provider), provider, clock)
        return
    assert kind in ("sqlite", "postgresql")
    for engine in migrated_engine(kind, tmp_path, pool_size=CONCURRENCY + 4):  # type: ignore[arg-type]
        yield Money(BillingContext(uow=sqlalchemy_uow_factory(engine), clock=clock, catalog=load_catalog(),
                                   payments=provider), provider, clock)


def sql_context(kind: str, tmp_path: Path, *, now: datetime, pool_size: int) -> Iterator[BillingContext]:
    """Yield a billing context over migrated ``kind`` storage (sqlite or postgresql) at ``now``."""
    for engine in migrated_engine(kind, tmp_path, pool_size=pool_size):  # type: ignore[arg-type]
        yield BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(now), catalog=load_catalog(),
                             payments=InMemoryPaymentProvider())


def organization(ctx: BillingContext, name: str = "Acme") -> tuple[uuid.UUID, Actor]:
    """A new organization and its primary owner's actor."""
    user = f"owner-{uuid.uuid4().hex[:8]}"
    org = services.organizations.create_organization(ctx, name=name, owner_user_id=user,
                                                     owner_email=f"{user}@acme.test")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name=user, user_id=user)
    return org.id, services.organizations.authenticate(ctx, secret)


@dataclass
class Outcomes(Generic[T]):
    results: list[T]
    errors: list[BaseException]


def at_once(calls: Sequence[Callable[[], T]]) -> Outcomes[T]:
    """Run every call in its own thread, released together by a barrier; collect answers and errors."""
    barrier = threading.Barrier(len(calls))
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            result = call()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Outcomes(results, errors)
