"""Grant expiry raced against usage and against itself, on SQLite and PostgreSQL (ADR 0016): two
workers expiring at once post one entry per grant, of exactly what the grant had left once the
usage appended before it was allocated; usage stamped before the expiry and appended after it
draws other grants; concurrent catch-ups allocate each transaction once; reconcile stays clean."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import sqlalchemy_snapshot_factory, sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core import services
from billing_core.catalog import load_catalog
from billing_core.grants import GrantSource, expiry_key, grant_id_for
from billing_core.ledger import EntryKind
from billing_core.services.context import BillingContext
from billing_core.services.grants import movements_of
from tests.e2e.conftest import START
from tests.reliability.money_support import at_once
from tests.support.customers import Customer, sign_up

PRICE = 40_000  # compute, per vCPU-hour
EXPIRES = START + timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path, pool_size=16)


def _ctx(engine: Engine, clock: FixedClock) -> BillingContext:
    return BillingContext(uow=sqlalchemy_uow_factory(engine), clock=clock, catalog=load_catalog(),
                          payments=InMemoryPaymentProvider(), snapshot=sqlalchemy_snapshot_factory(engine))


def test_expiry_once_and_exact_while_usage_races_it(engine: Engine) -> None:
    before = _ctx(engine, FixedClock(EXPIRES - timedelta(seconds=1)))
    after = _ctx(engine, FixedClock(EXPIRES + timedelta(seconds=1)))
    setup = _ctx(engine, FixedClock(START))
    customer = sign_up(setup, name="Race", owner="ada", owner_email="ada@race.test")
    org = customer.organization_id
    assert services.wallet.grant_credits(setup, organization_id=org, amount_micros=100 * PRICE,
                                         description="Launch promo", idempotency_key="promo",
                                         source=GrantSource.PROMOTION, expires_at=EXPIRES)
    services.wallet.grant_credits(setup, organization_id=org, amount_micros=1_000 * PRICE,
                                  description="Goodwill", idempotency_key="goodwill")
    with setup.uow() as uow:
        promo_tx = uow.ledger.get_by_key(org, "promo")
        assert promo_tx is not None
    promo = grant_id_for(promo_tx.id)

    def use(n: int) -> Callable[[], object]:
        # Stamped before the expiry: draws the promotion if allocated before the expiry entry.
        return lambda: services.usage.report_usage(before, customer.platform, organization_id=org,
                                                   event_id=f"e{n}", product="compute", quantity=10)

    calls: list[Callable[[], object]] = [use(n) for n in range(8)]
    calls += [lambda: services.grants.expire_grants(after)] * 2
    calls += [lambda: services.grants.catch_up_organization(after, org)] * 2
    outcomes = at_once(calls)
    assert outcomes.errors == []
    assert sum(1 for r in outcomes.results if getattr(r, "allowed", False)) == 8, "every call was paid"
    # Whatever the order, a later worker cycle finds nothing left to expire.
    services.grants.expire_grants(after)
    assert services.grants.expire_grants(after) == 0

    with after.uow() as uow:
        expiries = [t for t in uow.ledger.after(org, 0) if t.transaction.kind == EntryKind.GRANT_EXPIRY]
        assert [t.transaction.idempotency_key for t in expiries] == [expiry_key(promo)]
        drawn_before = sum(-m.amount_micros for t in uow.ledger.after(org, 0)
                           if t.sequence < expiries[0].sequence and t.transaction.kind == EntryKind.USAGE
                           for m in movements_of(uow, org, t.transaction.id) if m.grant_id == promo)
        assert -expiries[0].transaction.balance_delta == 100 * PRICE - drawn_before
        stored = uow.grants.get_many(org, [promo])[0]
        assert stored.remaining_micros == 0 and stored.expired_by == expiries[0].transaction.id
    report = services.reconcile.reconcile(after, organization_id=org)
    assert report.clean, report


def _funded(ctx: BillingContext, name: str) -> tuple[Customer, uuid.UUID]:
    customer = sign_up(ctx, name=name, owner="ada", owner_email=f"ada@{name.lower()}.test")
    org = customer.organization_id
    services.wallet.grant_credits(ctx, organization_id=org, amount_micros=50 * PRICE, description="Promo",
                                  idempotency_key="promo", source=GrantSource.PROMOTION, expires_at=EXPIRES)
    services.wallet.grant_credits(ctx, organization_id=org, amount_micros=1_000 * PRICE, description="Goodwill",
                                  idempotency_key="goodwill")
    return customer, org


def test_usage_never_waits_for_a_catch_up(engine: Engine) -> None:
    """A catch-up holds the organization's grant cursor, not its wallet: while one is open (here a
    unit of work that took the cursor and has not ended), usage of the same organization debits and
    commits; a second catch-up waits for the first and then allocates only what is left."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: every write waits for any open write transaction")
    ctx = _ctx(engine, FixedClock(START))
    customer, org = _funded(ctx, "Hold")

    def report(n: int) -> services.usage.UsageOutcome:
        return services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id=f"e{n}",
                                           product="compute", quantity=1)

    report(0)
    with ctx.uow() as sweeping:
        services.grants.catch_up(sweeping, org, max_batches=1)  # holds the cursor until this block ends
        with ThreadPoolExecutor(max_workers=2) as pool:
            usage = pool.submit(report, 1)
            assert usage.result(timeout=10).allowed, "usage went on while the catch-up was open"
            second = pool.submit(services.grants.catch_up_organization, ctx, org)
            time.sleep(0.3)
            assert not second.done(), "a second catch-up waits for the cursor"
            sweeping.commit()
            assert second.result(timeout=10) is True
    with ctx.uow() as uow:
        usage_ids = [t.transaction.id for t in uow.ledger.after(org, 0) if t.transaction.kind == EntryKind.USAGE]
        assert len(usage_ids) == 2
        for tx_id in usage_ids:
            assert sum(m.amount_micros for m in movements_of(uow, org, tx_id)) == -PRICE, "allocated once"
    assert services.reconcile.reconcile(ctx, organization_id=org).clean


