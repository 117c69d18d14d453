"""A usage ``event_id`` is the event's idempotency key: a retry of the same event answers what the first
call answered (the stored quantity, price, debit and the balance after it) and changes nothing; the same id
with a different event is a 409 ``event_id_reused`` (as Stripe refuses an idempotency key reused with other
parameters), on the single and the batch route alike, on every storage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.fakes import FixedClock
from billing_core import Conflict, services
from billing_core.services.context import BillingContext
from billing_core.services.usage import UsageEventInput, UsageOutcome
from tests.e2e.conftest import START, Api, World
from tests.support.customers import Customer, sign_up
from tests.support.storages import STORAGES, billing_context

DOLLAR = 1_000_000
PROJECT = uuid.UUID("0c000000-0000-4000-8000-00000000000c")


@pytest.fixture(params=STORAGES)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BillingContext]:
    yield from billing_context(request.param, tmp_path, FixedClock(START))


@pytest.fixture
def customer(ctx: BillingContext) -> Customer:
    customer = sign_up(ctx, name="Replays", owner="ada", owner_email="ada@replays.test")
    services.wallet.grant_credits(ctx, organization_id=customer.organization_id, amount_micros=10 * DOLLAR,
                                  description="grant", idempotency_key="grant")
    return customer


def _state(ctx: BillingContext, org: uuid.UUID) -> tuple[int, int, int]:
    with ctx.uow() as uow:
        wallet = uow.wallets.get(org)
        return wallet.balance_micros, len(uow.ledger.list(org, limit=1000).items), sum(
            b.quantity for b in uow.usage.buckets(org, START - timedelta(days=1), START + timedelta(days=1)))


def _report(ctx: BillingContext, customer: Customer, quantity: int, **more: Any) -> UsageOutcome:
    return services.usage.report_usage(ctx, customer.platform, organization_id=customer.organization_id,
                                       event_id=more.pop("event_id", "evt-1"),
                                       product=more.pop("product", "compute"), quantity=quantity,
                                       project_id=more.pop("project_id", PROJECT), **more)


def test_a_replay_answers_what_the_first_call_answered(ctx: BillingContext, customer: Customer) -> None:
    first = _report(ctx, customer, 10)
    _report(ctx, customer, 5, event_id="evt-2")  # the balance moves on after the first call
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.advance(timedelta(minutes=5))
    before = _state(ctx, customer.organization_id)
    again = _report(ctx, customer, 10)
    assert again.replayed and not first.replayed
    assert (again.amount_micros, again.balance_micros, again.allowed) == (
        first.amount_micros, first.balance_micros, True)
    assert _state(ctx, customer.organization_id) == before


@pytest.mark.parametrize("change", [{"quantity": 11}, {"product": "inference"}, {"project_id": None},
                                    {"occurred_at": START - timedelta(hours=3)}])
def test_the_same_event_id_with_another_event_is_a_conflict(ctx: BillingContext, customer: Customer,
                                                             change: dict[str, Any]) -> None:
    services.product_subscriptions.subscribe_product(ctx, customer.owner, organization_id=customer.organization_id,
                                                     product="inference", project_id=None)
    _report(ctx, customer, 10, occurred_at=START)
    before = _state(ctx, customer.organization_id)
    with pytest.raises(Conflict) as reused:
        _report(ctx, customer, **{"quantity": 10, "occurred_at": START, **change})
    assert (reused.value.code, reused.value.field) == ("event_id_reused", "event_id")
    assert _state(ctx, customer.organization_id) == before
    # Leaving occurred_at out of the retry means "when it happened, as first reported": still a replay.
    assert _report(ctx, customer, 10).replayed


def test_a_batch_replays_as_the_first_calls_answered_and_refuses_a_reused_id(ctx: BillingContext,
                                                                            customer: Customer) -> None:
    org = customer.organization_id
    first = services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
     UsageEventInput(event_id="b-1", product="compute", quantity=3, project_id=PROJECT),
     UsageEventInput(event_id="b-2", product="compute", quantity=4, project_id=PROJECT)])
    single = _report(ctx, customer, 10)
    before = _state(ctx, org)
    with pytest.raises(Conflict) as reused:
        services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
         UsageEventInput(event_id="b-3", product="compute", quantity=1, project_id=PROJECT),
         UsageEventInput(event_id="b-2", product="compute", quantity=40, project_id=PROJECT)])
    assert (reused.value.code, reused.value.field) == ("event_id_reused", "events[1].event_id")
    with pytest.raises(Conflict) as reused_single:
        services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
         UsageEventInput(event_id="evt-1", product="compute", quantity=1, project_id=PROJECT)])
    assert reused_single.value.field == "events[0].event_id"
    assert _state(ctx, org) == before  # nothing of a refused batch is written, b-3 included
    again = services.usage.report_usage_batch(ctx, customer.platform, organization_id=org, events=[
     UsageEventInput(event_id="b-2", product="compute", quantity=4, project_id=PROJECT),
     UsageEventInput(event_id="evt-1", product="compute", quantity=10, project_id=PROJECT)])
    assert [(o.replayed, o.amount_micros, o.balance_micros) for o in again] == [
        (True, first[1].amount_micros, first[1].balance_micros), (True, single.amount_micros, single.balance_micros)]
    assert _state(ctx, org) == before
    assert services.reconcile.reconcile(ctx, organization_id=org).clean


# --------------------------------------------------------------------------- over HTTP


def test_http_replays_are_the_first_answer_and_a_reused_id_is_a_409(api: Api, world: World) -> None:
    url = f"/organizations/{world.org}/usage/events"
    service = world.headers("service")
    event = {"event_id": "evt-http-replay", "product": "compute", "quantity": 2}
    first = api.client.post(url, json=event, headers=service)
    assert first.status_code == 201, first.text
    assert api.client.post(url, json={**event, "event_id": "evt-after"}, headers=service).status_code == 201
    again = api.client.post(url, json=event, headers=service)
    assert again.status_code == 200 and again.json() == {**first.json(), "replayed": True}, again.text
    for reused in (api.client.post(url, json={**event, "quantity": 200}, headers=service),
                   api.client.post(f"{url}/batch", json={"events": [{**event, "event_id": "evt-new"},
                                                                    {**event, "quantity": 200}]}, headers=service)):
        assert reused.status_code == 409, reused.text
        assert reused.headers["content-type"] == "application/problem+json"
        assert reused.json()["code"] == "event_id_reused" and "event_id" in reused.json()["field"]
    batch = api.client.post(f"{url}/batch", json={"events": [event]}, headers=service)
    assert batch.status_code == 200 and batch.json()["results"] == [{**first.json(), "replayed": True}], batch.text
    assert api.client.post(url, json={**event, "event_id": "evt-new"}, headers=service).status_code == 201
