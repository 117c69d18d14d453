"""Invoice and credit-note PDFs with fpdf2's core fonts.

Core fonts speak latin-1 only, so every text goes through :func:`latin1`, which keeps what latin-1
has (``Müller``), transliterates what it can (``Łódź`` → ``Lodz``, ``—`` → ``-``, ``€`` → ``EUR``)
and writes ``?`` for the rest. Amounts are formatted from integer cents and micro-units, never floats.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec
from fpdf import FPDF
from fpdf.enums import Align, OutputIntentSubType, XPos, YPos
from fpdf.output import PDFICCProfile
from PIL import ImageCms

from billing_core.billing_settings import InvoiceAddress
from billing_core.invoices import Invoice
from billing_core.money import MICROS_PER_DOLLAR, Money
from billing_core.tax import TaxTreatment

_REPLACEMENTS = {
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u201a": ",", "\u201c": '"',
    "\u201d": '"', "\u201e": '"', "\u2026": "...", "\u2022": "-", "\u20ac": "EUR", "\u2122": "(TM)",
    "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0152": "OE", "\u0153": "oe", "\u0131": "i",
    "\u00a0": " ", "\u200b": "", "\u2009": " ", "\u202f": " ",
}

PAGE_WIDTH_MM = 210
MARGIN_MM = 15
CONTENT_WIDTH_MM = PAGE_WIDTH_MM - 2 * MARGIN_MM


class SellerDetails(msgspec.Struct, frozen=True, kw_only=True):
    """Who issues the documents: printed in the header and the footer of every PDF."""

    name: str
    address_1: str
    address_2: str | None = None
    postal_code: str
    city: str
    country: str
    vat_id: str | None = None
    email: str | None = None
    bank_details: str | None = None
    """One line such as ``IBAN DE89 3704 0044 0532 0130 00 · BIC COBADEFFXXX``."""


class Buyer(msgspec.Struct, frozen=True, kw_only=True):
    """The buyer as printed on a document (kept with it, so credit notes print the same block)."""

    lines: list[str]
    email: str | None = None


def latin1(text: str) -> str:
    """``text`` made printable with core fonts (latin-1), without losing more than needed."""
    out: list[str] = []
    for char in text:
        if char in _REPLACEMENTS:
            out.append(_REPLACEMENTS[char])
            continue
        if ord(char) < 256:
            out.append(char if char.isprintable() or char == "\n" else " ")
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        kept = "".join(c for c in decomposed if ord(c) < 256 and not unicodedata.combining(c))
        out.append(kept or "?")
    return "".join(out)


def format_cents(cents: int, currency_iso: str) -> str:
    return Money(cents, currency_iso).format()


def format_unit_price(micros: int, currency_iso: str) -> str:
    """Micro-units with as many decimals as needed, at least two: ``USD 0.00002``, ``USD 1.50``."""
    sign = "-" if micros < 0 else ""
    whole, rest = divmod(abs(micros), MICROS_PER_DOLLAR)
    decimals = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{currency_iso} {whole:,}.{decimals}"


def format_rate(basis_points: int) -> str:
    """1900 → ``19%``, 1950 → ``19.5%``."""
    whole, rest = divmod(basis_points, 100)
    return f"{whole}.{f'{rest:02d}'.rstrip('0')}%" if rest else f"{whole}%"


def last_day(period_end: datetime) -> str:
    """Periods end exclusively (``hour < end``): print the last day they include."""
    return (period_end - timedelta(microseconds=1)).date().isoformat()


def buyer_from(address: InvoiceAddress | None, fallback_name: str, billing_email: str | None,
               buyer_tax_id: str | None = None) -> Buyer:
    vat_line = f"VAT ID: {buyer_tax_id}" if buyer_tax_id else ""
    if address is None:
        return Buyer(lines=[line for line in (fallback_name, vat_line) if line], email=billing_email)
    city_line = " ".join(part for part in (address.postal_code, address.city) if part)
    lines = [address.company_name, address.address_1, address.address_2 or "", city_line,
             address.region or "", address.country, vat_line]
    return Buyer(lines=[line for line in lines if line], email=billing_email)


class _Page:
    """A thin writer over FPDF: every string goes through :func:`latin1`."""

    def __init__(self, title: str, created: datetime) -> None:
        self.pdf = FPDF(orientation="portrait", unit="mm", format="A4")
        self.pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.pdf.set_auto_page_break(auto=True, margin=20)
        self.pdf.set_title(latin1(title))
        self.pdf.set_creation_date(created)
        # PDF/A-3 (Factur-X) wants an output intent: sRGB, the profile made by Pillow's littleCMS.
        self.pdf.add_output_intent(OutputIntentSubType.PDFA, "sRGB IEC61966-2.1", "sRGB IEC61966-2.1",
                                   "http://www.color.org",
                                   PDFICCProfile(contents=_srgb_profile(), n=3, alternate="DeviceRGB"),
                                   "sRGB IEC61966-2.1")
        self.pdf.add_page()

    def font(self, size: float, style: str = "") -> None:
        self.pdf.set_font("Helvetica", style=style, size=size)

    def line(self, text: str, *, size: float = 10, style: str = "", align: Align = Align.L,
             height: float = 5, width: float = 0) -> None:
        self.font(size, style)
        self.pdf.cell(width, height, latin1(text), align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def paragraph(self, text: str, *, size: float = 9, style: str = "") -> None:
        self.font(size, style)
        self.pdf.multi_cell(0, 4.5, latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def gap(self, mm: float = 4) -> None:
        self.pdf.ln(mm)

    def header(self, seller: SellerDetails, title: str, facts: Sequence[tuple[str, str]]) -> None:
        """Seller block on the left, the document title and its facts on the right."""
        top = self.pdf.get_y()
        self.line(seller.name, size=14, style="B", height=7)
        for text in _seller_lines(seller):
            self.line(text, size=9, height=4.5)
        left_bottom = self.pdf.get_y()
        self.pdf.set_xy(MARGIN_MM + CONTENT_WIDTH_MM / 2, top)
        self.font(16, "B")
        self.pdf.cell(CONTENT_WIDTH_MM / 2, 8, latin1(title), align=Align.R, new_x=XPos.LEFT, new_y=YPos.NEXT)
        for label, value in facts:
            self.pdf.set_x(MARGIN_MM + CONTENT_WIDTH_MM / 2)
            self.font(9, "B")
            self.pdf.cell(CONTENT_WIDTH_MM / 4, 5, latin1(label), align=Align.R)
            self.font(9)
            self.pdf.cell(CONTENT_WIDTH_MM / 4, 5, latin1(value), align=Align.R, new_x=XPos.LMARGIN,
                          new_y=YPos.NEXT)
        self.pdf.set_y(max(left_bottom, self.pdf.get_y()) + 6)

    def buyer(self, buyer: Buyer, label: str = "Bill to") -> None:
        self.line(label, size=8, style="B", height=4.5)
        for index, text in enumerate(buyer.lines):
            self.line(text, size=11 if index == 0 else 10, style="B" if index == 0 else "", height=5)
        if buyer.email:
            self.line(buyer.email, size=9, height=4.5)
        self.gap(5)

    def totals(self, rows: Sequence[tuple[str, str, bool]]) -> None:
        """Label/amount rows, right-aligned; bold rows get a rule above them."""
        label_width, amount_width = 60.0, 40.0
        start = MARGIN_MM + CONTENT_WIDTH_MM - label_width - amount_width
        for label, amount, bold in rows:
            if bold:
                y = self.pdf.get_y() + 0.5
                self.pdf.line(start, y, MARGIN_MM + CONTENT_WIDTH_MM, y)
                self.pdf.ln(1.5)
            self.pdf.set_x(start)
            self.font(10, "B" if bold else "")
            self.pdf.cell(label_width, 6, latin1(label), align=Align.L)
            self.pdf.cell(amount_width, 6, latin1(amount), align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def footer(self, seller: SellerDetails) -> None:
        self.gap(8)
        parts = [seller.name]
        if seller.vat_id:
            parts.append(f"VAT ID {seller.vat_id}")
        if seller.email:
            parts.append(seller.email)
        self.line(" | ".join(parts), size=8, align=Align.C, height=4)
        if seller.bank_details:
            self.line(seller.bank_details, size=8, align=Align.C, height=4)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


@functools.cache
def _srgb_profile() -> bytes:
    profile: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return profile


def _seller_lines(seller: SellerDetails) -> list[str]:
    lines = [seller.address_1, seller.address_2 or "", f"{seller.postal_code} {seller.city}", seller.country]
    if seller.vat_id:
        lines.append(f"VAT ID: {seller.vat_id}")
    return [line for line in lines if line]


def render_invoice(invoice: Invoice, *, seller: SellerDetails, buyer: Buyer, po_number: str | None,
                   number: str) -> bytes:
    """The invoice PDF: header, buyer, reference facts, items, totals, tax notes."""
    currency = invoice.currency_iso
    issued = invoice.finalized_at or invoice.created_at
    facts = [("Invoice number", number), ("Issue date", issued.date().isoformat()),
             ("Service period", f"{invoice.period_start.date().isoformat()} to {last_day(invoice.period_end)}")]
    if invoice.due_at is not None:
        facts.append(("Due date", invoice.due_at.date().isoformat()))
    if po_number:
        facts.append(("PO number", po_number))
    page = _Page(f"Invoice {number}", issued)
    page.header(seller, "INVOICE", facts)
    page.buyer(buyer)

    rows = [("Product", "Project", "Quantity", "Unit", "Unit price", "Amount")]
    for item in invoice.items:
        rows.append((item.product, "All projects" if item.project_id is None else str(item.project_id)[:8],
                     f"{item.quantity:,}", item.unit, format_unit_price(item.unit_price_micros, currency),
                     format_cents(item.amount.cents, currency)))
    page.font(9)
    with page.pdf.table(col_widths=(44, 24, 26, 20, 32, 34), text_align=("LEFT", "LEFT", "RIGHT", "LEFT",
                                                                          "RIGHT", "RIGHT"),
                        line_height=6, padding=(0.5, 1.5), first_row_as_headings=True) as table:
        for row_values in rows:
            table_row = table.row()
            for value in row_values:
                table_row.cell(latin1(value))
    if not invoice.items:
        page.line("No billable usage in this period.", size=9)
    page.gap(4)

    tax = invoice.tax
    taxable = invoice.subtotal_cents - invoice.credit_applied_cents
    totals: list[tuple[str, str, bool]] = [("Subtotal", format_cents(invoice.subtotal_cents, currency), False)]
    if invoice.credit_applied_cents:
        totals.append(("Credits applied", format_cents(-invoice.credit_applied_cents, currency), False))
        totals.append(("Net amount", format_cents(taxable, currency), False))
    if tax.treatment == TaxTreatment.REVERSE_CHARGE:
        tax_label = "VAT 0% (reverse charge)"
    elif tax.treatment == TaxTreatment.NO_VAT:
        tax_label = "VAT 0% (not taxable)"
    else:
        tax_label = f"VAT {format_rate(tax.rate_basis_points)}"
    totals.append((tax_label, format_cents(tax.tax_cents, currency), False))
    totals.append(("Amount due", format_cents(invoice.amount_due.cents, currency), True))
    page.totals(totals)
    page.gap(6)

    if invoice.credit_applied_cents:
        page.paragraph(f"Credits applied: {format_cents(invoice.credit_applied_cents, currency)} of prepaid credit "
                       "balance was applied to this invoice before the amount due was finalized.")
    if tax.note:
        page.paragraph(tax.note, style="B")
    if invoice.includes_earlier_usage:
        page.paragraph("This invoice also includes usage from earlier periods that had not been invoiced yet.")
    page.paragraph(f"Reference: {invoice.id}")
    page.footer(seller)
    return page.output()


def render_credit_note(*, seller: SellerDetails, buyer: Buyer, number: str, invoice_number: str,
                       issued: datetime, amount_cents: int, currency_iso: str, reason: str,
                       cancels_in_full: bool) -> bytes:
    """A credit note (or full cancellation) against an invoice."""
    title = "CANCELLATION" if cancels_in_full else "CREDIT NOTE"
    page = _Page(f"Credit note {number}", issued)
    page.header(seller, title, [("Credit note number", number), ("Issue date", issued.date().isoformat()),
                                ("For invoice", invoice_number)])
    page.buyer(buyer)
    if cancels_in_full:
        page.paragraph(f"This document cancels invoice {invoice_number} in full.")
    else:
        page.paragraph(f"This document credits part of invoice {invoice_number}.")
    page.paragraph(f"Reason: {reason}")
    page.gap(4)
    page.totals([("Amount credited", format_cents(amount_cents, currency_iso), True)])
    page.footer(seller)
    return page.output()
