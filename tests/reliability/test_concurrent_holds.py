"""64 holds placed at once against a balance that affords 10, on SQLite and PostgreSQL (from threads
of one process, and from four separate processes with their own engines): exactly 10 are granted,
the wallet's held credits are exactly theirs, and settling and releasing them at once (each twice)
charges each settled hold once and leaves nothing held (ADR 0011)."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import make_engine, sqlalchemy_uow_factory
from adapters.testing.storage import SqlKind, migrated_database
from billing_core import Permission, services
from billing_core.catalog import load_catalog
from billing_core.holds import HoldStatus
from billing_core.services.context import BillingContext
from billing_core.services.holds import HoldOutcome
from billing_core.spend_guard import DenialReason
from tests.e2e.conftest import START
from tests.reliability.money_support import at_once, sql_context
from tests.support.customers import Customer, sign_up

HOLDS = 64
PRICE = 40_000  # compute, per vCPU-hour
HOLD_QUANTITY = 25  # $1.00 a hold


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BillingContext]:
    yield from sql_context(request.param, tmp_path, now=START, pool_size=16)


@pytest.fixture
def customer(ctx: BillingContext) -> Customer:
    customer = sign_up(ctx, name="Race", owner="ada", owner_email="ada@race.test")
    services.wallet.grant_credits(ctx, organization_id=customer.organization_id,
                                  amount_micros=10 * HOLD_QUANTITY * PRICE, description="grant",
                                  idempotency_key="grant")
    return customer


def test_64_concurrent_holds_against_a_balance_for_10_grant_exactly_10(ctx: BillingContext,
                                                                       customer: Customer) -> None:
    org = customer.organization_id

    def place() -> HoldOutcome:
        return services.holds.place_hold(ctx, customer.platform, organization_id=org, product="compute",
                                         max_quantity=HOLD_QUANTITY)

    placed = at_once([place] * HOLDS)
    assert placed.errors == []
    granted = [o.hold for o in placed.results if o.hold is not None]
    denied = [o for o in placed.results if o.hold is None]
    assert len(granted) == 10
    assert {o.decision.reason for o in denied} == {DenialReason.INSUFFICIENT_CREDIT}
    with ctx.uow() as uow:
        wallet = uow.wallets.get(org)
        assert wallet.held_micros == 10 * HOLD_QUANTITY * PRICE
        assert len(uow.holds.active(org)) == 10
    assert not services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id="squeeze",
                                           product="compute", quantity=1).allowed

    # Settle the first five and release the rest, every request sent twice at once.
    def settle(hold_id: uuid.UUID, n: int) -> Callable[[], HoldOutcome]:
        return lambda: services.holds.settle_hold(ctx, customer.platform, organization_id=org, hold_id=hold_id,
                                                  event_id=f"call-{n}", quantity=10)

    def release(hold_id: uuid.UUID) -> Callable[[], HoldOutcome]:
        return lambda: services.holds.release_hold(ctx, customer.platform, organization_id=org, hold_id=hold_id)

    calls = [call for n, hold in enumerate(granted) if hold is not None
             for call in ([settle(hold.id, n)] * 2 if n < 5 else [release(hold.id)] * 2)]
    closed = at_once(calls)
    assert closed.errors == []
    with ctx.uow() as uow:
        wallet = uow.wallets.get(org)
        statuses = [uow.holds.get(org, hold.id).status for hold in granted if hold is not None]
    assert statuses.count(HoldStatus.SETTLED) == 5 and statuses.count(HoldStatus.RELEASED) == 5
    assert wallet.held_micros == 0
    assert wallet.balance_micros == 10 * HOLD_QUANTITY * PRICE - 5 * 10 * PRICE
    assert services.reconcile.reconcile(ctx, organization_id=org).clean


PROCESSES = 4


def _process_context(url: str, schema: str) -> tuple[BillingContext, Any]:
    engine = make_engine(url, schema=schema or None)
    return BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(START), catalog=load_catalog(),
                          payments=InMemoryPaymentProvider()), engine


def place_from_a_process(url: str, schema: str, organization: str, secret: str, start: Any, results: Any) -> None:
    """One of the separate processes: HOLDS // PROCESSES holds at once from its own threads and engine."""
    ctx, engine = _process_context(url, schema)
    try:
        platform = services.organizations.authenticate(ctx, secret)
        org = uuid.UUID(organization)

        def place() -> HoldOutcome:
            return services.holds.place_hold(ctx, platform, organization_id=org, product="compute",
                                             max_quantity=HOLD_QUANTITY)

        start.wait(timeout=60)
        placed = at_once([place] * (HOLDS // PROCESSES))
        results.put((sum(o.hold is not None for o in placed.results), [repr(e) for e in placed.errors]))
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_64_holds_from_four_processes_grant_exactly_10(kind: SqlKind, tmp_path: Path) -> None:
    with migrated_database(kind, tmp_path) as (url, schema):
        ctx, engine = _process_context(url, schema)
        try:
            customer = sign_up(ctx, name="Race", owner="ada", owner_email="ada@race.test")
            services.wallet.grant_credits(ctx, organization_id=customer.organization_id,
                                          amount_micros=10 * HOLD_QUANTITY * PRICE, description="grant",
                                          idempotency_key="grant")
            _, secret = services.organizations.issue_token(ctx, organization_id=customer.organization_id,
                                                           name="platform-2",
                                                           scopes=frozenset({Permission.USAGE_WRITE}))
            spawn = multiprocessing.get_context("spawn")
            start, results = spawn.Barrier(PROCESSES), spawn.Queue()
            processes = [spawn.Process(target=place_from_a_process,
                                       args=(url, schema, str(customer.organization_id), secret, start, results))
                         for _ in range(PROCESSES)]
            for process in processes:
                process.start()
            answers = [results.get(timeout=120) for _ in processes]
            for process in processes:
                process.join(timeout=30)
                assert process.exitcode == 0
            assert [errors for _, errors in answers if errors] == []
            assert sum(granted for granted, _ in answers) == 10
            with ctx.uow() as uow:
                assert uow.wallets.get(customer.organization_id).held_micros == 10 * HOLD_QUANTITY * PRICE
                assert len(uow.holds.active(customer.organization_id)) == 10
            assert services.reconcile.reconcile(ctx, organization_id=customer.organization_id).clean
        finally:
            engine.dispose()