def test_the_workers_sweep_races_usage_readers_and_expiry(engine: Engine) -> None:
    """The worker's stepwise sweep takes no wallet lock: raced against usage, readers' catch-ups and
    expiry, every usage transaction is allocated exactly once and reconcile stays clean."""
    before = _ctx(engine, FixedClock(EXPIRES - timedelta(seconds=1)))
    after = _ctx(engine, FixedClock(EXPIRES + timedelta(seconds=1)))
    customer, org = _funded(_ctx(engine, FixedClock(START)), "Sweep")

    def use(n: int) -> Callable[[], object]:
        return lambda: services.usage.report_usage(before, customer.platform, organization_id=org,
                                                   event_id=f"s{n}", product="compute", quantity=3)

    calls: list[Callable[[], object]] = [use(n) for n in range(10)]
    calls += [lambda: services.grants.catch_up_organization(after, org, stepwise=True)] * 4
    calls += [lambda: services.grants.catch_up_behind(after)] * 2
    calls += [lambda: services.grants.list_grants(after, customer.owner, organization_id=org)] * 2
    calls += [lambda: services.grants.expire_grants(after)]
    outcomes = at_once(calls)
    assert outcomes.errors == []
    services.grants.catch_up_organization(after, org)
    with after.uow() as uow:
        usage = [t.transaction for t in uow.ledger.after(org, 0) if t.transaction.kind == EntryKind.USAGE]
        assert len(usage) == 10
        for tx in usage:
            assert sum(m.amount_micros for m in movements_of(uow, org, tx.id)) == tx.balance_delta
    assert services.reconcile.reconcile(after, organization_id=org).clean


