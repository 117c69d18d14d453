"""Metered usage: events with a client-supplied unique id, priced and bucketed per hour.

A replayed event id is a no-op. Price is ``quantity * unit_price_micros`` at the rate in force when
the event is recorded; buckets aggregate per (organization, project, product, hour).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import msgspec

from billing_core.catalog import Product
from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS

_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
# Events may arrive late (they go on the next invoice) but not from the future beyond clock skew.
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_QUANTITY = 10**12


class UsageEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    event_id: str
    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    product_id: uuid.UUID
    quantity: int
    occurred_at: datetime
    amount_micros: int
    unit_price_micros: int
    token_id: uuid.UUID | None = None
    """The API token that reported the event (None for the library or a person): whose budget counted it."""


class HourlyUsage(msgspec.Struct, kw_only=True, gc=False):
    """One hourly bucket. ``invoice_id`` is set once a period close has put it on an invoice.

    Untracked by the garbage collector (``gc=False``, as :class:`UsageLine`): the fields are ids,
    times and integers, so no cycle can form, and a month's report allocates thousands of them,
    which would otherwise set off collections that rescan every long-lived object."""

    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    product_id: uuid.UUID
    hour: datetime
    quantity: int
    amount_micros: int
    invoice_id: uuid.UUID | None = None


def truncate_to_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def check_event_id(event_id: object) -> str:
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise InvalidInput("event_id", "event_id must be 1-128 characters of letters, digits, _ . : -",
                           code="invalid_event_id")
    return event_id


def price_event(*, event_id: str, organization_id: uuid.UUID, project_id: uuid.UUID | None,
                product: Product, quantity: int, occurred_at: datetime, now: datetime,
                token_id: uuid.UUID | None = None) -> UsageEvent:
    """Validate and price one usage event at the product's current unit price."""
    check_event_id(event_id)
    if type(quantity) is not int or quantity <= 0 or quantity > MAX_QUANTITY:
        raise InvalidInput("quantity", f"quantity must be an integer from 1 to {MAX_QUANTITY}",
                           code="invalid_quantity")
    if occurred_at.tzinfo is None or occurred_at.utcoffset() != timedelta(0):
        raise InvalidInput("occurred_at", "occurred_at must be a UTC datetime (Z or +00:00)",
                           code="invalid_datetime")
    if occurred_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput("occurred_at", "occurred_at is in the future", code="invalid_datetime")
    amount = quantity * product.unit_price_micros
    if amount > MAX_MICROS:
        raise InvalidInput("quantity", "quantity prices beyond the allowed amount", code="amount_out_of_range")
    return UsageEvent(event_id=event_id, organization_id=organization_id, project_id=project_id,
                      product_id=product.id, quantity=quantity, occurred_at=occurred_at,
                      amount_micros=amount, unit_price_micros=product.unit_price_micros, token_id=token_id)


class UsageLine(msgspec.Struct, frozen=True, gc=False):
    project_id: uuid.UUID | None
    product_id: uuid.UUID
    hour: datetime
    quantity: int
    amount_micros: int


def sort_buckets(buckets: list[HourlyUsage]) -> None:
    """Sort in place in the storage ports' order: hour, then project, product and invoice id as text
    (None as the text "None")."""
    buckets.sort(key=lambda b: (b.hour, text_rank(b.project_id), b.product_id.int, text_rank(b.invoice_id)))


# A UUID's text is fixed-width lowercase hex, so texts order as the 128-bit integers do. The text
# "None" sorts after every id whose text starts with a digit (first hex digit below 10) and before
# every id whose text starts with a letter: on a doubled scale it takes the odd number between them.
_NONE_RANK = (10 << 124) * 2 - 1


def text_rank(value: uuid.UUID | None) -> int:
    """An integer that orders optional ids exactly as ``str(value)`` does, without building the text."""
    return _NONE_RANK if value is None else value.int << 1
