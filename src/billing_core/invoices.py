"""Internal usage invoices: built from hourly usage, credits applied before the amount due.

Line amounts are rounded from micro-dollars to cents once per line (:func:`micros_to_cents`); the
subtotal is the sum of the rounded lines. Wallet credit is applied in whole cents; what the credit
does not cover (usage from the overage line) is the amount due.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.catalog import Catalog
from billing_core.errors import IllegalTransition
from billing_core.money import MICROS_PER_CENT, Money, micros_to_cents
from billing_core.tax import TaxLine, TaxTreatment
from billing_core.usage import HourlyUsage, UsageLine


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


INVOICE_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID}),
    InvoiceStatus.OPEN: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    # Only an invoice paid entirely from credits is voided (its credits return); one paid in cash is
    # refunded with a credit note instead (enforced by the void use case).
    InvoiceStatus.PAID: frozenset({InvoiceStatus.VOID}),
    InvoiceStatus.VOID: frozenset(),
}


class InvoiceItem(msgspec.Struct, frozen=True, kw_only=True):
    product_id: uuid.UUID
    product: str
    project_id: uuid.UUID | None
    quantity: int
    unit: str
    unit_price_micros: int
    amount_micros: int
    amount: Money


class Invoice(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID
    period_start: datetime
    period_end: datetime
    status: InvoiceStatus
    currency_iso: str
    items: tuple[InvoiceItem, ...]
    usage_micros: int
    subtotal_cents: int
    credit_applied_cents: int
    tax: TaxLine
    created_at: datetime
    number: str | None = None
    finalized_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    hosted_invoice_url: str | None = None
    legal_document_id: str | None = None
    includes_earlier_usage: bool = False

    @property
    def total(self) -> Money:
        """Subtotal plus tax: what the usage cost, before credits."""
        return Money(self.subtotal_cents + self.tax.tax_cents, self.currency_iso)

    @property
    def amount_due(self) -> Money:
        return Money(self.subtotal_cents - self.credit_applied_cents + self.tax.tax_cents, self.currency_iso)

    @property
    def is_collectible(self) -> bool:
        return self.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE) and self.amount_due.cents > 0

    def move_to(self, target: InvoiceStatus, at: datetime) -> None:
        if target == self.status:
            return
        if target not in INVOICE_TRANSITIONS[self.status]:
            raise IllegalTransition(self.status.value, target.value, subject="invoice")
        if target == InvoiceStatus.PAID:
            self.paid_at = at
        elif target == InvoiceStatus.VOID:
            self.voided_at = at
        self.status = target


def build_items(buckets: Iterable[HourlyUsage | UsageLine], catalog: Catalog,
                currency_iso: str) -> tuple[InvoiceItem, ...]:
    """One item per product and project, rounded to cents once each, in a stable order."""
    totals: dict[tuple[uuid.UUID, uuid.UUID | None], list[int]] = defaultdict(lambda: [0, 0])
    for bucket in buckets:
        entry = totals[(bucket.product_id, bucket.project_id)]
        entry[0] += bucket.quantity
        entry[1] += bucket.amount_micros
    items = []
    for (product_id, project_id), (quantity, micros) in totals.items():
        product = catalog.product(product_id)
        items.append(InvoiceItem(
            product_id=product_id, product=product.name, project_id=project_id, quantity=quantity,
            unit=product.unit, unit_price_micros=product.unit_price_micros, amount_micros=micros,
            amount=Money(micros_to_cents(micros), currency_iso),
        ))
    items.sort(key=lambda i: (i.product, str(i.project_id)))
    return tuple(items)


def credit_to_apply(subtotal_cents: int, wallet_micros: int) -> int:
    """Whole cents of settled wallet credit that go against the invoice: never more than either."""
    if wallet_micros <= 0 or subtotal_cents <= 0:
        return 0
    return min(subtotal_cents, wallet_micros // MICROS_PER_CENT)


NO_TAX = TaxLine(TaxTreatment.NO_VAT, 0, 0, None)