def test_a_sweep_step_whose_read_a_catch_up_overtook_stores_nothing(engine: Engine,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep reads and allocates without any lock, then writes guarded by the cursor it read: a
    reader's catch-up that commits in between wins, the sweep's batch is refused whole, and every
    usage transaction is allocated exactly once."""
    ctx = _ctx(engine, FixedClock(START))
    customer, org = _funded(ctx, "Overtaken")
    for n in range(5):
        services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id=f"o{n}",
                                    product="compute", quantity=1)
    read_phase = services.grants._next_allocation
    overtaken: list[bool] = []

    def then_a_reader_catches_up(*args: object, **kwargs: object) -> object:
        result = read_phase(*args, **kwargs)  # type: ignore[arg-type]
        if not overtaken:  # once: the reader's own catch-up reads through here too
            overtaken.append(False)
            overtaken[0] = services.grants.catch_up_organization(ctx, org)
        return result

    monkeypatch.setattr(services.grants, "_next_allocation", then_a_reader_catches_up)
    assert services.grants.sweep_step(ctx, org) is False, "the guard refused the overtaken batch"
    assert overtaken == [True]
    monkeypatch.undo()
    assert services.grants.sweep_step(ctx, org) is False, "nothing left behind"
    _allocated_once(ctx, org, usage_transactions=5)


def test_a_worker_stalled_while_holding_a_cursor_does_not_stall_the_other_workers_sweep(engine: Engine) -> None:
    """A unit of work that holds an organization's grant cursor and stops (a worker paused or
    swapped out mid-catch-up) must not hold up another worker's sweep: its step skips that
    organization at once instead of queueing on the row lock, and allocates once the holder ends."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: every write waits for any open write transaction")
    ctx = _ctx(engine, FixedClock(START))
    customer, org = _funded(ctx, "Stalled")
    services.grants.catch_up_organization(ctx, org)  # the cursor row exists, as after any first catch-up
    for n in range(3):
        services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id=f"p{n}",
                                    product="compute", quantity=1)
    # The pool is left last: the stalled unit of work ends (rolls back) before the pool joins its thread.
    with ThreadPoolExecutor(max_workers=1) as pool, ctx.uow() as stalled:
        stalled.grants.lock_cursor(org)
        assert pool.submit(services.grants.sweep_step, ctx, org).result(timeout=10) is False
        assert pool.submit(services.grants.catch_up_behind, ctx).result(timeout=10) == 0
    assert services.grants.sweep_step(ctx, org) is True
    _allocated_once(ctx, org, usage_transactions=3)


def test_the_sweep_reads_while_usage_holds_the_sqlite_writer(engine: Engine) -> None:
    """On SQLite the sweep's read phase does not queue on the single writer's lock: it allocates
    while a usage write is open, and only its short write waits for that write to commit."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    ctx = _ctx(engine, FixedClock(START))
    customer, org = _funded(ctx, "Beside")
    services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id="b0",
                                product="compute", quantity=1)
    read_phase = services.grants._next_allocation
    read_done: list[bool] = []

    def recorded(*args: object, **kwargs: object) -> object:
        result = read_phase(*args, **kwargs)  # type: ignore[arg-type]
        read_done.append(True)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services.grants, "_next_allocation", recorded)
        with ctx.uow() as writer, ThreadPoolExecutor(max_workers=1) as pool:
            writer.wallets.get(org)  # BEGIN IMMEDIATE: the writer lock is held until this block ends
            step = pool.submit(services.grants.sweep_step, ctx, org)
            deadline = time.monotonic() + 5
            while not read_done and time.monotonic() < deadline:
                time.sleep(0.01)
            assert read_done, "the read phase ran while the writer was open"
            time.sleep(0.2)
            assert not step.done(), "the write waits for the open writer"
            writer.commit()
            assert step.result(timeout=10) is True
    assert services.reconcile.reconcile(ctx, organization_id=org).clean


def _allocated_once(ctx: BillingContext, org: uuid.UUID, *, usage_transactions: int) -> None:
    """Every usage transaction of ``org`` allocated exactly once, and the books clean."""
    with ctx.uow() as uow:
        usage = [t.transaction for t in uow.ledger.after(org, 0) if t.transaction.kind == EntryKind.USAGE]
        assert len(usage) == usage_transactions
        for tx in usage:
            assert sum(m.amount_micros for m in movements_of(uow, org, tx.id)) == tx.balance_delta, "once"
    assert services.reconcile.reconcile(ctx, organization_id=org).clean
