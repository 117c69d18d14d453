"""Invoices as the period close makes them, for e-invoice tests: built with the core's own rounding,
credit and tax functions, and read back from the XML the adapters produce."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from lxml import etree

from billing_core.billing_settings import InvoiceAddress
from billing_core.einvoice import SellerConfig
from billing_core.invoices import Invoice, InvoiceItem, InvoiceStatus, credit_to_apply
from billing_core.money import Money, micros_to_cents
from billing_core.organization import Organization
from billing_core.tax import TaxConfig, tax_line

SELLER = SellerConfig(
    name="Seller GmbH", street="Alexanderplatz 1", postal_code="10178", city="Berlin", country="DE",
    vat_id="DE123456789", tax_number="30/123/45678", legal_registration_id="HRB 12345 B", contact_name="Billing",
    contact_phone="+49 30 1234567", contact_email="billing@seller.example", iban="DE89370400440532013000",
    bic="COBADEFFXXX", eur_rate_ppm=920_000)
PERIOD_START = datetime(2026, 10, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Usage:
    product: str
    quantity: int
    unit_price_micros: int
    extra_micros: int = 0
    """Added to ``quantity × price``: tiered or changed prices make the amount differ from it."""
    project: bool = False


def make_invoice(usages: list[Usage], *, currency: str = "USD", wallet_micros: int = 0,
                 buyer_country: str | None = "DE", verified_vat: bool = False,
                 config: TaxConfig | None = None) -> Invoice:
    """An invoice the way :func:`billing_core.services.invoicing._close_one` computes one."""
    items = []
    for usage in usages:
        micros = usage.quantity * usage.unit_price_micros + usage.extra_micros
        items.append(InvoiceItem(product_id=uuid.uuid4(), product=usage.product,
                                 project_id=uuid.uuid4() if usage.project else None, quantity=usage.quantity,
                                 unit="request", unit_price_micros=usage.unit_price_micros, amount_micros=micros,
                                 amount=Money(micros_to_cents(micros), currency)))
    subtotal = sum(i.amount.cents for i in items)
    credit = credit_to_apply(subtotal, wallet_micros)
    tax = tax_line(max(subtotal - credit, 0), buyer_country, verified_vat, config or TaxConfig())
    invoice = Invoice(id=uuid.uuid4(), organization_id=uuid.uuid4(), period_start=PERIOD_START,
                      period_end=PERIOD_END, status=InvoiceStatus.OPEN, currency_iso=currency, items=tuple(items),
                      usage_micros=sum(i.amount_micros for i in items), subtotal_cents=subtotal,
                      credit_applied_cents=credit, tax=tax, created_at=PERIOD_END, number="INV-000042",
                      finalized_at=PERIOD_END, due_at=PERIOD_END + timedelta(days=14))
    return invoice


def buyer(country: str = "DE", *, po_number: str | None = "PO-7") -> tuple[Organization, InvoiceAddress]:
    org = Organization(id=uuid.uuid4(), name="Acme", created_at=PERIOD_START)
    return org, InvoiceAddress(company_name="Acme Buyer Ltd", address_1="Main Street 5", city="Springfield",
                               postal_code="12345", country=country, po_number=po_number)


def cents(text: str | None) -> int:
    """An XML amount (``12.34``) as integer cents, exactly."""
    assert text is not None
    value = Decimal(text) * 100
    assert value == value.to_integral_value(), text
    return int(value)


CII_NS = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
          "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"}
UBL_NS = {"cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
          "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}


@dataclass(frozen=True)
class XmlTotals:
    line_total: int
    tax_exclusive: int
    tax: int
    tax_inclusive: int
    payable: int
    tax_accounting: int | None


def cii_totals(xml: bytes) -> XmlTotals:
    root = etree.fromstring(xml)
    summation = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", CII_NS)
    currency = root.findtext(".//ram:InvoiceCurrencyCode", namespaces=CII_NS)
    taxes = {e.get("currencyID"): cents(e.text) for e in summation.findall("ram:TaxTotalAmount", CII_NS)}
    return XmlTotals(line_total=cents(summation.findtext("ram:LineTotalAmount", namespaces=CII_NS)),
                     tax_exclusive=cents(summation.findtext("ram:TaxBasisTotalAmount", namespaces=CII_NS)),
                     tax=taxes[currency], tax_inclusive=cents(summation.findtext("ram:GrandTotalAmount",
                                                                                 namespaces=CII_NS)),
                     payable=cents(summation.findtext("ram:DuePayableAmount", namespaces=CII_NS)),
                     tax_accounting=taxes.get("EUR") if currency != "EUR" else None)


def ubl_totals(xml: bytes) -> XmlTotals:
    root = etree.fromstring(xml)
    total = root.find("cac:LegalMonetaryTotal", UBL_NS)
    currency = root.findtext("cbc:DocumentCurrencyCode", namespaces=UBL_NS)
    taxes = {e.get("currencyID"): cents(e.text) for e in root.findall("cac:TaxTotal/cbc:TaxAmount", UBL_NS)}
    return XmlTotals(line_total=cents(total.findtext("cbc:LineExtensionAmount", namespaces=UBL_NS)),
                     tax_exclusive=cents(total.findtext("cbc:TaxExclusiveAmount", namespaces=UBL_NS)),
                     tax=taxes[currency], tax_inclusive=cents(total.findtext("cbc:TaxInclusiveAmount",
                                                                             namespaces=UBL_NS)),
                     payable=cents(total.findtext("cbc:PayableAmount", namespaces=UBL_NS)),
                     tax_accounting=taxes.get("EUR") if currency != "EUR" else None)
