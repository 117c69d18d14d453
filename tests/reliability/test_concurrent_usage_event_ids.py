"""One usage ``event_id`` reported by 16 requests at once, on SQLite and PostgreSQL: the event is debited
exactly once; identical requests all answer the first call's amount and balance, and requests describing
another event (other quantities) are refused with ``event_id_reused``. The ledger, the hourly bucket and
``reconcile`` say the same, on the single and the batch route."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from billing_core import EventIdReused, services
from billing_core.ledger import EntryKind
from billing_core.services.context import BillingContext
from billing_core.services.usage import MAX_BATCH, WRITE_PART, UsageEventInput, UsageOutcome
from tests.e2e.conftest import START
from tests.reliability.money_support import sql_context
from tests.support.customers import Customer, sign_up

THREADS = 16
DOLLAR = 1_000_000


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BillingContext]:
    yield from sql_context(request.param, tmp_path, now=START, pool_size=THREADS + 2)


@pytest.fixture
def customer(ctx: BillingContext) -> Customer:
    customer = sign_up(ctx, name="Race", owner="ada", owner_email="ada@race.test")
    services.wallet.grant_credits(ctx, organization_id=customer.organization_id, amount_micros=100 * DOLLAR,
                                  description="grant", idempotency_key="grant")
    return customer


def _at_once(call: Callable[[int], list[UsageOutcome]]) -> list[list[UsageOutcome] | BaseException]:
    start = threading.Barrier(THREADS)
    results: list[list[UsageOutcome] | BaseException] = [RuntimeError("not run")] * THREADS

    def worker(n: int) -> None:
        start.wait()
        try:
            results[n] = call(n)
        except BaseException as exc:  # every outcome is inspected below
            results[n] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _usage_entries(ctx: BillingContext, org: uuid.UUID) -> list[int]:
    with ctx.uow() as uow:
        return [-tx.balance_delta for tx in uow.ledger.list(org, kinds=frozenset({EntryKind.USAGE}), limit=200).items]


def _bucket_quantity(ctx: BillingContext, org: uuid.UUID) -> int:
    with ctx.uow() as uow:
        return sum(b.quantity for b in uow.usage.buckets(org, START - timedelta(days=1), START + timedelta(days=1)))


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_identical_concurrent_reports_debit_once_and_answer_alike(ctx: BillingContext, customer: Customer,
                                                                  batch: bool) -> None:
    org = customer.organization_id

    def report(_: int) -> list[UsageOutcome]:
        if batch:
            return services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
             UsageEventInput(event_id="evt-race", product="compute", quantity=5)])
        return [services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id="evt-race",
                                            product="compute", quantity=5)]

    results = _at_once(report)
    outcomes = [r[0] for r in results if not isinstance(r, BaseException)]
    assert len(outcomes) == THREADS, [r for r in results if isinstance(r, BaseException)]
    assert sorted(o.replayed for o in outcomes) == [False] + [True] * (THREADS - 1)
    assert {(o.allowed, o.amount_micros, o.balance_micros) for o in outcomes} == {(True, 200_000, 99_800_000)}
    assert _usage_entries(ctx, org) == [200_000]
    assert _bucket_quantity(ctx, org) == 5
    assert services.reconcile.reconcile(ctx, organization_id=org).clean


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_conflicting_concurrent_reports_debit_one_event_and_refuse_the_others(ctx: BillingContext,
                                                                             customer: Customer, batch: bool) -> None:
    org = customer.organization_id

    def report(n: int) -> list[UsageOutcome]:
        if batch:
            return services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
             UsageEventInput(event_id=f"evt-own-{n}", product="compute", quantity=1),
             UsageEventInput(event_id="evt-race", product="compute", quantity=n + 1)])
        return [services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id="evt-race",
                                            product="compute", quantity=n + 1)]

    results = _at_once(report)
    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(r, EventIdReused) for r in refused), refused
    winner = won[0][-1]
    assert not winner.replayed
    quantity = winner.amount_micros // 40_000
    # A refused batch wrote nothing, its own new event included.
    assert sorted(_usage_entries(ctx, org)) == sorted([winner.amount_micros] + ([40_000] if batch else []))
    assert _bucket_quantity(ctx, org) == quantity + (1 if batch else 0)
    assert services.reconcile.reconcile(ctx, organization_id=org).clean


def test_full_batches_at_once_debit_each_event_once_and_never_overdraw(ctx: BillingContext,
                                                                        customer: Customer) -> None:
    """16 batches of 1,000 events at once (each written in parts, ``WRITE_PART``): 600 event ids
    shared by every batch, 400 of each batch's own, more than the credit pays for. Every event is
    debited at most once, each shared one by whichever batch came first and replayed alike by the
    others; the credit runs out inside batches and is never overdrawn; the ledger, the buckets and
    ``reconcile`` agree."""
    org = customer.organization_id
    shared = [f"s-{i}" for i in range(600)]
    assert len(shared) + 400 == MAX_BATCH > WRITE_PART

    def report(n: int) -> list[UsageOutcome]:
        return services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
            UsageEventInput(event_id=event_id, product="compute", quantity=1)
            for event_id in [*shared, *(f"own-{n}-{i}" for i in range(400))]])

    results = _at_once(report)
    batches = [r for r in results if not isinstance(r, BaseException)]
    assert len(batches) == THREADS, [r for r in results if isinstance(r, BaseException)]
    debited = [o for batch in batches for o in batch if o.allowed and not o.replayed]
    assert len({o.event_id for o in debited}) == len(debited), "an event debited twice"
    for event_id in shared:
        answers = [o for batch in batches for o in batch if o.event_id == event_id]
        assert sum(not o.replayed for o in answers) == 1
        assert {(o.allowed, o.amount_micros) for o in answers} == {(True, 40_000)}
    denied = [o for batch in batches for o in batch if not o.allowed]
    assert denied and all(o.reason == "insufficient_credit" for o in denied)
    entries = _usage_entries_all(ctx, org)
    assert len(entries) == len(debited) and set(entries) == {40_000}
    assert _bucket_quantity(ctx, org) == len(debited)
    with ctx.uow() as uow:
        wallet = uow.wallets.get(org)
    limits = wallet.limits
    assert wallet.balance_micros - wallet.held_micros + limits.credit_line_micros \
        >= limits.minimum_production_credit_micros, "overdrawn"
    assert services.reconcile.reconcile(ctx, organization_id=org).clean


def _usage_entries_all(ctx: BillingContext, org: uuid.UUID) -> list[int]:
    found: list[int] = []
    cursor: str | None = None
    with ctx.uow() as uow:
        while True:
            page = uow.ledger.list(org, kinds=frozenset({EntryKind.USAGE}), limit=500, cursor=cursor)
            found += [-tx.balance_delta for tx in page.items]
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor
