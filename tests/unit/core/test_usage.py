"""Usage event validation and pricing, hourly truncation and usage reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing_core.catalog import Catalog, Product
from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS
from billing_core.usage import MAX_QUANTITY, HourlyUsage, price_event, report, truncate_to_hour

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
ORG = uuid.uuid4()


def price(product: Product, *, event_id: str = "evt_1", quantity: int = 3,
          occurred_at: datetime = NOW - timedelta(minutes=1)) -> int:
    return price_event(event_id=event_id, organization_id=ORG, project_id=None, product=product,
                       quantity=quantity, occurred_at=occurred_at, now=NOW).amount_micros


def test_price_event_prices_at_unit_price(catalog: Catalog) -> None:
    compute = catalog.product_by_code("compute")
    project = uuid.uuid4()
    event = price_event(event_id="run-42:a.b_c", organization_id=ORG, project_id=project, product=compute,
                        quantity=3, occurred_at=NOW, now=NOW)
    assert event.amount_micros == 120_000
    assert event.unit_price_micros == 40_000
    assert (event.product_id, event.project_id, event.organization_id) == (compute.id, project, ORG)


@pytest.mark.parametrize("event_id", ["a", "x" * 128, "A-Z_0.9:z"])
def test_event_id_accepted(catalog: Catalog, event_id: str) -> None:
    assert price(catalog.product_by_code("storage"), event_id=event_id) == 450


@pytest.mark.parametrize("event_id", ["", "x" * 129, "has space", "slash/", "ünï", "semi;colon", "evt\n", "\nevt"])
def test_event_id_rejected(catalog: Catalog, event_id: str) -> None:
    with pytest.raises(InvalidInput) as info:
        price(catalog.product_by_code("storage"), event_id=event_id)
    assert info.value.field == "event_id"
    assert info.value.code == "invalid_event_id"


def test_quantity_bounds(catalog: Catalog) -> None:
    storage = catalog.product_by_code("storage")
    assert price(storage, quantity=1) == 150
    assert price(storage, quantity=MAX_QUANTITY) == MAX_QUANTITY * 150
    for bad in (0, -1, MAX_QUANTITY + 1):
        with pytest.raises(InvalidInput) as info:
            price(storage, quantity=bad)
        assert info.value.code == "invalid_quantity"
        assert info.value.field == "quantity"
    with pytest.raises(InvalidInput):
        price(storage, quantity=1.0)  # type: ignore[arg-type]


def test_quantity_priced_beyond_max_micros(catalog: Catalog) -> None:
    compute = catalog.product_by_code("compute")
    with pytest.raises(InvalidInput) as info:
        price(compute, quantity=MAX_MICROS // compute.unit_price_micros + 1)
    assert info.value.code == "amount_out_of_range"


@pytest.mark.parametrize("occurred_at", [
    datetime(2026, 3, 14, 9, 0),  # naive
    datetime(2026, 3, 14, 11, 0, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 3, 14, 4, 0, tzinfo=timezone(timedelta(hours=-5))),
])
def test_occurred_at_must_be_utc(catalog: Catalog, occurred_at: datetime) -> None:
    with pytest.raises(InvalidInput) as info:
        price(catalog.product_by_code("compute"), occurred_at=occurred_at)
    assert info.value.field == "occurred_at"
    assert info.value.code == "invalid_datetime"


def test_future_beyond_skew_refused(catalog: Catalog) -> None:
    compute = catalog.product_by_code("compute")
    assert price(compute, occurred_at=NOW + timedelta(minutes=5)) == 120_000
    with pytest.raises(InvalidInput) as info:
        price(compute, occurred_at=NOW + timedelta(minutes=5, microseconds=1))
    assert info.value.code == "invalid_datetime"
    assert "future" in info.value.message
    # Late events are fine.
    assert price(compute, occurred_at=NOW - timedelta(days=40)) == 120_000


def test_truncate_to_hour() -> None:
    assert truncate_to_hour(datetime(2026, 3, 14, 9, 59, 59, 999_999, tzinfo=UTC)) == datetime(2026, 3, 14, 9,
                                                                                               tzinfo=UTC)
    exact = datetime(2026, 3, 14, 10, tzinfo=UTC)
    assert truncate_to_hour(exact) == exact


def test_report_sorts_lines_and_totals() -> None:
    product = uuid.UUID(int=7)
    h9, h10 = datetime(2026, 3, 14, 9, tzinfo=UTC), datetime(2026, 3, 14, 10, tzinfo=UTC)
    buckets = [
        HourlyUsage(organization_id=ORG, project_id=None, product_id=product, hour=h10, quantity=2,
                    amount_micros=300),
        HourlyUsage(organization_id=ORG, project_id=uuid.UUID(int=1), product_id=product, hour=h9, quantity=1,
                    amount_micros=150),
        HourlyUsage(organization_id=ORG, project_id=None, product_id=product, hour=h9, quantity=5,
                    amount_micros=750),
    ]
    result = report(ORG, h9, h10 + timedelta(hours=1), buckets)
    assert result.total_micros == 1_200
    assert [(line.hour, line.amount_micros) for line in result.lines] == [(h9, 150), (h9, 750), (h10, 300)]
    assert report(ORG, h9, h10, []).total_micros == 0
