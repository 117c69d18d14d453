"""A period close runs concurrently with late usage for the month it closes, and with other closes.

Issue 14, item 5: usage for the last hour of a month arriving while that month closes was marked
invoiced without being counted (the close summed the buckets, then marked every ``hour < end``
bucket, which at READ COMMITTED also caught rows committed in between), and the close and the
usage calls deadlocked on the wallet row (the close locked it last, debits lock it first), failing
both. Item 7: the losing one of two concurrent ``billing close-period`` runs exited 2.

What must hold (ADR 0009): the close takes the organization's wallet lock first, so usage of that
organization waits for it (or it for the usage) and nothing deadlocks; an invoice counts exactly
the buckets marked with it; late usage stays uninvoiced, visibly, and goes on the next invoice;
one invoice per organization and period with gapless numbers however many closes run at once;
every organization reconciles. Each test runs on SQLite and PostgreSQL, every usage call and every
close in its own unit of work, through the public use cases.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, make_url

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import make_engine, sqlalchemy_uow_factory
from adapters.testing.storage import migrated_database
from billing_core.catalog import load_catalog
from billing_core.invoices import Invoice
from billing_core.permissions import Actor, Permission
from billing_core.services import invoicing, organizations, product_subscriptions, reconcile, usage, wallet
from billing_core.services.context import BillingContext
from billing_core.usage import HourlyUsage, UsageEvent

ORGS = 4
USAGE_THREADS = 16
EVENTS_PER_THREAD = 3
ROUNDS = 4
CLOSES = 16
PRODUCTS = ("compute", "storage")
START = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, schema) of a migrated database; schema is empty for SQLite."""
    with migrated_database(request.param, tmp_path, "close") as database:
        yield database


@pytest.fixture
def engine(database: tuple[str, str]) -> Iterator[Engine]:
    url, schema = database
    engine = make_engine(url, schema=schema or None, pool_size=USAGE_THREADS + CLOSES + 2)
    try:
        yield engine
    finally:
        engine.dispose()


@dataclass
class World:
    ctx: BillingContext
    clock: FixedClock
    services: dict[uuid.UUID, Actor] = field(default_factory=dict)
    projects: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    reported: dict[uuid.UUID, list[tuple[datetime, int]]] = field(default_factory=lambda: defaultdict(list))
    """Per organization, (occurred_at, amount) of every event the service accepted."""
    ids: Iterator[int] = field(default_factory=itertools.count)

    def report(self, org_id: uuid.UUID, occurred_at: datetime, quantity: int, product: str = "compute") -> None:
        event_id = f"ev-{next(self.ids)}"
        outcome = usage.report_usage(self.ctx, self.services[org_id], organization_id=org_id, event_id=event_id,
                                     product=product, quantity=quantity, project_id=self.projects[org_id],
                                     occurred_at=occurred_at)
        assert outcome.allowed and not outcome.replayed, outcome
        self.reported[org_id].append((occurred_at, outcome.amount_micros))


def _world(engine: Engine) -> World:
    clock = FixedClock(START)
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=clock, catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    world = World(ctx=ctx, clock=clock)
    for n in range(ORGS):
        org = organizations.create_organization(ctx, name=f"Org {n}", owner_user_id=f"user-{n}",
                                                owner_email=f"owner{n}@example.com")
        owner = organizations.authenticate(ctx, organizations.issue_token(
            ctx, organization_id=org.id, name="owner", user_id=f"user-{n}")[1])
        world.services[org.id] = organizations.authenticate(ctx, organizations.issue_token(
            ctx, organization_id=org.id, name="platform", scopes=frozenset({Permission.USAGE_WRITE}))[1])
        wallet.grant_credits(ctx, organization_id=org.id, amount_micros=50_000_000_000,
                             description="Free Trial Credits", idempotency_key=f"grant-{n}")
        world.projects[org.id] = uuid.uuid4()
        for product in PRODUCTS:
            product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product=product,
                                                    project_id=world.projects[org.id])
    return world


