"""The usage report: a window's usage by project and product per hour, with its totals.

The totals are the core's, not a presenter's: per product (quantity and micro-dollars), per
project, the whole window in micro-dollars, and the items an invoice of exactly this window has,
each rounded to cents once by :func:`billing_core.invoices.build_items` (the invoice's own rounding),
so ``invoice_total`` equals the invoice of the window to the cent. Rounding the whole window once
(``total_micros`` shown as money) can differ from it by a few cents.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from billing_core.catalog import Catalog
from billing_core.errors import NotFound
from billing_core.invoices import InvoiceItem, build_items
from billing_core.money import Money
from billing_core.usage import HourlyUsage, UsageLine, text_rank


class ProductTotal(msgspec.Struct, frozen=True, kw_only=True):
    product_id: uuid.UUID
    quantity: int
    amount_micros: int


class ProjectTotal(msgspec.Struct, frozen=True, kw_only=True):
    project_id: uuid.UUID | None
    """None: usage at the organization level."""
    amount_micros: int


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """Usage for a window, broken down by project and product per hour, with totals."""

    organization_id: uuid.UUID
    start: datetime
    end: datetime
    currency_iso: str
    lines: tuple[UsageLine, ...]
    by_product: tuple[ProductTotal, ...]
    """Ordered by product code."""
    by_project: tuple[ProjectTotal, ...]
    """Ordered by project id as text (the organization level, None, as "None")."""
    total_micros: int
    items: tuple[InvoiceItem, ...]
    """One per product and project, each rounded to cents once: the items an invoice of this window has."""
    invoice_total: Money
    """The sum of ``items``: what an invoice of exactly this window totals, to the cent."""


def product_code(catalog: Catalog, product_id: uuid.UUID) -> str:
    """The product's code, or its id as text for a product the catalog no longer lists."""
    try:
        return catalog.product(product_id).code
    except NotFound:
        return str(product_id)


def usage_report(organization_id: uuid.UUID, start: datetime, end: datetime, buckets: list[HourlyUsage],
                 catalog: Catalog, currency_iso: str) -> UsageReport:
    """Lines ordered by hour, then project and product id as text (an org-level line's project,
    None, sorts as the text "None"); buckets with equal keys keep the order storage gave them."""
    lines = [UsageLine(b.project_id, b.product_id, b.hour, b.quantity, b.amount_micros) for b in buckets]
    lines.sort(key=lambda line: (line.hour, text_rank(line.project_id), line.product_id.int))
    products: dict[uuid.UUID, list[int]] = {}
    projects: dict[uuid.UUID | None, int] = {}
    for line in lines:
        totals = products.setdefault(line.product_id, [0, 0])
        totals[0] += line.quantity
        totals[1] += line.amount_micros
        projects[line.project_id] = projects.get(line.project_id, 0) + line.amount_micros
    codes = {product_id: product_code(catalog, product_id) for product_id in products}
    by_product = tuple(ProductTotal(product_id=product_id, quantity=quantity, amount_micros=micros)
                       for product_id, (quantity, micros) in sorted(products.items(), key=lambda kv: codes[kv[0]]))
    by_project = tuple(ProjectTotal(project_id=project_id, amount_micros=micros)
                       for project_id, micros in sorted(projects.items(), key=lambda kv: str(kv[0])))
    items = build_items(lines, catalog, currency_iso)
    return UsageReport(organization_id=organization_id, start=start, end=end, currency_iso=currency_iso,
                       lines=tuple(lines), by_product=by_product, by_project=by_project,
                       total_micros=sum(line.amount_micros for line in lines), items=items,
                       invoice_total=Money(sum(item.amount.cents for item in items), currency_iso))
