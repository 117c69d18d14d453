"""A period close SIGKILLed in the middle and then re-run is exact.

~30 organizations get usage in February through the public use cases (credits granted, products
subscribed, usage reported with a service token). A child process then closes the period on the
same database and is killed:

* ``pause``: the child stops inside the unit of work of its STOP_AT-th invoice, after every write of
  that close and just before its commit, and is killed there;
* ``random``: the child is killed a short random time after a random number of progress lines.

The close is then re-run to completion in this process, and the database must hold exactly one
invoice per organization with usage, legal numbers 1..N without gaps or duplicates, one
``invoice-close:`` ledger entry per invoice, one LEGAL_INVOICE outbox message per invoice, and every
organization must reconcile. A second full re-run creates nothing.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine, func, select, table, text

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import make_engine, sqlalchemy_uow_factory
from adapters.sqlalchemy.uow import SqlAlchemyUnitOfWork
from adapters.testing.storage import migrated_database
from billing_core.catalog import load_catalog
from billing_core.permissions import Permission
from billing_core.services import invoicing, organizations, product_subscriptions, reconcile, usage, wallet
from billing_core.services.context import BillingContext
from tests.support.processes import worker

SEEDED_AT = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
CLOSE_AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
PERIOD = "2026-02"
ORGANIZATIONS = 30
WITHOUT_USAGE = 3  # of which these report nothing
STOP_AT = 7  # the deterministic kill happens inside this invoice's unit of work
PRODUCTS = ("compute", "storage", "inference")


def _context(engine: Engine, now: datetime, uow: Callable[[], SqlAlchemyUnitOfWork] | None = None) -> BillingContext:
    return BillingContext(uow=uow or sqlalchemy_uow_factory(engine), clock=FixedClock(now), catalog=load_catalog(),
                          payments=InMemoryPaymentProvider())


# --------------------------------------------------------------------------- the worker process


def worker_main(url: str, schema: str, mode: str) -> None:
    """Close PERIOD, printing ``closed <done> <total>`` after each organization; in ``pause`` mode
    print ``paused <n>`` and wait just before committing the STOP_AT-th invoice."""
    engine = make_engine(url, schema=schema or None)
    commits = 0

    class PausingUnitOfWork(SqlAlchemyUnitOfWork):
        def commit(self) -> None:
            nonlocal commits
            commits += 1
            if mode == "pause" and commits == STOP_AT:
                print(f"paused {commits}", flush=True)
                time.sleep(120)
            super().commit()

    ctx = _context(engine, CLOSE_AT, lambda: PausingUnitOfWork(engine))
    invoicing.close_period(ctx, period=PERIOD,
                           progress=lambda done, total: print(f"closed {done} {total}", flush=True))
    print("finished 0", flush=True)
    time.sleep(120)  # wait to be killed: the test expects a SIGKILL either way


# --------------------------------------------------------------------------- fixtures and seeding


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, schema) of a migrated database; schema is empty for SQLite."""
    with migrated_database(request.param, tmp_path, "close") as database:
        yield database


