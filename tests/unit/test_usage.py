"""Metered usage: validated and priced events, replays as no-ops, hourly buckets, usage reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fakes import InMemoryStore, InMemoryUnitOfWork
from billing_core.catalog import Catalog, Product
from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS
from billing_core.usage import (
    MAX_CLOCK_SKEW,
    MAX_QUANTITY,
    HourlyUsage,
    UsageEvent,
    UsageLine,
    check_event_id,
    price_event,
    sort_buckets,
    text_rank,
    truncate_to_hour,
)
from billing_core.usage_report import usage_report
from tests.unit.domain_builders import NOW, ORG, OTHER_ORG

PROJECT = uuid.UUID("0c000000-0000-4000-8000-00000000000c")


@pytest.fixture
def compute(catalog: Catalog) -> Product:
    return catalog.product_by_code("compute")


def event(product: Product, *, event_id: str = "evt-1", quantity: int = 10, occurred_at: datetime = NOW,
          project_id: uuid.UUID | None = PROJECT, organization_id: uuid.UUID = ORG) -> UsageEvent:
    return price_event(event_id=event_id, organization_id=organization_id, project_id=project_id, product=product,
                       quantity=quantity, occurred_at=occurred_at, now=NOW)


def test_an_event_is_priced_at_the_rate_in_force(compute: Product) -> None:
    priced = event(compute, quantity=10)
    assert priced.amount_micros == 400_000 == 10 * compute.unit_price_micros
    assert priced.unit_price_micros == 40_000
    assert (priced.event_id, priced.organization_id, priced.project_id, priced.product_id) == (
        "evt-1", ORG, PROJECT, compute.id)
    assert (priced.quantity, priced.occurred_at) == (10, NOW)
    cheaper = Product(id=compute.id, code="compute", name="Compute", unit="vCPU-hour", unit_price_micros=30_000)
    assert event(cheaper, quantity=10).amount_micros == 300_000


@pytest.mark.parametrize("event_id", ["a", "evt_1.2:3-4", "x" * 128, "0123456789ABCDEFabcdef"])
def test_valid_event_ids(event_id: str) -> None:
    assert check_event_id(event_id) == event_id


@pytest.mark.parametrize("event_id", ["", "x" * 129, "evt 1", "evt/1", "évt", "semi;colon", "evt-1\n", "\nevt",
                                      "evt\x00", None, 7])
def test_invalid_event_ids(event_id: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_event_id(event_id)
    assert (info.value.field, info.value.code) == ("event_id", "invalid_event_id")


def test_an_event_with_an_invalid_id_is_not_priced(compute: Product) -> None:
    with pytest.raises(InvalidInput) as info:
        event(compute, event_id="has space")
    assert (info.value.field, info.value.code) == ("event_id", "invalid_event_id")


def test_quantities_from_one_to_the_maximum_are_priced(catalog: Catalog) -> None:
    storage = catalog.product_by_code("storage")
    assert event(storage, quantity=1).amount_micros == 150
    assert event(storage, quantity=MAX_QUANTITY).amount_micros == MAX_QUANTITY * 150


@pytest.mark.parametrize("quantity", [0, -1, MAX_QUANTITY + 1, True, 1.0, "3"])
def test_invalid_quantities(compute: Product, quantity: object) -> None:
    with pytest.raises(InvalidInput) as info:
        event(compute, quantity=quantity)  # type: ignore[arg-type]
    assert (info.value.field, info.value.code) == ("quantity", "invalid_quantity")


def test_a_quantity_that_prices_beyond_the_maximum_is_refused(compute: Product) -> None:
    most = MAX_MICROS // compute.unit_price_micros
    assert event(compute, quantity=most).amount_micros <= MAX_MICROS
    with pytest.raises(InvalidInput) as info:
        event(compute, quantity=most + 1)
    assert (info.value.field, info.value.code) == ("quantity", "amount_out_of_range")


@pytest.mark.parametrize("occurred_at", [
    datetime(2026, 3, 14, 9, 0),  # naive
    datetime(2026, 3, 14, 10, 0, tzinfo=timezone(timedelta(hours=1))),  # the same instant, not UTC
    datetime(2026, 3, 14, 4, 0, tzinfo=timezone(timedelta(hours=-5))),
    NOW + MAX_CLOCK_SKEW + timedelta(microseconds=1),
])
def test_occurred_at_must_be_utc_and_not_in_the_future(compute: Product, occurred_at: datetime) -> None:
    with pytest.raises(InvalidInput) as info:
        event(compute, occurred_at=occurred_at)
    assert (info.value.field, info.value.code) == ("occurred_at", "invalid_datetime")
    if occurred_at.tzinfo is UTC:
        assert "future" in info.value.message


def test_late_events_and_small_clock_skew_are_accepted(compute: Product) -> None:
    assert event(compute, occurred_at=NOW + MAX_CLOCK_SKEW).occurred_at == NOW + timedelta(minutes=5)
    assert event(compute, occurred_at=NOW - timedelta(days=40)).amount_micros == 400_000
    assert event(compute, occurred_at=datetime(2026, 3, 14, 9, 0, tzinfo=timezone(timedelta(0)))).amount_micros


def test_truncate_to_hour() -> None:
    assert truncate_to_hour(datetime(2026, 3, 14, 9, 59, 59, 999999, tzinfo=UTC)) == datetime(2026, 3, 14, 9,
                                                                                                tzinfo=UTC)
    assert truncate_to_hour(datetime(2026, 3, 14, 9, tzinfo=UTC)) == datetime(2026, 3, 14, 9, tzinfo=UTC)


# --------------------------------------------------------------------------- buckets (in-memory storage)


def test_events_aggregate_into_hourly_buckets_per_org_project_product(catalog: Catalog) -> None:
    compute, storage = catalog.product_by_code("compute"), catalog.product_by_code("storage")
    seven, eight = datetime(2026, 3, 14, 7, tzinfo=UTC), datetime(2026, 3, 14, 8, tzinfo=UTC)
    events = [
        event(compute, event_id="a", quantity=1, occurred_at=seven + timedelta(minutes=1)),
        event(compute, event_id="b", quantity=2, occurred_at=seven + timedelta(minutes=59)),
        event(compute, event_id="c", quantity=4, occurred_at=eight),
        event(storage, event_id="d", quantity=100, occurred_at=seven),
        event(compute, event_id="e", quantity=8, occurred_at=seven, project_id=None),
        event(compute, event_id="f", quantity=16, occurred_at=seven, organization_id=OTHER_ORG),
    ]
    with InMemoryUnitOfWork(InMemoryStore()) as uow:
        assert all(uow.usage.record(e) for e in events)
        buckets = uow.usage.buckets(ORG, seven, eight + timedelta(hours=1))
        only_seven = uow.usage.buckets(ORG, seven, eight)
    got = {(b.project_id, b.product_id, b.hour): (b.quantity, b.amount_micros) for b in buckets}
    assert got == {
        (PROJECT, compute.id, seven): (3, 120_000),
        (PROJECT, compute.id, eight): (4, 160_000),
        (PROJECT, storage.id, seven): (100, 15_000),
        (None, compute.id, seven): (8, 320_000),
    }
    assert {b.hour for b in only_seven} == {seven}  # end is exclusive


def test_a_replayed_event_id_is_a_no_op(compute: Product) -> None:
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        assert uow.usage.record(event(compute, event_id="evt-1", quantity=10))
        assert not uow.usage.record(event(compute, event_id="evt-1", quantity=99))
        assert uow.usage.record(event(compute, event_id="evt-1", quantity=5, organization_id=OTHER_ORG))
        stored = uow.usage.get_event(ORG, "evt-1")
        buckets = uow.usage.buckets(ORG, NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert stored is not None and stored.quantity == 10
    assert [(b.quantity, b.amount_micros) for b in buckets] == [(10, 400_000)]


def test_an_invoiced_bucket_never_changes_late_usage_opens_a_new_one(compute: Product) -> None:
    invoice_id = uuid.uuid4()
    hour = truncate_to_hour(NOW)
    with InMemoryUnitOfWork(InMemoryStore()) as uow:
        uow.usage.record(event(compute, event_id="a", quantity=1))
        assert uow.usage.mark_invoiced(ORG, hour + timedelta(hours=1), invoice_id) == 1
        uow.usage.record(event(compute, event_id="late", quantity=2))
        buckets = uow.usage.buckets(ORG, hour, hour + timedelta(hours=1))
        uninvoiced = uow.usage.uninvoiced(ORG, hour + timedelta(hours=1))
    assert sorted((b.quantity, b.invoice_id is None) for b in buckets) == [(1, False), (2, True)]
    assert [(b.quantity, b.invoice_id) for b in uninvoiced] == [(2, None)]


def test_uninvoiced_totals_sum_per_project_and_product(compute: Product) -> None:
    with InMemoryUnitOfWork(InMemoryStore()) as uow:
        for n, hours in enumerate((0, 1, 2, 30)):
            uow.usage.record(event(compute, event_id=f"e{n}", quantity=n + 1,
                                   occurred_at=NOW - timedelta(hours=hours)))
        totals = uow.usage.uninvoiced_totals(ORG, truncate_to_hour(NOW))
        assert uow.usage.organizations_with_uninvoiced(truncate_to_hour(NOW)) == [ORG]
    # The current hour is not before the cut: events 1, 2 and 3 (quantities 2, 3, 4).
    assert [(t.quantity, t.amount_micros, t.hour) for t in totals] == [
        (9, 360_000, truncate_to_hour(NOW - timedelta(hours=30)))]


# --------------------------------------------------------------------------- reports


def test_report_orders_lines_and_totals_them(catalog: Catalog) -> None:
    product_a, product_b = sorted((p.id for p in catalog.products[:2]), key=lambda i: i.int)
    nine, ten = datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC)
    buckets = [
        HourlyUsage(organization_id=ORG, project_id=PROJECT, product_id=product_b, hour=ten, quantity=1,
                    amount_micros=5),
        HourlyUsage(organization_id=ORG, project_id=None, product_id=product_a, hour=nine, quantity=2,
                    amount_micros=7),
        HourlyUsage(organization_id=ORG, project_id=PROJECT, product_id=product_a, hour=ten, quantity=3,
                    amount_micros=11),
        HourlyUsage(organization_id=ORG, project_id=PROJECT, product_id=product_a, hour=nine, quantity=4,
                    amount_micros=13),
    ]
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
    result = usage_report(ORG, start, end, buckets, catalog, "USD")
    assert (result.organization_id, result.start, result.end, result.total_micros) == (ORG, start, end, 36)
    assert result.lines == (  # by hour, then project (a project before none), then product
        UsageLine(PROJECT, product_a, nine, 4, 13),
        UsageLine(None, product_a, nine, 2, 7),
        UsageLine(PROJECT, product_a, ten, 3, 11),
        UsageLine(PROJECT, product_b, ten, 1, 5),
    )
    assert usage_report(ORG, start, end, [], catalog, "USD").total_micros == 0


# Ids whose text starts with "9", "a", "0" and "f", around where the text "None" falls among them.
EDGE_IDS = [uuid.UUID(int=(9 << 124) | ((1 << 124) - 1)), uuid.UUID(int=10 << 124), uuid.UUID(int=0),
            uuid.UUID(int=(1 << 128) - 1)]
optional_ids = st.one_of(st.none(), st.sampled_from(EDGE_IDS), st.uuids())


@given(st.lists(optional_ids, max_size=30))
def test_text_rank_orders_ids_as_their_text_does(ids: list[uuid.UUID | None]) -> None:
    assert sorted(ids, key=text_rank) == sorted(ids, key=str)
    assert [text_rank(a) < text_rank(b) for a, b in pairwise(ids)] == [str(a) < str(b) for a, b in pairwise(ids)]


def test_report_puts_org_level_lines_where_the_text_none_sorts_and_keeps_ties_in_storage_order(
        catalog: Catalog) -> None:
    nine, a_id = EDGE_IDS[0], EDGE_IDS[1]
    product = catalog.products[0].id
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)

    def bucket(project_id: uuid.UUID | None, quantity: int, invoice_id: uuid.UUID | None = None) -> HourlyUsage:
        return HourlyUsage(organization_id=ORG, project_id=project_id, product_id=product, hour=at,
                           quantity=quantity, amount_micros=quantity, invoice_id=invoice_id)

    # the invoiced bucket and the late one for the same hour: equal keys, storage order kept
    buckets = [bucket(a_id, 1), bucket(None, 2, uuid.UUID(int=5)), bucket(None, 3), bucket(nine, 4)]
    lines = usage_report(ORG, at, at + timedelta(hours=1), buckets, catalog, "USD").lines
    assert [line.quantity for line in lines] == [4, 2, 3, 1]
    assert [str(line.project_id) for line in lines] == sorted(str(b.project_id) for b in buckets)


def test_sort_buckets_is_the_text_order_of_hour_project_product_invoice() -> None:
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    ids: list[uuid.UUID | None] = [None, *EDGE_IDS]
    buckets = [HourlyUsage(organization_id=ORG, project_id=project, product_id=product or uuid.UUID(int=3),
                           hour=at + timedelta(hours=hours), quantity=1, amount_micros=1, invoice_id=invoice)
               for hours in (1, 0) for project in ids for product in EDGE_IDS for invoice in ids]
    expected = sorted(buckets, key=lambda b: (b.hour, str(b.project_id), str(b.product_id), str(b.invoice_id)))
    sort_buckets(buckets)
    assert buckets == expected