def _together(jobs: Sequence[Callable[[], object]]) -> list[object]:
    """Run the jobs in threads released at once by a barrier; each one's result or exception."""
    results: list[object] = [RuntimeError("did not run")] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = jobs[index]()
        except BaseException as exc:  # every failure is asserted on by the caller
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _month(index: int) -> tuple[str, datetime, datetime]:
    start = datetime(START.year + index // 12, index % 12 + 1, 1, tzinfo=UTC)
    period = f"{start.year:04d}-{start.month:02d}"
    return (period, *invoicing.parse_period(period))


def _buckets(world: World, org_id: uuid.UUID) -> list[HourlyUsage]:
    with world.ctx.uow() as uow:
        return uow.usage.buckets(org_id, EPOCH, FAR_FUTURE)


def _invoice(world: World, org_id: uuid.UUID, period_start: datetime) -> Invoice | None:
    with world.ctx.uow() as uow:
        return uow.invoices.for_period(org_id, period_start)


def _assert_invoice_is_its_buckets(invoice: Invoice, buckets: list[HourlyUsage]) -> None:
    """The invoice counts exactly the buckets marked with it: in total and per line."""
    mine = [b for b in buckets if b.invoice_id == invoice.id]
    assert sum(b.amount_micros for b in mine) == invoice.usage_micros, (invoice.number, mine)
    lines: dict[tuple[uuid.UUID, uuid.UUID | None], list[int]] = defaultdict(lambda: [0, 0])
    for bucket in mine:
        lines[(bucket.product_id, bucket.project_id)][0] += bucket.quantity
        lines[(bucket.product_id, bucket.project_id)][1] += bucket.amount_micros
    assert {(i.product_id, i.project_id): [i.quantity, i.amount_micros] for i in invoice.items} == dict(lines)


def _late_usage(world: World, n: int, last_hour: datetime) -> None:
    """Thread ``n``'s usage for the closing month's last hour, sent while the month closes."""
    orgs = list(world.services)
    for i in range(EVENTS_PER_THREAD):
        world.report(orgs[n % ORGS], last_hour + timedelta(seconds=n * 10 + i), 1 + n % 3)


def _assert_reconciles(world: World) -> None:
    for org_id in world.services:
        report = reconcile.reconcile(world.ctx, organization_id=org_id)
        assert report.clean, report


def test_close_against_late_usage_invoices_exactly_what_it_marks(engine: Engine) -> None:
    world = _world(engine)
    orgs = list(world.services)
    leftover: dict[uuid.UUID, int] = dict.fromkeys(orgs, 0)
    for round_no in range(ROUNDS):
        period, start, end = _month(round_no)
        last_hour = end - timedelta(minutes=30)
        # Usage during the month, including its last hour: the bucket the late usage races into.
        for org_id in orgs:
            world.clock.set(start + timedelta(days=3))
            world.report(org_id, start + timedelta(days=3), 5, "storage")
            world.clock.set(last_hour)
            world.report(org_id, last_hour, 7)
        world.clock.set(end + timedelta(minutes=10))

        results = _together([functools.partial(invoicing.close_period, world.ctx, period=period),
                             *(functools.partial(_late_usage, world, n, last_hour) for n in range(USAGE_THREADS))])
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], failures  # no deadlock, no 409 for usage, no failed close
        report = results[0]
        assert isinstance(report, invoicing.CloseReport)
        assert report.invoices_created == ORGS and report.failed == [], report

        for org_id in orgs:
            buckets = _buckets(world, org_id)
            invoice = _invoice(world, org_id, start)
            assert invoice is not None
            _assert_invoice_is_its_buckets(invoice, buckets)
            # Everything reported for the month or before is on an invoice or still uninvoiced,
            # and whatever was left over from the month before is on this invoice.
            before_end = sum(amount for at, amount in world.reported[org_id] if at < end)
            invoiced = sum(b.amount_micros for b in buckets if b.invoice_id is not None)
            open_before_end = [b for b in buckets if b.invoice_id is None and b.hour < end]
            assert invoiced + sum(b.amount_micros for b in open_before_end) == before_end
            assert all(b.hour >= start for b in open_before_end), "usage left over from an earlier month"
            assert invoice.includes_earlier_usage == (leftover[org_id] > 0)
            leftover[org_id] = sum(b.amount_micros for b in open_before_end)
            # Late usage never changed an invoiced bucket: it is a separate, open bucket beside it.
            for bucket in open_before_end:
                assert bucket.hour == end - timedelta(hours=1)
        _assert_reconciles(world)

    # The next close invoices the last month's late usage.
    period, start, end = _month(ROUNDS)
    world.clock.set(end + timedelta(hours=1))
    final = invoicing.close_period(world.ctx, period=period)
    assert final.failed == []
    for org_id in orgs:
        invoice = _invoice(world, org_id, start)
        if leftover[org_id]:
            assert invoice is not None and invoice.includes_earlier_usage
            assert invoice.usage_micros == leftover[org_id]
            _assert_invoice_is_its_buckets(invoice, _buckets(world, org_id))
        else:
            assert invoice is None
        assert [b for b in _buckets(world, org_id) if b.invoice_id is None] == []
    _assert_reconciles(world)


def _seed_month(world: World) -> tuple[str, datetime]:
    period, start, end = _month(1)
    for n, org_id in enumerate(world.services):
        world.clock.set(start + timedelta(days=n, hours=6))
        world.report(org_id, start + timedelta(days=n), 10 + n)
        world.report(org_id, start + timedelta(days=n, hours=5), 3, "storage")
    world.clock.set(end + timedelta(days=1))
    return period, start