def _seed(ctx: BillingContext, rng: random.Random) -> dict[uuid.UUID, int]:
    """Organizations with February usage; returns the usage micro-dollars of each (0: none)."""
    spent: dict[uuid.UUID, int] = {}
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    for n in range(ORGANIZATIONS):
        clock.set(SEEDED_AT)
        org = organizations.create_organization(ctx, name=f"Org {n}", owner_user_id=f"user-{n}",
                                                owner_email=f"owner{n}@example.com")
        owner = organizations.authenticate(ctx, organizations.issue_token(
            ctx, organization_id=org.id, name="owner", user_id=f"user-{n}")[1])
        service = organizations.authenticate(ctx, organizations.issue_token(
            ctx, organization_id=org.id, name="platform", scopes=frozenset({Permission.USAGE_WRITE}))[1])
        # Some organizations get little credit, so part of their invoice is owed, some get plenty.
        credit = rng.choice([1_000_000, 5_000_000, 200_000_000])
        wallet.grant_credits(ctx, organization_id=org.id, amount_micros=credit, description="Free Trial Credits",
                             idempotency_key=f"seed-grant-{n}")
        project = uuid.uuid4()
        for product in PRODUCTS:
            product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product=product,
                                                    project_id=project)
        total = 0
        if n >= WITHOUT_USAGE:
            for i in range(rng.randint(3, 8)):
                at = SEEDED_AT + timedelta(days=rng.randint(0, 27), hours=rng.randint(0, 23),
                                           minutes=rng.randint(0, 59))
                clock.set(at)
                outcome = usage.report_usage(ctx, service, organization_id=org.id, event_id=f"ev-{n}-{i}",
                                             product=rng.choice(PRODUCTS), quantity=rng.randint(1, 20),
                                             project_id=project, occurred_at=at)
                if outcome.allowed:
                    total += outcome.amount_micros
            assert total > 0
        spent[org.id] = total
    clock.set(CLOSE_AT)
    return spent


def _run_and_kill(url: str, schema: str, mode: str, rng: random.Random) -> tuple[int, int | None]:
    """Start the closing child and SIGKILL it; (organizations it reported closed, invoice it paused in)."""
    kill_after = rng.randint(2, ORGANIZATIONS - WITHOUT_USAGE - 5)
    closed, paused_in = 0, None
    with worker(worker_main, url, schema, mode) as child:
        for line in child.lines(within=45):
            event, number, *_ = line.split()
            if event == "closed":
                closed = int(number)
            elif event == "paused":
                paused_in = int(number)
                break
            elif event == "finished":
                break
            if mode == "random" and closed >= kill_after:
                time.sleep(rng.uniform(0, 0.005))
                break
        child.kill()
    return closed, paused_in


# --------------------------------------------------------------------------- the test


class _State(msgspec.Struct, frozen=True):
    invoices: list[tuple[uuid.UUID, uuid.UUID, str, int]]  # (invoice id, organization, number, usage micros)
    close_entries: list[tuple[uuid.UUID, str, str | None]]  # (organization, idempotency key, reference)
    legal_messages: list[tuple[uuid.UUID, str, str]]  # (organization, dedupe key, payload)
    counts: dict[str, int]


