"""Internal usage invoices: items rounded once per line, credit applied before the amount due,
statuses along their table, and which invoices are collectible."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing_core.catalog import Catalog
from billing_core.errors import IllegalTransition
from billing_core.invoices import (
    INVOICE_TRANSITIONS,
    NO_TAX,
    Invoice,
    InvoiceItem,
    InvoiceStatus,
    build_items,
    credit_to_apply,
)
from billing_core.money import Money
from billing_core.tax import TaxLine, TaxTreatment
from billing_core.usage import HourlyUsage
from tests.unit.domain_builders import DOLLAR, NOW, ORG

IS = InvoiceStatus
PROJECT_A = uuid.UUID("0d000000-0000-4000-8000-00000000000a")
PROJECT_B = uuid.UUID("0d000000-0000-4000-8000-00000000000b")
ALLOWED = {(IS.DRAFT, IS.OPEN), (IS.DRAFT, IS.PAID), (IS.DRAFT, IS.VOID), (IS.OPEN, IS.PAID), (IS.OPEN, IS.VOID),
           (IS.OPEN, IS.UNCOLLECTIBLE), (IS.UNCOLLECTIBLE, IS.PAID), (IS.UNCOLLECTIBLE, IS.VOID), (IS.PAID, IS.VOID)}
PAIRS = [(a, b) for a, b in itertools.product(IS, IS) if a != b]


def bucket(product_id: uuid.UUID, project_id: uuid.UUID | None, quantity: int, micros: int,
           hour: int = 0) -> HourlyUsage:
    return HourlyUsage(organization_id=ORG, project_id=project_id, product_id=product_id,
                       hour=datetime(2026, 2, 1, hour, tzinfo=UTC), quantity=quantity, amount_micros=micros)


def invoice(*, subtotal: int = 1000, credit: int = 0, tax: TaxLine = NO_TAX, status: IS = IS.DRAFT) -> Invoice:
    return Invoice(id=uuid.uuid4(), organization_id=ORG, period_start=datetime(2026, 2, 1, tzinfo=UTC),
                   period_end=datetime(2026, 3, 1, tzinfo=UTC), status=status, currency_iso="USD", items=(),
                   usage_micros=subtotal * 10_000, subtotal_cents=subtotal, credit_applied_cents=credit, tax=tax,
                   created_at=NOW)


def test_items_group_by_product_and_project_and_round_once_per_line(catalog: Catalog) -> None:
    compute, storage = catalog.product_by_code("compute"), catalog.product_by_code("storage")
    buckets = [
        # Two half-cent-ish buckets of the same line: 4_999 + 4_999 = 9_998 micros -> 1 cent, not 0 + 0.
        bucket(storage.id, PROJECT_A, 33, 4_999, hour=1),
        bucket(storage.id, PROJECT_A, 33, 4_999, hour=2),
        bucket(compute.id, PROJECT_B, 10, 400_000),
        bucket(compute.id, PROJECT_A, 1, 40_000),
        bucket(compute.id, None, 2, 80_000),
        bucket(compute.id, PROJECT_A, 3, 120_000, hour=5),
    ]
    items = build_items(buckets, catalog, "USD")
    assert [(i.product, i.project_id) for i in items] == sorted(
        [("Compute", PROJECT_A), ("Compute", PROJECT_B), ("Compute", None), ("Storage", PROJECT_A)],
        key=lambda pair: (pair[0], str(pair[1])))
    by_line = {(i.product, i.project_id): i for i in items}
    storage_line = by_line[("Storage", PROJECT_A)]
    assert (storage_line.quantity, storage_line.amount_micros, storage_line.amount) == (66, 9_998, Money(1, "USD"))
    assert (storage_line.unit, storage_line.unit_price_micros) == ("GB-hour", 150)
    compute_a = by_line[("Compute", PROJECT_A)]
    assert (compute_a.quantity, compute_a.amount_micros, compute_a.amount) == (4, 160_000, Money(16, "USD"))
    assert by_line[("Compute", None)].amount == Money(8, "USD")
    assert all(isinstance(i, InvoiceItem) and i.amount.currency_iso == "USD" for i in items)


def test_a_line_rounds_half_a_cent_up(catalog: Catalog) -> None:
    storage = catalog.product_by_code("storage")
    (half,) = build_items([bucket(storage.id, None, 1, 5_000)], catalog, "USD")
    assert half.amount == Money(1, "USD")
    (below,) = build_items([bucket(storage.id, None, 1, 4_999)], catalog, "USD")
    assert below.amount == Money(0, "USD")


def test_items_keep_the_invoice_currency(catalog: Catalog) -> None:
    compute = catalog.product_by_code("compute")
    (item,) = build_items([bucket(compute.id, None, 1, 40_000)], catalog, "EUR")
    assert item.amount == Money(4, "EUR")
    assert build_items([], catalog, "USD") == ()


@pytest.mark.parametrize(("subtotal", "wallet", "applied"), [
    (2000, 12_345_678, 1234),  # whole cents of credit only
    (2000, 100 * DOLLAR, 2000),  # never more than the subtotal
    (2000, 20 * DOLLAR, 2000),  # exactly the subtotal
    (2000, 0, 0),
    (2000, -5 * DOLLAR, 0),  # a negative wallet pays nothing
    (0, 100 * DOLLAR, 0),
    (-5, 100 * DOLLAR, 0),
    (2000, 9_999, 0),  # less than a cent
    (2000, 10_000, 1),
])
def test_credit_to_apply(subtotal: int, wallet: int, applied: int) -> None:
    assert credit_to_apply(subtotal, wallet) == applied


def test_total_and_amount_due() -> None:
    tax = TaxLine(TaxTreatment.DOMESTIC_VAT, 1900, 190, None)
    inv = invoice(subtotal=1000, credit=600, tax=tax)
    assert inv.total == Money(1190, "USD")
    assert inv.amount_due == Money(590, "USD")
    assert invoice(subtotal=1000, credit=1000).amount_due == Money(0, "USD")


@pytest.mark.parametrize(("status", "credit", "collectible"), [
    (IS.OPEN, 0, True), (IS.UNCOLLECTIBLE, 0, True), (IS.OPEN, 1000, False), (IS.DRAFT, 0, False),
    (IS.PAID, 0, False), (IS.VOID, 0, False),
])
def test_payments_due_are_collectible_open_invoices(status: IS, credit: int, collectible: bool) -> None:
    assert invoice(subtotal=1000, credit=credit, status=status).is_collectible is collectible


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_pair_of_invoice_statuses(current: IS, target: IS) -> None:
    inv = invoice(status=current)
    at = NOW + timedelta(days=1)
    assert (target in INVOICE_TRANSITIONS[current]) is ((current, target) in ALLOWED)
    if (current, target) in ALLOWED:
        inv.move_to(target, at)
        assert inv.status is target
        assert inv.paid_at == (at if target is IS.PAID else None)
        assert inv.voided_at == (at if target is IS.VOID else None)
    else:
        with pytest.raises(IllegalTransition) as info:
            inv.move_to(target, at)
        assert str(info.value) == f"an invoice cannot go from {current.value} to {target.value}"
        assert info.value.code == "illegal_transition"
        assert inv.status is current and inv.paid_at is None and inv.voided_at is None


@pytest.mark.parametrize("status", list(IS))
def test_moving_to_the_same_status_is_a_no_op(status: IS) -> None:
    inv = invoice(status=status)
    inv.move_to(status, NOW)
    assert inv.status is status and inv.paid_at is None and inv.voided_at is None


def test_void_after_paid_keeps_the_payment_date() -> None:
    inv = invoice(status=IS.OPEN)
    inv.move_to(IS.PAID, NOW)
    inv.move_to(IS.VOID, NOW + timedelta(days=2))
    assert (inv.paid_at, inv.voided_at) == (NOW, NOW + timedelta(days=2))


def test_transition_errors_name_their_subject_with_the_right_article() -> None:
    with pytest.raises(IllegalTransition) as info:
        invoice(status=IS.VOID).move_to(IS.OPEN, NOW)
    assert str(info.value).startswith("an invoice cannot go")
    assert str(IllegalTransition("failed", "succeeded", subject="payment")) == (
        "a payment cannot go from failed to succeeded")


def test_no_tax_line() -> None:
    assert TaxLine(TaxTreatment.NO_VAT, 0, 0, None) == NO_TAX