def _assert_one_invoice_each_gapless(world: World, period_start: datetime) -> None:
    numbers = []
    for org_id in world.services:
        with world.ctx.uow() as uow:
            invoices = uow.invoices.list(org_id, limit=200).items
            close_entries = [tx for tx in uow.ledger.list(org_id, limit=200).items
                             if tx.idempotency_key.startswith("invoice-close:")]
        assert [i.period_start for i in invoices] == [period_start]
        assert len(close_entries) == 1
        numbers.append(invoices[0].number)
        _assert_invoice_is_its_buckets(invoices[0], _buckets(world, org_id))
    prefix = world.ctx.policy.invoice_number_prefix
    assert sorted(n or "" for n in numbers) == [f"{prefix}{k:06d}" for k in range(1, ORGS + 1)]


def test_concurrent_closes_make_one_invoice_per_organization(engine: Engine) -> None:
    world = _world(engine)
    period, start = _seed_month(world)

    results = _together([lambda: invoicing.close_period(world.ctx, period=period) for _ in range(CLOSES)])

    reports = [r for r in results if isinstance(r, invoicing.CloseReport)]
    assert len(reports) == CLOSES, [r for r in results if isinstance(r, BaseException)]
    assert sum(r.invoices_created for r in reports) == ORGS
    for report in reports:
        assert report.failed == [], report
        # Every run accounts for every organization: created by it or already closed by another.
        assert report.invoices_created + report.already_closed == ORGS, report
    _assert_one_invoice_each_gapless(world, start)
    _assert_reconciles(world)


def test_a_failing_organization_does_not_stop_the_close(engine: Engine, database: tuple[str, str],
                                                         tmp_path: Path) -> None:
    world = _world(engine)
    period, start = _seed_month(world)
    broken = sorted(world.services, key=str)[1]
    gone = uuid.uuid4()  # a product since removed from the catalog: its line cannot be priced
    with world.ctx.uow() as uow:
        uow.usage.record(UsageEvent(event_id="retired", organization_id=broken, project_id=None, product_id=gone,
                                    quantity=1, occurred_at=start + timedelta(days=2), amount_micros=10,
                                    unit_price_micros=10))
        uow.commit()
    env: dict[str, Any] = {**os.environ, "BILLING_DATABASE_URL": _cli_database_url(*database),
                           "BILLING_STORAGE": "sqlalchemy", "BILLING_DATA_DIR": str(tmp_path / "var")}

    cli = subprocess.run([sys.executable, "-c", "from entrypoints.cli.main import app; app()", "close-period",
                          "--period", period], env=env, capture_output=True, text=True, timeout=120, check=False)

    assert cli.returncode == 1, (cli.stdout, cli.stderr)
    assert f"{ORGS - 1} invoice(s) created" in cli.stdout
    assert f"FAILED {broken}: [not_found]" in cli.stderr
    for org_id in world.services:
        invoice = _invoice(world, org_id, start)
        assert (invoice is None) == (org_id == broken)
    # Nothing of the failed close was kept: its buckets are still open for a re-run.
    assert all(b.invoice_id is None for b in _buckets(world, broken))
    again = invoicing.close_period(world.ctx, period=period)
    assert again.already_closed == ORGS - 1 and again.invoices_created == 0
    assert [(f.organization_id, f.code) for f in again.failed] == [(broken, "not_found")]


def _cli_database_url(url: str, schema: str) -> str:
    if not schema:
        return url
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def test_losing_cli_close_reports_already_closed_and_exits_0(engine: Engine, database: tuple[str, str],
                                                              tmp_path: Path) -> None:
    world = _world(engine)
    period, start = _seed_month(world)
    env: dict[str, Any] = {**os.environ, "BILLING_DATABASE_URL": _cli_database_url(*database),
                           "BILLING_STORAGE": "sqlalchemy", "BILLING_DATA_DIR": str(tmp_path / "var")}
    command = [sys.executable, "-c", "from entrypoints.cli.main import app; app()", "close-period",
               "--period", period]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    results = _together([run, run])

    created = 0
    for result in results:
        assert isinstance(result, subprocess.CompletedProcess), result
        assert result.returncode == 0, (result.stdout, result.stderr)
        found = re.search(r"(\d+) invoice\(s\) created, (\d+) already closed", result.stdout)
        assert found is not None, result.stdout
        created += int(found[1])
        assert int(found[1]) + int(found[2]) == ORGS, result.stdout
    assert created == ORGS
    _assert_one_invoice_each_gapless(world, start)
    _assert_reconciles(world)
