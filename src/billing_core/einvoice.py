"""Structured e-invoices (EN 16931): the business terms of an invoice or credit note, and the
business rules that are arithmetic or presence checks.

Pure: the adapters turn an :class:`EInvoice` into CII (Factur-X / ZUGFeRD, EN 16931 profile) or
UBL (XRechnung) XML and validate it against the XSDs; this module decides every amount.

**Amounts.** Every amount on the document is integer cents of the invoice currency (BT-5). The one
rounding rule is the ledger's (:func:`~billing_core.money.micros_to_cents`): each invoice item's
micro-dollar amount is rounded half away from zero to the cent, once; the line net amount (BT-131)
is that rounded amount, the sum of line nets is BT-106, and the sub-cent difference of each line is
shown in its note (BT-127). The close of the period posts exactly the same rounding to revenue, so
the document and the ledger differ by 0 cents. Unit prices (BT-146) keep their six decimals: when
``quantity × unit price`` is not exactly the item's micro-dollar amount (tiered or changed prices),
the line is quantity 1 at the item's exact amount, the metered quantity in its description.

**Credits applied.** The core taxes what remains after wallet credit (:func:`~billing_core.tax.tax_line`
is applied to ``subtotal − credit``; ADR 0002), so the credit is a document-level allowance (BG-20)
in the invoice's VAT category, not a prepaid amount: BT-109 = BT-106 − credit, VAT is on BT-109,
BT-112 is the amount due. BT-113 (prepaid amount) carries payments received before issue, which the
close never has today (0). See docs/adr/0012-e-invoices.md.

**VAT accounting currency (BT-6).** A non-EUR invoice also states its VAT total in EUR (BT-111): the
VAT in cents × the configured EUR-per-unit rate (:attr:`SellerConfig.eur_rate_ppm`, parts per
million), rounded half up to the cent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from enum import StrEnum

import msgspec

from billing_core.billing_settings import InvoiceAddress
from billing_core.errors import Conflict, InvoiceError
from billing_core.invoices import Invoice, InvoiceItem
from billing_core.money import MICROS_PER_CENT, MICROS_PER_DOLLAR
from billing_core.organization import Organization
from billing_core.tax import TaxTreatment

EN16931 = "urn:cen.eu:en16931:2017"
XRECHNUNG = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
"""BT-24 of an XRechnung 3.0 document (the CII output uses :data:`EN16931`, the Factur-X profile)."""
PEPPOL_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

INVOICE = "380"
CREDIT_NOTE = "381"

REVERSE_CHARGE_REASON = "Reverse charge"
REVERSE_CHARGE_CODE = "VATEX-EU-AE"
NOT_SUBJECT_REASON = "Not subject to VAT in the seller's country (services to a buyer outside the EU)"
NOT_SUBJECT_CODE = "VATEX-EU-O"
CREDIT_NOTE_TERMS = "The credited amount is refunded or set off against open invoices."
CREDIT_ALLOWANCE_REASON = "Prepaid credit balance applied"
CREDIT_ALLOWANCE_CODE = "95"
"""UNTDID 5189 "Discount": the closest code for credit bought earlier and applied to this invoice."""


class VatCategory(StrEnum):
    """UNTDID 5305 VAT category codes the engine issues."""

    STANDARD = "S"
    REVERSE_CHARGE = "AE"
    NOT_SUBJECT = "O"


CATEGORY_FOR: dict[TaxTreatment, VatCategory] = {
    TaxTreatment.DOMESTIC_VAT: VatCategory.STANDARD,
    TaxTreatment.REVERSE_CHARGE: VatCategory.REVERSE_CHARGE,
    TaxTreatment.NO_VAT: VatCategory.NOT_SUBJECT,
}


class SellerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Who issues the documents and how they are paid: deployment configuration (settings)."""

    name: str
    street: str
    postal_code: str
    city: str
    country: str
    vat_id: str | None = None
    """BT-31, e.g. ``DE123456789``. Omitted on not-subject (O) documents (BR-O-02)."""
    tax_number: str | None = None
    """BT-32, the local tax number (Steuernummer)."""
    legal_registration_id: str | None = None
    """BT-30, e.g. ``HRB 123456 B``: identifies the seller on O documents, which may not carry BT-31."""
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    electronic_address: str | None = None
    """BT-34 (scheme EM, an email address): XRechnung requires it; defaults to the contact email."""
    iban: str | None = None
    bic: str | None = None
    bank_account_name: str | None = None
    eur_rate_ppm: int = 1_000_000
    """EUR per one unit of the invoice currency, in millionths (0.92 EUR per USD → 920000)."""


