"""A usage batch decides every event's product subscription at the event's own ``occurred_at``, as
``report_usage`` decides one event: an event from before a subscription started, after it ended, or
in a project it does not cover is refused (naming it, nothing written) even when another event of
the same product in the batch is covered. Until 2026-12 the batch asked once per project and product
and let the first event's answer stand for the others, so a batch (and the single-event route's
group commit, which reports through it) could charge usage that no subscription covered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters.fakes import FixedClock
from billing_core import services
from billing_core.errors import ProductNotSubscribed
from billing_core.services.context import BillingContext
from billing_core.services.usage import UsageEventInput
from tests.e2e.conftest import START
from tests.support.customers import Customer, sign_up
from tests.support.storages import STORAGES, billing_context

DOLLAR = 1_000_000
PROJECT = uuid.UUID("0c000000-0000-4000-8000-00000000000c")
OTHER_PROJECT = uuid.UUID("0d000000-0000-4000-8000-00000000000d")


@pytest.fixture(params=STORAGES)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BillingContext]:
    yield from billing_context(request.param, tmp_path, FixedClock(START))


@pytest.fixture
def customer(ctx: BillingContext) -> Customer:
    """Subscribed to compute for the organization from two hours before START until half an hour
    before it, and to storage for PROJECT only, from two hours before START on."""
    customer = sign_up(ctx, name="Windows", owner="ada", owner_email="ada@windows.test", products=())
    org = customer.organization_id
    compute = services.product_subscriptions.subscribe_product(
        ctx, customer.owner, organization_id=org, product="compute", project_id=None,
        start_date=START - timedelta(hours=2), end_date=START - timedelta(minutes=30))
    assert compute.end_date is not None
    services.product_subscriptions.subscribe_product(ctx, customer.owner, organization_id=org, product="storage",
                                                     project_id=PROJECT, start_date=START - timedelta(hours=2))
    services.wallet.grant_credits(ctx, organization_id=org, amount_micros=10 * DOLLAR, description="grant",
                                  idempotency_key="grant")
    return customer


def _state(ctx: BillingContext, org: uuid.UUID) -> tuple[int, int, int]:
    """(balance, ledger transactions, bucket quantity)."""
    with ctx.uow() as uow:
        return uow.wallets.get(org).balance_micros, len(uow.ledger.list(org, limit=1000).items), sum(
            b.quantity for b in uow.usage.buckets(org, START - timedelta(days=1), START + timedelta(days=1)))


def _event(event_id: str, at: datetime, product: str = "compute", project_id: uuid.UUID | None = None
           ) -> UsageEventInput:
    return UsageEventInput(event_id=event_id, product=product, quantity=1, occurred_at=at, project_id=project_id)


@pytest.mark.parametrize(("second", "why"), [
    (_event("before-start", START - timedelta(hours=3)), "before the subscription started"),
    (_event("after-end", START - timedelta(minutes=10)), "after it ended"),
    (_event("at-end", START - timedelta(minutes=30)), "at its end (exclusive)"),
    (_event("other-project", START - timedelta(hours=1), "storage", OTHER_PROJECT), "in a project it does not cover"),
])
def test_an_uncovered_event_is_refused_beside_a_covered_one_of_its_product(
        ctx: BillingContext, customer: Customer, second: UsageEventInput, why: str) -> None:
    org = customer.organization_id
    # A covered event of the same product (for the project case: in the project its subscription covers).
    first = _event("covered", START - timedelta(hours=1), str(second.product),
                   None if second.project_id is None else PROJECT)
    before = _state(ctx, org)
    with pytest.raises(ProductNotSubscribed) as refused:
        services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[first, second])
    assert refused.value.field == "events[1].product", why
    assert _state(ctx, org) == before, "nothing written"
    with pytest.raises(ProductNotSubscribed):  # as the event alone is refused
        services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id=second.event_id,
                                    product=second.product, quantity=1, occurred_at=second.occurred_at,
                                    project_id=second.project_id)


def test_covered_events_at_their_own_times_all_pass(ctx: BillingContext, customer: Customer) -> None:
    org = customer.organization_id
    outcomes = services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
        _event("a", START - timedelta(hours=1)),
        _event("start", START - timedelta(hours=2)),  # the start is inclusive
        _event("s", START - timedelta(minutes=1), "storage", PROJECT),
        _event("last", START - timedelta(minutes=30, microseconds=1))])
    assert [(o.allowed, o.replayed) for o in outcomes] == [(True, False)] * 4
    assert _state(ctx, org)[2] == 4


def test_an_event_stored_while_covered_replays_after_its_subscription_ended_earlier(
        ctx: BillingContext, customer: Customer) -> None:
    """A retry of an event stored while a subscription covered it answers as the first call did,
    even when the subscription was ended before the event's time since: the first call decides."""
    org = customer.organization_id
    services.usage.report_usage(ctx, customer.platform, organization_id=org, event_id="kept", product="compute",
                                quantity=1, occurred_at=START - timedelta(hours=1))
    with ctx.uow() as uow:
        compute = next(s for s in uow.product_subscriptions.list(org).items if s.project_id is None)
    services.product_subscriptions.end_product_subscription(
        ctx, customer.owner, organization_id=org, subscription_id=compute.id,
        end_date=START - timedelta(minutes=90))
    before = _state(ctx, org)
    outcomes = services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
        _event("kept", START - timedelta(hours=1)), _event("new", START - timedelta(minutes=100))])
    assert [(o.allowed, o.replayed) for o in outcomes] == [(True, True), (True, False)]
    assert _state(ctx, org)[1:] == (before[1] + 1, before[2] + 1)
    with pytest.raises(ProductNotSubscribed) as refused:
        services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
            _event("kept", START - timedelta(hours=1)), _event("late", START - timedelta(minutes=80))])
    assert refused.value.field == "events[1].product"