def _state(engine: Engine) -> _State:
    with engine.connect() as connection:
        invoices = [(row[0], row[1], row[2], row[3]) for row in connection.execute(text(
            "SELECT id, organization_id, number, usage_micros FROM invoices ORDER BY number"))]
        close_entries = [(row[0], row[1], row[2]) for row in connection.execute(text(
            "SELECT organization_id, idempotency_key, reference FROM ledger_transactions "
            "WHERE idempotency_key LIKE 'invoice-close:%'"))]
        legal = [(row[0], row[1], row[2]) for row in connection.execute(text(
            "SELECT organization_id, dedupe_key, payload FROM outbox_messages WHERE topic = 'legal_invoice'"))]
        counts = {name: int(connection.execute(select(func.count()).select_from(table(name))).scalar_one())
                  for name in ("invoices", "ledger_transactions", "ledger_postings", "outbox_messages",
                                "usage_buckets")}
        counts["open_buckets"] = int(connection.execute(text(
            "SELECT count(*) FROM usage_buckets WHERE invoice_id IS NULL")).scalar_one())
        counts["last_number"] = int(connection.execute(text(
            "SELECT coalesce(max(last_number), 0) FROM invoice_counters")).scalar_one())
    return _State(invoices=invoices, close_entries=close_entries, legal_messages=legal, counts=counts)


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@pytest.mark.parametrize("mode", ["pause", "random"])
def test_a_killed_period_close_rerun_is_exact(database: tuple[str, str], mode: str) -> None:
    url, schema = database
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    engine = make_engine(url, schema=schema or None)
    try:
        ctx = _context(engine, SEEDED_AT)
        usage = _seed(ctx, rng)
        with_usage = {org_id for org_id, micros in usage.items() if micros}
        assert len(with_usage) == ORGANIZATIONS - WITHOUT_USAGE

        closed, paused_in = _run_and_kill(url, schema, mode, rng)
        killed = _state(engine)
        print(f"{mode}: killed after {closed} progress lines, {len(killed.invoices)} of {len(with_usage)} "
              f"invoices committed (seed {seed})")
        assert closed <= len(killed.invoices) <= len(with_usage), (seed, closed, len(killed.invoices))
        if mode == "pause":
            assert paused_in == STOP_AT and closed == STOP_AT - 1
            assert len(killed.invoices) == STOP_AT - 1, "the killed close's writes must all be rolled back"
        # What the killed run committed is consistent already: numbers 1..k, one entry and message each.
        assert [number for _id, _org, number, _usage in killed.invoices] == [
            f"INV-{n:06d}" for n in range(1, len(killed.invoices) + 1)]
        assert len(killed.close_entries) == len(killed.legal_messages) == len(killed.invoices)

        report = invoicing.close_period(ctx, period=PERIOD)
        assert report.invoices_created == len(with_usage) - len(killed.invoices)
        # What the killed run closed is reported as already closed.
        assert report.already_closed == len(killed.invoices) and report.failed == []
        assert report.invoices_created + report.already_closed == report.organizations == len(with_usage)
        _check_exact(ctx, engine, usage, with_usage)

        before = _state(engine)
        again = invoicing.close_period(ctx, period=PERIOD)
        assert again.invoices_created == 0 and again.invoice_ids == []
        assert again.already_closed == again.organizations == len(with_usage)
        assert _state(engine) == before
        for org_id in with_usage:  # closing one organization explicitly finds its invoice
            one = invoicing.close_period(ctx, period=PERIOD, organization_id=org_id)
            assert one.invoices_created == 0 and one.already_closed == 1
        assert _state(engine) == before
    finally:
        engine.dispose()


def _check_exact(ctx: BillingContext, engine: Engine, usage: dict[uuid.UUID, int], with_usage: set[uuid.UUID]) -> None:
    state = _state(engine)
    n = len(with_usage)
    # Exactly one invoice per organization with usage, for exactly its usage.
    per_org = Counter(_uuid(org) for _id, org, _number, _usage in state.invoices)
    assert set(per_org) == with_usage and set(per_org.values()) == {1}
    assert {_uuid(org): micros for _id, org, _number, micros in state.invoices} == {
        org_id: usage[org_id] for org_id in with_usage}
    # Legal numbers gapless 1..N, no duplicates, and the counter did not run ahead.
    numbers = [number for _id, _org, number, _usage in state.invoices]
    assert sorted(numbers) == [f"INV-{k:06d}" for k in range(1, n + 1)]
    assert state.counts["last_number"] == n
    invoice_ids = {str(_uuid(invoice_id)) for invoice_id, _org, _number, _usage in state.invoices}
    # One close ledger entry per invoice, referencing it.
    assert len(state.close_entries) == n
    assert {_uuid(org) for org, _key, _ref in state.close_entries} == with_usage
    assert {ref for _org, _key, ref in state.close_entries} == invoice_ids
    assert all(key == f"invoice-close:{_uuid(org)}:{datetime(2026, 2, 1, tzinfo=UTC).isoformat()}"
               for org, key, _ref in state.close_entries)
    # One LEGAL_INVOICE message per invoice, no duplicates.
    assert len(state.legal_messages) == n
    payload_ids = [msgspec.json.decode(payload)["invoice_id"] for _org, _key, payload in state.legal_messages]
    assert sorted(payload_ids) == sorted(invoice_ids)
    assert {key for _org, key, _payload in state.legal_messages} == {f"legal-invoice:{i}" for i in invoice_ids}
    assert state.counts["open_buckets"] == 0
    for org_id in usage:
        result = reconcile.reconcile(ctx, organization_id=org_id)
        assert result.clean, result
        assert result.uninvoiced_usage_micros == 0 and result.ledger_unbilled_micros == 0