DEMO_SELLER = SellerConfig(
    name="billing-core demo GmbH", street="Alexanderplatz 1", postal_code="10178", city="Berlin", country="DE",
    vat_id="DE999999999", tax_number="37/000/00000", legal_registration_id="HRB 000000 B",
    contact_name="Billing team", contact_phone="+49 30 0000000", contact_email="billing@localhost",
    iban="DE02120300000000202051", bic="BYLADEM1001", eur_rate_ppm=920_000)
"""The seller of a deployment that configured none (``BILLING_SELLER_*``): a placeholder that
validates, for development and tests only; production refuses to start without seller data."""


class Address(msgspec.Struct, frozen=True, kw_only=True):
    line_1: str | None
    line_2: str | None = None
    line_3: str | None = None
    city: str | None
    postal_code: str | None
    region: str | None = None
    country: str | None


class Party(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    address: Address | None
    vat_id: str | None = None
    tax_number: str | None = None
    legal_registration_id: str | None = None
    electronic_address: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None


class Line(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    """BT-126."""
    name: str
    """BT-153."""
    description: str | None
    """BT-154."""
    quantity: int
    """BT-129, in :attr:`unit_code`."""
    unit_code: str
    """BT-130, UN/ECE Recommendation 20 (``C62`` = one)."""
    unit_price_micros: int
    """BT-146 in millionths of the currency unit (six decimals)."""
    net_cents: int
    """BT-131: the item's amount rounded to the cent (the ledger's rounding)."""
    rounding_micros: int
    """``net − exact amount`` in millionths: what the one rounding changed on this line."""
    category: VatCategory
    rate_basis_points: int
    note: str | None = None
    """BT-127: states the rounding."""


class Allowance(msgspec.Struct, frozen=True, kw_only=True):
    """BG-20 document-level allowance."""

    amount_cents: int
    reason: str
    reason_code: str
    category: VatCategory
    rate_basis_points: int


class VatBreakdown(msgspec.Struct, frozen=True, kw_only=True):
    """BG-23: one per VAT category and rate."""

    category: VatCategory
    rate_basis_points: int
    taxable_cents: int
    """BT-116."""
    tax_cents: int
    """BT-117."""
    exemption_reason: str | None = None
    """BT-120."""
    exemption_code: str | None = None
    """BT-121."""


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    line_total_cents: int
    """BT-106."""
    allowance_total_cents: int
    """BT-107."""
    charge_total_cents: int
    """BT-108."""
    tax_exclusive_cents: int
    """BT-109."""
    tax_total_cents: int
    """BT-110."""
    tax_inclusive_cents: int
    """BT-112."""
    prepaid_cents: int
    """BT-113."""
    rounding_cents: int
    """BT-114."""
    payable_cents: int
    """BT-115."""
    tax_total_accounting_cents: int | None = None
    """BT-111, in :attr:`EInvoice.vat_accounting_currency`."""


class EInvoice(msgspec.Struct, frozen=True, kw_only=True):
    """The EN 16931 business terms of one invoice (380) or credit note (381)."""

    specification: str
    """BT-24."""
    business_process: str | None
    """BT-23."""
    number: str
    """BT-1."""
    type_code: str
    """BT-3: 380 invoice, 381 credit note."""
    issue_date: date
    """BT-2."""
    currency: str
    """BT-5."""
    vat_accounting_currency: str | None
    """BT-6: EUR when the document currency is not EUR."""
    due_date: date | None
    """BT-9."""
    buyer_reference: str | None
    """BT-10: the buyer's PO number (for German public buyers: their Leitweg-ID)."""
    preceding_invoice: str | None
    """BT-25: the invoice a credit note corrects."""
    preceding_invoice_date: date | None
    """BT-26."""
    period_start: date
    """BT-73."""
    period_end: date
    """BT-74 (the last day included)."""
    notes: tuple[str, ...]
    """BT-22."""
    seller: Party
    buyer: Party
    payment_means_code: str
    """BT-81: 58 SEPA credit transfer with an IBAN, 30 credit transfer otherwise."""
    payee_iban: str | None
    """BT-84."""
    payee_bic: str | None
    """BT-86."""
    payee_account_name: str | None
    """BT-85."""
    payment_terms: str | None
    """BT-20."""
    remittance_information: str | None
    """BT-83."""
    lines: tuple[Line, ...]
    allowances: tuple[Allowance, ...]
    vat_breakdown: tuple[VatBreakdown, ...]
    totals: Totals
    invoice_id: uuid.UUID


class EInvoiceInvalid(InvoiceError, Conflict):
    """The document fails EN 16931 rules (or its XML fails the schema): it is not issued. A conflict
    (HTTP 409): the data (buyer's address, seller settings) must change before it can be."""

    code = "einvoice_invalid"

    def __init__(self, number: str, failed: Iterable[str], detail: str | None = None) -> None:
        self.failed = tuple(failed)
        message = f"e-invoice {number} fails {', '.join(self.failed)}"
        super().__init__(message + (f": {detail}" if detail else ""))


# --------------------------------------------------------------------------- arithmetic


def half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero (denominator > 0)."""
    sign = -1 if numerator < 0 else 1
    quotient, rest = divmod(abs(numerator), denominator)
    if rest * 2 >= denominator:
        quotient += 1
    return sign * quotient


def vat_of(taxable_cents: int, rate_basis_points: int) -> int:
    """BT-117 from BT-116 and BT-119: half up to the cent, as :func:`billing_core.tax.tax_line`."""
    return half_up(taxable_cents * rate_basis_points, 10_000)


def in_accounting_currency(cents: int, rate_ppm: int) -> int:
    return half_up(cents * rate_ppm, 1_000_000)


def format_cents(cents: int) -> str:
    """``1234`` → ``12.34``; ``-5`` → ``-0.05`` (the XML decimal of an amount)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def format_micros(micros: int) -> str:
    """Six decimals with trailing zeros trimmed to at least two: ``20`` → ``0.00002``."""
    sign = "-" if micros < 0 else ""
    whole, rest = divmod(abs(micros), MICROS_PER_DOLLAR)
    return f"{sign}{whole}.{f'{rest:06d}'.rstrip('0').ljust(2, '0')}"


def format_rate(basis_points: int) -> str:
    """1900 → ``19.00`` (BT-119 as a decimal percentage)."""
    return format_cents(basis_points)


# --------------------------------------------------------------------------- derivation


def _party_address(address: InvoiceAddress | None) -> Address | None:
    if address is None:
        return None
    return Address(line_1=address.address_1, line_2=address.address_2, city=address.city,
                   postal_code=address.postal_code, region=address.region, country=address.country)


def seller_party(seller: SellerConfig, category: VatCategory) -> Party:
    return Party(
        name=seller.name,
        address=Address(line_1=seller.street, city=seller.city, postal_code=seller.postal_code,
                        country=seller.country),
        vat_id=seller.vat_id if category != VatCategory.NOT_SUBJECT else None,
        tax_number=seller.tax_number, legal_registration_id=seller.legal_registration_id,
        electronic_address=seller.electronic_address or seller.contact_email,
        contact_name=seller.contact_name or seller.name, contact_phone=seller.contact_phone,
        contact_email=seller.contact_email)


def buyer_party(organization: Organization, address: InvoiceAddress | None, billing_email: str | None,
                buyer_tax_id: str | None, category: VatCategory) -> Party:
    return Party(
        name=address.company_name if address else organization.name,
        address=_party_address(address),
        vat_id=buyer_tax_id if category != VatCategory.NOT_SUBJECT else None,
        electronic_address=billing_email)


def _line(index: int, item: InvoiceItem, category: VatCategory, rate: int) -> Line:
    net = item.amount.cents
    rounding = net * MICROS_PER_CENT - item.amount_micros
    project = f"project {item.project_id}" if item.project_id is not None else "all projects"
    exact = item.quantity * item.unit_price_micros == item.amount_micros
    if exact:
        quantity, price, description = item.quantity, item.unit_price_micros, f"{item.unit} ({project})"
    else:
        quantity, price = 1, item.amount_micros
        description = (f"{item.quantity:,} {item.unit} at {format_micros(item.unit_price_micros)} "
                       f"per {item.unit} ({project})")
    note = None
    if rounding:
        note = (f"Metered amount {format_micros(item.amount_micros)} rounded half away from zero to "
                f"{format_cents(net)} (rounding {format_micros(rounding)})")
    return Line(id=str(index), name=item.product, description=description, quantity=quantity, unit_code="C62",
                unit_price_micros=price, net_cents=net, rounding_micros=rounding, category=category,
                rate_basis_points=rate, note=note)


def _breakdown(category: VatCategory, rate: int, taxable: int, tax: int) -> VatBreakdown:
    if category == VatCategory.REVERSE_CHARGE:
        return VatBreakdown(category=category, rate_basis_points=0, taxable_cents=taxable, tax_cents=0,
                            exemption_reason=REVERSE_CHARGE_REASON, exemption_code=REVERSE_CHARGE_CODE)
    if category == VatCategory.NOT_SUBJECT:
        return VatBreakdown(category=category, rate_basis_points=0, taxable_cents=taxable, tax_cents=0,
                            exemption_reason=NOT_SUBJECT_REASON, exemption_code=NOT_SUBJECT_CODE)
    return VatBreakdown(category=category, rate_basis_points=rate, taxable_cents=taxable, tax_cents=tax)


def _payment(seller: SellerConfig) -> tuple[str, str | None, str | None, str | None]:
    if seller.iban:
        return "58", seller.iban.replace(" ", ""), seller.bic, seller.bank_account_name or seller.name
    return "30", None, None, None


def _totals(lines: tuple[Line, ...], allowances: tuple[Allowance, ...], breakdown: tuple[VatBreakdown, ...],
            currency: str, eur_rate_ppm: int, prepaid: int = 0) -> Totals:
    line_total = sum(line.net_cents for line in lines)
    allowance_total = sum(a.amount_cents for a in allowances)
    exclusive = line_total - allowance_total
    tax = sum(b.tax_cents for b in breakdown)
    inclusive = exclusive + tax
    return Totals(line_total_cents=line_total, allowance_total_cents=allowance_total, charge_total_cents=0,
                  tax_exclusive_cents=exclusive, tax_total_cents=tax, tax_inclusive_cents=inclusive,
                  prepaid_cents=prepaid, rounding_cents=0, payable_cents=inclusive - prepaid,
                  tax_total_accounting_cents=(in_accounting_currency(tax, eur_rate_ppm)
                                              if currency != "EUR" else None))


def from_invoice(invoice: Invoice, *, organization: Organization, address: InvoiceAddress | None,
                 billing_email: str | None, buyer_tax_id: str | None, seller: SellerConfig) -> EInvoice:
    """The invoice's EN 16931 terms. Amounts are the ledger's: BT-112 is the invoice's amount due."""
    category = CATEGORY_FOR[invoice.tax.treatment]
    rate = invoice.tax.rate_basis_points if category == VatCategory.STANDARD else 0
    lines = tuple(_line(index, item, category, rate) for index, item in enumerate(invoice.items, 1))
    allowances: tuple[Allowance, ...] = ()
    if invoice.credit_applied_cents:
        allowances = (Allowance(amount_cents=invoice.credit_applied_cents, reason=CREDIT_ALLOWANCE_REASON,
                                reason_code=CREDIT_ALLOWANCE_CODE, category=category, rate_basis_points=rate),)
    taxable = sum(line.net_cents for line in lines) - invoice.credit_applied_cents
    breakdown = (_breakdown(category, rate, taxable, invoice.tax.tax_cents),)
    totals = _totals(lines, allowances, breakdown, invoice.currency_iso, seller.eur_rate_ppm)
    issued = (invoice.finalized_at or invoice.created_at).date()
    means, iban, bic, account = _payment(seller)
    due = invoice.due_at.date() if invoice.due_at is not None else None
    notes = [f"Usage-based services for {invoice.period_start.date().isoformat()} to "
             f"{(invoice.period_end - timedelta(microseconds=1)).date().isoformat()}. Reference {invoice.id}."]
    if invoice.credit_applied_cents:
        notes.append(f"{format_cents(invoice.credit_applied_cents)} {invoice.currency_iso} of prepaid credit "
                     "balance was applied to this invoice (document-level allowance).")
    if invoice.tax.note:
        notes.append(invoice.tax.note)
    if invoice.includes_earlier_usage:
        notes.append("This invoice also includes usage from earlier periods that had not been invoiced yet.")
    number = invoice.number or str(invoice.id)
    terms = f"Payable within {(due - issued).days} days, by {due.isoformat()}." if due else None
    if totals.payable_cents <= 0:
        terms = "Paid in full by prepaid credit balance; nothing is due."
    return EInvoice(
        specification=EN16931, business_process=None,
        number=number, type_code=INVOICE, issue_date=issued, currency=invoice.currency_iso,
        vat_accounting_currency="EUR" if invoice.currency_iso != "EUR" else None, due_date=due,
        buyer_reference=address.po_number if address else None, preceding_invoice=None,
        preceding_invoice_date=None, period_start=invoice.period_start.date(),
        period_end=(invoice.period_end - timedelta(microseconds=1)).date(), notes=tuple(notes),
        seller=seller_party(seller, category),
        buyer=buyer_party(organization, address, billing_email, buyer_tax_id, category),
        payment_means_code=means, payee_iban=iban, payee_bic=bic, payee_account_name=account,
        payment_terms=terms, remittance_information=number, lines=lines, allowances=allowances,
        vat_breakdown=breakdown, totals=totals, invoice_id=invoice.id)


def as_xrechnung(document: EInvoice, customer_number: str) -> EInvoice:
    """The same terms, declared as XRechnung 3.0 (BT-24) in the Peppol billing process (BT-23).

    XRechnung requires a buyer reference (BR-DE-15): the PO number (a public buyer's Leitweg-ID)
    when the buyer gave one, else ``customer_number`` (our id of the buyer)."""
    return msgspec.structs.replace(document, specification=XRECHNUNG, business_process=PEPPOL_PROCESS,
                                   buyer_reference=document.buyer_reference or customer_number)


def net_for_gross(gross_cents: int, rate_basis_points: int) -> int:
    """The net amount whose net + VAT is exactly ``gross_cents``, or the nearest below when none is."""
    if rate_basis_points == 0:
        return gross_cents
    base = half_up(gross_cents * 10_000, 10_000 + rate_basis_points)
    for candidate in (base, base - 1, base + 1):
        if candidate + vat_of(candidate, rate_basis_points) == gross_cents:
            return candidate
    return base


def credit_note(original: EInvoice, *, number: str, issued: date, amount_cents: int, reason: str) -> EInvoice:
    """A credit note (381) correcting ``original`` (BT-25). At least the original's amount due
    cancels it in full: the same lines, allowances and VAT, positive as a credit note states them.
    Less credits part of it: one line in the original's VAT category whose net + VAT is the credited
    gross amount (the nearest net when no net gives it exactly)."""
    notes = (f"Credit note for invoice {original.number}. Reason: {reason}",)
    if amount_cents >= original.totals.payable_cents:
        return msgspec.structs.replace(
            original, number=number, type_code=CREDIT_NOTE, issue_date=issued, due_date=None,
            preceding_invoice=original.number, preceding_invoice_date=original.issue_date,
            notes=notes + original.notes, payment_terms=CREDIT_NOTE_TERMS, remittance_information=number)
    category = original.vat_breakdown[0].category if original.vat_breakdown else VatCategory.STANDARD
    rate = original.vat_breakdown[0].rate_basis_points if original.vat_breakdown else 0
    net = net_for_gross(amount_cents, rate)
    line = Line(id="1", name=f"Credit for invoice {original.number}", description=reason or None, quantity=1,
                unit_code="C62", unit_price_micros=net * MICROS_PER_CENT, net_cents=net, rounding_micros=0,
                category=category, rate_basis_points=rate)
    template = next((b for b in original.vat_breakdown if b.category == category), None)
    breakdown = (VatBreakdown(category=category, rate_basis_points=rate, taxable_cents=net,
                              tax_cents=vat_of(net, rate) if category == VatCategory.STANDARD else 0,
                              exemption_reason=template.exemption_reason if template else None,
                              exemption_code=template.exemption_code if template else None),)
    totals = _totals((line,), (), breakdown, original.currency, _rate_of(original))
    return msgspec.structs.replace(
        original, number=number, type_code=CREDIT_NOTE, issue_date=issued, due_date=None,
        preceding_invoice=original.number, preceding_invoice_date=original.issue_date, notes=notes,
        payment_terms=CREDIT_NOTE_TERMS, remittance_information=number, lines=(line,), allowances=(),
        vat_breakdown=breakdown,
        totals=totals)


def _rate_of(document: EInvoice) -> int:
    """The EUR rate a document was made with (recovered from its own BT-110/BT-111)."""
    accounting = document.totals.tax_total_accounting_cents
    if accounting is None or document.totals.tax_total_cents == 0:
        return 1_000_000
    return half_up(accounting * 1_000_000, document.totals.tax_total_cents)


# --------------------------------------------------------------------------- business rules


def _present(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def _check_party_address(address: Address | None, missing: str, no_country: str, failed: list[str]) -> None:
    if address is None:
        failed.append(missing)
        failed.append(no_country)
        return
    if not _present(address.country):
        failed.append(no_country)


def check_rules(document: EInvoice) -> list[str]:
    """The ids of the EN 16931 rules the document fails, in a stable order (empty: it passes).

    Checked: the mandatory terms BR-01..BR-16 and the line terms BR-21..BR-27, the totals BR-CO-10,
    11, 13, 14, 15, 16, 17, 25 and 26, BR-53 (VAT in the accounting currency), and the category rules
    BR-S-01/02/05/08/09/10, BR-AE-01/02/03/05/08/09/10 and BR-O-01/02/08/09/10/11/14 (the others of
    those groups concern invoice-level charges, which the engine never issues). Rates of 0 stand for
    "no rate" in AE and O: the XML leaves BT-119/BT-152 out for O (BR-O-05).
    Our own: BC-01 (a credit note references its invoice, BT-25) and BC-02 (line net = quantity ×
    unit price rounded half away from zero)."""
    failed: list[str] = []
    t = document.totals
    mandatory = [("BR-01", document.specification), ("BR-02", document.number), ("BR-04", document.type_code),
                 ("BR-05", document.currency), ("BR-06", document.seller.name), ("BR-07", document.buyer.name)]
    failed.extend(rule for rule, value in mandatory if not _present(value))
    if document.issue_date is None:
        failed.append("BR-03")
    if document.seller.address is None or not _present(document.seller.address.country):
        failed.extend(["BR-08", "BR-09"] if document.seller.address is None else ["BR-09"])
    _check_party_address(document.buyer.address, "BR-10", "BR-11", failed)
    if not document.lines:
        failed.append("BR-16")
    for line in document.lines:
        checks = [("BR-21", _present(line.id)), ("BR-22", line.quantity is not None),
                  ("BR-23", _present(line.unit_code)), ("BR-24", line.net_cents is not None),
                  ("BR-25", _present(line.name)), ("BR-26", line.unit_price_micros is not None),
                  ("BR-27", line.unit_price_micros >= 0)]
        failed.extend(rule for rule, ok in checks if not ok and rule not in failed)
    # BR-12..BR-15 are the presence of the totals (always present in the typed model); their sums:
    if t.line_total_cents != sum(line.net_cents for line in document.lines):
        failed.append("BR-CO-10")
    if t.allowance_total_cents != sum(a.amount_cents for a in document.allowances):
        failed.append("BR-CO-11")
    if t.tax_exclusive_cents != t.line_total_cents - t.allowance_total_cents + t.charge_total_cents:
        failed.append("BR-CO-13")
    if t.tax_total_cents != sum(b.tax_cents for b in document.vat_breakdown):
        failed.append("BR-CO-14")
    if t.tax_inclusive_cents != t.tax_exclusive_cents + t.tax_total_cents:
        failed.append("BR-CO-15")
    if t.payable_cents != t.tax_inclusive_cents - t.prepaid_cents + t.rounding_cents:
        failed.append("BR-CO-16")
    if any(b.tax_cents != vat_of(b.taxable_cents, b.rate_basis_points) for b in document.vat_breakdown):
        failed.append("BR-CO-17")
    if t.payable_cents > 0 and document.due_date is None and not _present(document.payment_terms):
        failed.append("BR-CO-25")
    seller = document.seller
    if not (_present(seller.vat_id) or _present(seller.legal_registration_id)):
        failed.append("BR-CO-26")
    if document.vat_accounting_currency is not None and t.tax_total_accounting_cents is None:
        failed.append("BR-53")
    # Our own rules (billing-core): a credit note names the invoice it corrects (BT-25), and each
    # line's net is its quantity × unit price rounded half away from zero (the ledger's rounding).
    if document.type_code == CREDIT_NOTE and not _present(document.preceding_invoice):
        failed.append("BC-01")
    if any(line.net_cents != half_up(line.quantity * line.unit_price_micros, MICROS_PER_CENT)
           for line in document.lines):
        failed.append("BC-02")
    failed.extend(_category_rules(document))
    return failed


def _category_sum(document: EInvoice, category: VatCategory, rate: int | None = None) -> int:
    lines = sum(line.net_cents for line in document.lines
                if line.category == category and (rate is None or line.rate_basis_points == rate))
    allowances = sum(a.amount_cents for a in document.allowances
                     if a.category == category and (rate is None or a.rate_basis_points == rate))
    return lines - allowances


def _category_rules(document: EInvoice) -> list[str]:
    failed: list[str] = []
    categories = {line.category for line in document.lines} | {a.category for a in document.allowances}
    breakdown = document.vat_breakdown
    seller, buyer = document.seller, document.buyer
    if VatCategory.STANDARD in categories:
        standard = [b for b in breakdown if b.category == VatCategory.STANDARD]
        if not standard:
            failed.append("BR-S-01")
        if not (_present(seller.vat_id) or _present(seller.tax_number)):
            failed.append("BR-S-02")
        if any(line.rate_basis_points <= 0 for line in document.lines if line.category == VatCategory.STANDARD):
            failed.append("BR-S-05")
        if any(a.rate_basis_points <= 0 for a in document.allowances if a.category == VatCategory.STANDARD):
            failed.append("BR-S-06")
        if any(b.taxable_cents != _category_sum(document, VatCategory.STANDARD, b.rate_basis_points)
               for b in standard):
            failed.append("BR-S-08")
        if any(b.tax_cents != vat_of(b.taxable_cents, b.rate_basis_points) for b in standard):
            failed.append("BR-S-09")
        if any(b.exemption_reason or b.exemption_code for b in standard):
            failed.append("BR-S-10")
    if VatCategory.REVERSE_CHARGE in categories:
        reverse = [b for b in breakdown if b.category == VatCategory.REVERSE_CHARGE]
        if len(reverse) != 1:
            failed.append("BR-AE-01")
        if not _present(seller.vat_id) or not _present(buyer.vat_id):
            failed.append("BR-AE-02")
        if any(line.rate_basis_points != 0 for line in document.lines
               if line.category == VatCategory.REVERSE_CHARGE):
            failed.append("BR-AE-05")
        if any(a.rate_basis_points != 0 for a in document.allowances if a.category == VatCategory.REVERSE_CHARGE):
            failed.append("BR-AE-06")
        if any(b.taxable_cents != _category_sum(document, VatCategory.REVERSE_CHARGE) for b in reverse):
            failed.append("BR-AE-08")
        if any(b.tax_cents != 0 for b in reverse):
            failed.append("BR-AE-09")
        if any(not (_present(b.exemption_reason) or _present(b.exemption_code)) for b in reverse):
            failed.append("BR-AE-10")
    if VatCategory.NOT_SUBJECT in categories:
        exempt = [b for b in breakdown if b.category == VatCategory.NOT_SUBJECT]
        if len(exempt) != 1:
            failed.append("BR-O-01")
        if _present(seller.vat_id) or _present(buyer.vat_id):
            failed.append("BR-O-02")
        if any(b.taxable_cents != _category_sum(document, VatCategory.NOT_SUBJECT) for b in exempt):
            failed.append("BR-O-08")
        if any(b.tax_cents != 0 for b in exempt):
            failed.append("BR-O-09")
        if any(not (_present(b.exemption_reason) or _present(b.exemption_code)) for b in exempt):
            failed.append("BR-O-10")
        if any(b.category != VatCategory.NOT_SUBJECT for b in breakdown):
            failed.append("BR-O-11")
        if any(line.category != VatCategory.NOT_SUBJECT for line in document.lines):
            failed.append("BR-O-12")
        if any(a.category != VatCategory.NOT_SUBJECT for a in document.allowances):
            failed.append("BR-O-13")
        if any(line.rate_basis_points != 0 for line in document.lines if line.category == VatCategory.NOT_SUBJECT):
            failed.append("BR-O-05")
    return failed


def check_xrechnung_rules(document: EInvoice) -> list[str]:
    """:func:`check_rules` plus the German CIUS (XRechnung 3.0) rules that are presence checks:
    BR-DE-1 (payment instructions), BR-DE-2/5/6/7 (seller contact with name, phone and email),
    BR-DE-3/4 and 8/9 (seller's and buyer's city and post code), BR-DE-15 (buyer reference),
    BR-DE-16 (seller VAT id or tax number), BR-DE-21 (specification identifier), BR-DE-23 (an IBAN
    for credit transfer), and Peppol's electronic addresses of seller and buyer (R020, R010)."""
    failed = check_rules(document)
    seller, buyer = document.seller, document.buyer
    if not _present(document.payment_means_code):
        failed.append("BR-DE-1")
    if not (_present(seller.contact_name) or _present(seller.contact_phone) or _present(seller.contact_email)):
        failed.append("BR-DE-2")
    for rule, value in (("BR-DE-3", seller.address.city if seller.address else None),
                        ("BR-DE-4", seller.address.postal_code if seller.address else None),
                        ("BR-DE-5", seller.contact_name), ("BR-DE-6", seller.contact_phone),
                        ("BR-DE-7", seller.contact_email),
                        ("BR-DE-8", buyer.address.city if buyer.address else None),
                        ("BR-DE-9", buyer.address.postal_code if buyer.address else None),
                        ("BR-DE-15", document.buyer_reference)):
        if not _present(value):
            failed.append(rule)
    if not (_present(seller.vat_id) or _present(seller.tax_number)):
        failed.append("BR-DE-16")
    if document.specification != XRECHNUNG:
        failed.append("BR-DE-21")
    if document.payment_means_code == "58" and not _present(document.payee_iban):
        failed.append("BR-DE-23")
    if not _present(seller.electronic_address):
        failed.append("PEPPOL-EN16931-R020")
    if not _present(buyer.electronic_address):
        failed.append("PEPPOL-EN16931-R010")
    return failed


def require_valid(document: EInvoice) -> EInvoice:
    """The document, or EInvoiceInvalid naming every failed rule (XRechnung's too when it is one)."""
    failed = check_xrechnung_rules(document) if document.specification == XRECHNUNG else check_rules(document)
    if failed:
        raise EInvoiceInvalid(document.number, failed)
    return document
