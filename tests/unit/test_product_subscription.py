"""Product subscriptions: a metered product linked to a project or the whole organization, active
from start_date (inclusive) to end_date (exclusive)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from billing_core.errors import InvalidInput
from billing_core.product_subscription import ProductSubscription, new_product_subscription
from tests.unit.domain_builders import NOW, ORG

PRODUCT = uuid.UUID("0f000000-0000-4000-8000-00000000000f")
PROJECT = uuid.UUID("0f000000-0000-4000-8000-0000000000aa")


def linked(project_id: uuid.UUID | None = PROJECT, end: datetime | None = None) -> ProductSubscription:
    return new_product_subscription(organization_id=ORG, project_id=project_id, product_id=PRODUCT, start_date=NOW,
                                    end_date=end)


def test_active_from_start_inclusive_to_end_exclusive() -> None:
    sub = linked(end=NOW + timedelta(days=1))
    assert not sub.active_at(NOW - timedelta(microseconds=1))
    assert sub.active_at(NOW)
    assert sub.active_at(NOW + timedelta(days=1) - timedelta(microseconds=1))
    assert not sub.active_at(NOW + timedelta(days=1))
    assert linked().active_at(NOW + timedelta(days=3650))  # no end: active for good


def test_an_organization_subscription_covers_every_project() -> None:
    assert linked(project_id=None).covers(PROJECT)
    assert linked(project_id=None).covers(None)
    assert linked().covers(PROJECT)
    assert not linked().covers(uuid.uuid4())
    assert not linked().covers(None)


def test_end_keeps_the_earliest_end() -> None:
    sub = linked()
    sub.end(NOW + timedelta(days=5))
    assert sub.end_date == NOW + timedelta(days=5)
    sub.end(NOW + timedelta(days=9))  # ending later changes nothing
    assert sub.end_date == NOW + timedelta(days=5)
    sub.end(NOW + timedelta(days=2))
    assert sub.end_date == NOW + timedelta(days=2)
    sub.end(NOW)  # ending at the start is allowed: it was never active
    assert not sub.active_at(NOW)


def test_end_before_start_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        linked().end(NOW - timedelta(seconds=1))
    assert info.value.field == "end_date"


def test_new_subscription_checks_its_dates() -> None:
    sub = linked(end=NOW + timedelta(hours=1))
    assert (sub.organization_id, sub.project_id, sub.product_id, sub.start_date) == (ORG, PROJECT, PRODUCT, NOW)
    for end in (NOW, NOW - timedelta(days=1)):
        with pytest.raises(InvalidInput) as info:
            linked(end=end)
        assert info.value.field == "end_date"


@pytest.mark.parametrize(("start", "end", "field"), [
    (datetime(2026, 3, 14), None, "start_date"),  # naive
    (NOW, datetime(2026, 4, 1), "end_date"),
])
def test_dates_must_carry_an_offset(start: datetime, end: datetime | None, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        new_product_subscription(organization_id=ORG, project_id=None, product_id=PRODUCT, start_date=start,
                                 end_date=end)
    assert (info.value.field, info.value.code) == (field, "invalid_datetime")
    with pytest.raises(InvalidInput):
        linked().end(datetime(2026, 4, 1))


def test_any_offset_is_accepted_and_compared_as_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    sub = new_product_subscription(organization_id=ORG, project_id=None, product_id=PRODUCT,
                                   start_date=datetime(2026, 3, 14, 11, 30, tzinfo=plus_two))  # == NOW
    assert sub.active_at(NOW)
    assert not sub.active_at(NOW - timedelta(seconds=1))
