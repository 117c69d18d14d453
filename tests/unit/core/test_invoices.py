"""Invoice items, credit application, amounts and status transitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from billing_core.catalog import Catalog
from billing_core.errors import IllegalTransition
from billing_core.invoices import NO_TAX, Invoice, InvoiceStatus, build_items, credit_to_apply
from billing_core.tax import TaxLine, TaxTreatment
from billing_core.usage import HourlyUsage

ORG = uuid.uuid4()
HOUR = datetime(2026, 3, 14, 9, tzinfo=UTC)
PROJECT_A = uuid.UUID(int=1)
PROJECT_B = uuid.UUID(int=2)


def bucket(product_id: uuid.UUID, project_id: uuid.UUID | None, quantity: int, micros: int) -> HourlyUsage:
    return HourlyUsage(organization_id=ORG, project_id=project_id, product_id=product_id, hour=HOUR,
                       quantity=quantity, amount_micros=micros)


def invoice(*, status: InvoiceStatus = InvoiceStatus.OPEN, subtotal: int = 1000, credit: int = 0,
            tax: TaxLine = NO_TAX) -> Invoice:
    return Invoice(id=uuid.uuid4(), organization_id=ORG, period_start=HOUR, period_end=HOUR, status=status,
                   currency_iso="USD", items=(), usage_micros=0, subtotal_cents=subtotal,
                   credit_applied_cents=credit, tax=tax, created_at=HOUR)


def test_build_items_groups_by_product_and_project(catalog: Catalog) -> None:
    compute = catalog.product_by_code("compute").id
    storage = catalog.product_by_code("storage").id
    items = build_items([
        bucket(compute, PROJECT_A, 1, 40_000), bucket(compute, PROJECT_A, 2, 80_000),
        bucket(compute, PROJECT_B, 1, 40_000), bucket(storage, PROJECT_A, 10, 1_500),
    ], catalog, "USD")
    assert [(i.product, i.project_id, i.quantity, i.amount_micros) for i in items] == [
        ("Compute", PROJECT_A, 3, 120_000), ("Compute", PROJECT_B, 1, 40_000), ("Storage", PROJECT_A, 10, 1_500),
    ]
    assert items[0].unit == "vCPU-hour"
    assert items[0].unit_price_micros == 40_000
    assert items[0].amount.currency_iso == "USD"


def test_build_items_rounds_each_line_once_after_summing(catalog: Catalog) -> None:
    storage = catalog.product_by_code("storage").id
    # Three buckets of 0.4 cent each: rounding per bucket would give 0, the line rounds 1.2 → 1 cent.
    items = build_items([bucket(storage, None, 1, 4_000)] * 3, catalog, "USD")
    assert len(items) == 1
    assert items[0].amount_micros == 12_000
    assert items[0].amount.cents == 1
    half = build_items([bucket(storage, None, 1, 5_000)], catalog, "USD")
    assert half[0].amount.cents == 1  # half a cent rounds up
    below = build_items([bucket(storage, None, 1, 4_999)], catalog, "USD")
    assert below[0].amount.cents == 0


def test_build_items_empty(catalog: Catalog) -> None:
    assert build_items([], catalog, "USD") == ()


@pytest.mark.parametrize(("subtotal", "wallet", "expected"), [
    (1000, 50_000_000, 1000),  # credit covers the whole invoice
    (1000, 5_009_999, 500),  # whole cents only
    (1000, 0, 0), (1000, -1_000_000, 0), (0, 5_000_000, 0), (-100, 5_000_000, 0),
    (1000, 10_000_000, 1000),
])
def test_credit_to_apply_bounds(subtotal: int, wallet: int, expected: int) -> None:
    assert credit_to_apply(subtotal, wallet) == expected


def test_amount_due_is_subtotal_minus_credit_plus_tax() -> None:
    tax = TaxLine(TaxTreatment.DOMESTIC_VAT, 1900, 190, None)
    inv = invoice(subtotal=1000, credit=300, tax=tax)
    assert inv.amount_due.cents == 890
    assert inv.total.cents == 1190
    assert invoice(subtotal=1000, credit=1000).amount_due.cents == 0


@pytest.mark.parametrize(("start", "target"), [
    (InvoiceStatus.DRAFT, InvoiceStatus.OPEN), (InvoiceStatus.DRAFT, InvoiceStatus.PAID),
    (InvoiceStatus.DRAFT, InvoiceStatus.VOID), (InvoiceStatus.OPEN, InvoiceStatus.PAID),
    (InvoiceStatus.OPEN, InvoiceStatus.VOID), (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE),
    (InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.PAID), (InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.VOID),
])
def test_legal_invoice_transitions(start: InvoiceStatus, target: InvoiceStatus) -> None:
    inv = invoice(status=start)
    inv.move_to(target, HOUR)
    assert inv.status is target
    assert inv.paid_at == (HOUR if target is InvoiceStatus.PAID else None)
    assert inv.voided_at == (HOUR if target is InvoiceStatus.VOID else None)


@pytest.mark.parametrize(("start", "target"), [
    (InvoiceStatus.PAID, InvoiceStatus.OPEN), (InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE),
    (InvoiceStatus.VOID, InvoiceStatus.PAID), (InvoiceStatus.VOID, InvoiceStatus.OPEN),
    (InvoiceStatus.OPEN, InvoiceStatus.DRAFT), (InvoiceStatus.DRAFT, InvoiceStatus.UNCOLLECTIBLE),
    (InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.OPEN),
])
def test_illegal_invoice_transitions(start: InvoiceStatus, target: InvoiceStatus) -> None:
    inv = invoice(status=start)
    with pytest.raises(IllegalTransition) as info:
        inv.move_to(target, HOUR)
    assert info.value.code == "illegal_transition"
    assert inv.status is start


def test_same_status_is_a_no_op() -> None:
    inv = invoice(status=InvoiceStatus.PAID)
    inv.move_to(InvoiceStatus.PAID, datetime(2030, 1, 1, tzinfo=UTC))
    assert inv.paid_at is None


@pytest.mark.parametrize(("status", "credit", "collectible"), [
    (InvoiceStatus.OPEN, 0, True), (InvoiceStatus.UNCOLLECTIBLE, 0, True),
    (InvoiceStatus.OPEN, 1000, False),  # fully covered by credit
    (InvoiceStatus.DRAFT, 0, False), (InvoiceStatus.PAID, 0, False), (InvoiceStatus.VOID, 0, False),
])
def test_is_collectible(status: InvoiceStatus, credit: int, collectible: bool) -> None:
    assert invoice(status=status, subtotal=1000, credit=credit).is_collectible is collectible
