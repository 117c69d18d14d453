"""``LegalInvoicing`` over EasyBill: customers, invoices, credit notes and cancellations.

Decisions pinned here (and by tests against the local stub):

- **Amounts are integer cents**, ``single_price_net`` included ("150" = 1.50). A position carries
  the item's real quantity and unit price when the unit price is a whole number of cents and
  ``quantity × unit price`` is exactly the item's amount; otherwise (sub-cent metered prices) it is
  one position of quantity 1 priced at the item's amount, with quantity, unit and unit price in the
  description. Either way the positions add up to the invoice's subtotal to the cent.
- **Credits applied** (prepaid wallet credit) are a negative position "Applied credit balance" at
  the invoice's VAT rate, and are repeated in ``text``. The core computes VAT on the subtotal minus
  the credit, so this is the only layout in which EasyBill's own totals (net, VAT, gross) match
  ours: the document's ``amount`` is the invoice's amount due.
- **VAT**: ``vat_percent`` is the tax line's basis points / 100 (an int when whole, else an exact
  decimal); ``vat_option`` is null for domestic VAT, ``nStbUstID`` for reverse charge (the note goes
  into ``text``), ``nStb`` for buyers outside the EU.
- **Idempotency**: the customer is found by ``number`` = our organization id; documents by
  ``external_id`` = our invoice id (credit notes: the idempotency key) among the customer's
  documents of that type, matched here because EasyBill's list has no ``external_id`` filter.
  A draft left by an interrupted call is finalized, never duplicated.
- **E-invoices**: with ``einvoice_template`` the document is created with that ``pdf_template``
  (the e-invoice template set up in the EasyBill account: ZUGFeRD / XRechnung). What comes back is
  checked as our own documents are: the PDF must embed a CII XML (``factur-x.xml`` /
  ``zugferd-invoice.xml``) that passes the Factur-X XSD and whose amount due (BT-115) is the
  invoice's, else EInvoiceInvalid (the outbox dead-letters it; the EasyBill document exists but is
  neither linked nor emailed). *Unverified*: the ``pdf_template`` value EasyBill expects for its
  e-invoice templates and that ``GET /documents/{id}/pdf`` then embeds the XML; the stub pins this
  reading.
- **Credit notes**: a credit of at least the document's ``amount`` (the core asks for the invoice
  total when it voids) on a document without earlier credit notes cancels it with
  ``POST /documents/{id}/cancel`` (a STORNO document). Otherwise it is a CREDIT document with
  ``ref_id`` = the invoice, capped at what earlier credit notes left, one position whose net price
  is chosen so that net + VAT is exactly the credited gross amount.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from facturx import get_xml_from_pdf

from adapters.easybill.client import DEFAULT_BASE_URL, EasyBillClient, JsonObject
from adapters.einvoice.xsd import due_payable_cents, xsd_errors
from billing_core.billing_settings import InvoiceAddress
from billing_core.einvoice import EInvoice, EInvoiceInvalid
from billing_core.errors import AlreadyCredited, InvalidInput, InvoiceInconsistent, NotFound, ProviderUnavailable
from billing_core.invoices import Invoice, InvoiceItem
from billing_core.money import MICROS_PER_CENT, MICROS_PER_DOLLAR, Money
from billing_core.organization import Organization
from billing_core.ports import LegalDocument
from billing_core.tax import TaxLine, TaxTreatment

log = logging.getLogger(__name__)

VAT_OPTIONS: dict[TaxTreatment, str | None] = {
    TaxTreatment.DOMESTIC_VAT: None,
    TaxTreatment.REVERSE_CHARGE: "nStbUstID",
    TaxTreatment.NO_VAT: "nStb",
}
CREDIT_POSITION_TEXT = "Applied credit balance (prepaid credits)"


class EasyBillLegalInvoicing:
    """Legal documents issued by EasyBill. Construct it in the composition root; nothing happens
    on the network until a method is called."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL, client: httpx.Client | None = None,
                 max_attempts: int = 3, sleep: Callable[[float], None] = time.sleep,
                 einvoice_template: str | None = None) -> None:
        self._api = EasyBillClient(api_key, base_url=base_url, client=client, max_attempts=max_attempts,
                                   sleep=sleep)
        self.einvoice_template = einvoice_template
        """``pdf_template`` for e-invoices; None: EasyBill's default template (a plain PDF)."""

    def __repr__(self) -> str:
        return f"EasyBillLegalInvoicing(base_url={self._api.base_url!r})"

    def close(self) -> None:
        self._api.close()

    # ------------------------------------------------------------------ port

    def issue(self, invoice: Invoice, organization: Organization, address: InvoiceAddress | None,
              billing_email: str | None, buyer_tax_id: str | None = None,
              terms: EInvoice | None = None) -> LegalDocument:
        """Find or create the customer, find or create the INVOICE (``external_id`` = invoice id)
        and finalize it; EasyBill assigns its number at ``done``.

        Idempotent per invoice id. Raises ProviderUnavailable on 429/5xx/network errors (retry
        later), InvalidInput when EasyBill rejects the payload.
        """
        customer_id = self._ensure_customer(organization, address, billing_email, buyer_tax_id)
        document = self._find_document(customer_id, "INVOICE", str(invoice.id))
        if document is None:
            payload = invoice_payload(invoice, customer_id, address)
            if self.einvoice_template:
                payload["pdf_template"] = self.einvoice_template
            document = self._api.post("/documents", payload)
        document = self._finalize(document)
        if self.einvoice_template and terms is not None:
            self._check_einvoice(str(document["id"]), terms)
        amount = document.get("amount")
        if isinstance(amount, int) and amount != invoice.amount_due.cents:
            log.warning("EasyBill document %s totals %s cents, invoice %s is due %s cents", document.get("id"),
                        amount, invoice.id, invoice.amount_due.cents)
        return _legal(document)

    def _check_einvoice(self, document_id: str, terms: EInvoice) -> None:
        """The e-invoice EasyBill made: embedded CII, XSD-valid, with our amount due."""
        pdf = self.pdf(document_id)
        try:
            _, xml = get_xml_from_pdf(pdf, check_xsd=False, filenames=["factur-x.xml", "zugferd-invoice.xml"])
        except Exception as exc:  # the library raises bare Exceptions for unreadable PDFs
            raise EInvoiceInvalid(terms.number, ["FACTUR-X"], f"EasyBill's PDF is unreadable: {exc}") from exc
        if not xml:
            raise EInvoiceInvalid(terms.number, ["FACTUR-X"], "EasyBill's PDF carries no e-invoice XML")
        errors = xsd_errors(xml)
        if errors:
            raise EInvoiceInvalid(terms.number, ["XSD"], "; ".join(errors[:3]))
        due = due_payable_cents(xml)
        if due != terms.totals.payable_cents:
            raise EInvoiceInvalid(terms.number, ["BR-CO-16"], f"EasyBill's e-invoice is due {due} cents, "
                                  f"the ledger {terms.totals.payable_cents}")

    def pdf(self, document_id: str) -> bytes:
        """``GET /documents/{id}/pdf``. Raises NotFound for unknown ids."""
        path = f"/documents/{_id(document_id)}/pdf"
        try:
            return self._api.get_bytes(path, "application/pdf")
        except NotFound:
            raise NotFound("legal document", document_id) from None

    def credit_note(self, document_id: str, *, amount_cents: int, reason: str,
                    idempotency_key: str) -> LegalDocument:
        """Credit ``amount_cents`` (gross, in the document's currency) of an invoice document.

        At least the document's ``amount``, with no earlier credit note → cancellation (STORNO) of
        the whole document; otherwise a CREDIT document referencing it, for at most what earlier
        credit notes left. Idempotent per ``idempotency_key`` (and a document is cancelled at most
        once). Raises NotFound for an unknown document, InvalidInput for a non-positive amount, a
        document that is not an invoice or one that is fully credited already.
        """
        if type(amount_cents) is not int or amount_cents <= 0:
            raise InvalidInput("amount_cents", "a credit note amount must be a positive number of cents")
        original = self._document(document_id)
        if original.get("type") != "INVOICE":
            raise InvalidInput("document_id", "only invoices can be credited", code="not_an_invoice")
        credits = self._credits_of(original)
        existing = next((c for c in credits if c.get("external_id") == idempotency_key), None)
        if existing is not None:
            return _legal(self._finalize(existing))
        if original.get("cancel_id"):
            return _legal(self._finalize(self._document(str(original["cancel_id"]))))
        amount = int(original.get("amount") or 0)
        if not credits and amount_cents >= amount:
            return _legal(self._finalize(self._cancel(original)))
        remaining = amount - sum(int(c.get("amount") or 0) for c in credits)
        if remaining <= 0:
            raise AlreadyCredited("amount_cents", f"document {document_id} is fully credited already")
        credited = min(amount_cents, remaining)
        created = self._api.post("/documents", credit_payload(original, credited, reason, idempotency_key))
        return _legal(self._finalize(created))

    # ------------------------------------------------------------------ steps

    def _ensure_customer(self, organization: Organization, address: InvoiceAddress | None,
                         billing_email: str | None, buyer_tax_id: str | None = None) -> int:
        wanted = customer_payload(organization, address, billing_email, buyer_tax_id)
        found = next((c for c in self._api.list_all("/customers", {"number": wanted["number"]})
                      if c.get("number") == wanted["number"]), None)
        if found is None:
            return int(self._api.post("/customers", wanted)["id"])
        if any(found.get(key) != value for key, value in wanted.items()):
            self._api.put(f"/customers/{int(found['id'])}", wanted)
        return int(found["id"])

    def _credits_of(self, original: JsonObject) -> list[JsonObject]:
        """The CREDIT documents that reference ``original`` (``ref_id``)."""
        params: dict[str, str | int] = {"customer_id": str(original.get("customer_id")), "type": "CREDIT"}
        return [d for d in self._api.list_all("/documents", params) if d.get("ref_id") == original.get("id")]

    def _find_document(self, customer_id: object, document_type: str, external_id: str) -> JsonObject | None:
        params: dict[str, str | int] = {"customer_id": str(customer_id), "type": document_type}
        return next((d for d in self._api.list_all("/documents", params) if d.get("external_id") == external_id),
                    None)

    def _document(self, document_id: str) -> JsonObject:
        try:
            return self._api.get(f"/documents/{_id(document_id)}")
        except NotFound:
            raise NotFound("legal document", document_id) from None

    def _finalize(self, document: JsonObject) -> JsonObject:
        if not document.get("is_draft"):
            return document
        done = self._api.put(f"/documents/{int(document['id'])}/done")
        return done if done.get("id") is not None else self._api.get(f"/documents/{int(document['id'])}")

    def _cancel(self, original: JsonObject) -> JsonObject:
        result = self._api.post(f"/documents/{int(original['id'])}/cancel")
        if result.get("type") == "STORNO" and result.get("id") is not None:
            return result
        cancel_id = self._api.get(f"/documents/{int(original['id'])}").get("cancel_id")
        if not cancel_id:
            raise ProviderUnavailable(f"EasyBill did not cancel document {original['id']}")
        return self._api.get(f"/documents/{int(cancel_id)}")


# ---------------------------------------------------------------------- payloads


def customer_payload(organization: Organization, address: InvoiceAddress | None,
                     billing_email: str | None, buyer_tax_id: str | None = None) -> JsonObject:
    """The fields we own on the EasyBill customer; ``number`` is our organization id."""
    return {
        "number": str(organization.id),
        "company_name": address.company_name if address else organization.name,
        "street": address.address_1 if address else None,
        "suffix_1": address.address_2 if address else None,
        "suffix_2": address.region if address else None,
        "zip_code": address.postal_code if address else None,
        "city": address.city if address else None,
        "country": address.country if address else None,
        "emails": [billing_email] if billing_email else [],
        "vat_identifier": buyer_tax_id,
    }


def invoice_payload(invoice: Invoice, customer_id: int, address: InvoiceAddress | None) -> JsonObject:
    issued = (invoice.finalized_at or invoice.created_at).date()
    payload: JsonObject = {
        "type": "INVOICE",
        "customer_id": customer_id,
        "external_id": str(invoice.id),
        "currency": invoice.currency_iso,
        "document_date": issued.isoformat(),
        "title": f"Invoice {invoice.number}" if invoice.number else "Invoice",
        "text": invoice_text(invoice, address),
        "vat_option": VAT_OPTIONS[invoice.tax.treatment],
        "items": positions(invoice),
    }
    if invoice.due_at is not None:
        payload["due_in_days"] = max((invoice.due_at.date() - issued).days, 0)
    return payload


def invoice_text(invoice: Invoice, address: InvoiceAddress | None) -> str:
    last_day = (invoice.period_end - timedelta(microseconds=1)).date()  # periods end exclusively
    lines = [f"Usage from {invoice.period_start.date().isoformat()} to {last_day.isoformat()}."]
    if invoice.number:
        lines.append(f"Our invoice number: {invoice.number}")
    if address is not None and address.po_number:
        lines.append(f"PO number: {address.po_number}")
    if invoice.credit_applied_cents:
        credit = Money(invoice.credit_applied_cents, invoice.currency_iso).format()
        lines.append(f"Credits applied: {credit} of prepaid credit balance (negative position).")
    if invoice.tax.note:
        lines.append(invoice.tax.note)
    lines.append(f"Reference: {invoice.id}")
    return "\n".join(lines)


def positions(invoice: Invoice) -> list[JsonObject]:
    """One position per item, then the applied credit; they add up to subtotal − credit in cents."""
    vat = vat_percent(invoice.tax)
    result = [_position(index, item, vat, invoice.currency_iso) for index, item in enumerate(invoice.items, 1)]
    if invoice.credit_applied_cents:
        result.append({"type": "POSITION", "position": len(result) + 1, "description": CREDIT_POSITION_TEXT,
                       "quantity": 1, "single_price_net": -invoice.credit_applied_cents, "vat_percent": vat})
    net = sum(int(p["quantity"]) * int(p["single_price_net"]) for p in result)
    if net != invoice.subtotal_cents - invoice.credit_applied_cents:
        raise InvoiceInconsistent("invoice", f"invoice {invoice.id} items do not add up to its subtotal")
    return result


def _position(index: int, item: InvoiceItem, vat: int | Decimal, currency_iso: str) -> JsonObject:
    project = f"project {item.project_id}" if item.project_id is not None else "all projects"
    label = f"{item.product} ({project})"
    unit_cents, rest = divmod(item.unit_price_micros, MICROS_PER_CENT)
    if rest == 0 and item.quantity * unit_cents == item.amount.cents:
        return {"type": "POSITION", "position": index, "description": label, "quantity": item.quantity,
                "unit": item.unit, "single_price_net": unit_cents, "vat_percent": vat}
    detail = f"{item.quantity:,} {item.unit} at {unit_price_text(item.unit_price_micros, currency_iso)} per {item.unit}"
    return {"type": "POSITION", "position": index, "description": f"{label}\n{detail}", "quantity": 1,
            "single_price_net": item.amount.cents, "vat_percent": vat}


def unit_price_text(micros: int, currency_iso: str) -> str:
    whole, rest = divmod(micros, MICROS_PER_DOLLAR)
    return f"{currency_iso} {whole:,}.{f'{rest:06d}'.rstrip('0').ljust(2, '0')}"


def vat_percent(tax: TaxLine) -> int | Decimal:
    """Basis points to EasyBill's percent: 1900 → 19, 1950 → Decimal("19.5"), exact."""
    whole, rest = divmod(tax.rate_basis_points, 100)
    return whole if rest == 0 else Decimal(tax.rate_basis_points).scaleb(-2).normalize()


def credit_payload(original: JsonObject, amount_cents: int, reason: str, idempotency_key: str) -> JsonObject:
    rate = _document_rate(original)
    net = net_for_gross(amount_cents, rate)
    title = f"Credit note for invoice {original.get('number') or original['id']}"
    return {
        "type": "CREDIT",
        "customer_id": original.get("customer_id"),
        "ref_id": int(original["id"]),
        "external_id": idempotency_key,
        "currency": original.get("currency") or "EUR",
        "title": title,
        "text": reason,
        "vat_option": original.get("vat_option"),
        "items": [{"type": "POSITION", "position": 1, "description": reason or title, "quantity": 1,
                   "single_price_net": net, "vat_percent": int(rate) if rate == rate.to_integral_value() else rate}],
    }


def _document_rate(document: JsonObject) -> Decimal:
    if document.get("vat_option"):
        return Decimal(0)
    items: list[Any] = document.get("items") or []
    for item in items:
        if isinstance(item, dict) and item.get("vat_percent") is not None:
            return Decimal(str(item["vat_percent"]))
    return Decimal(0)


def vat_cents(net_cents: int, rate_percent: Decimal) -> int:
    """VAT on a net amount, half-up to the cent (as EasyBill rounds a document's VAT)."""
    return int((Decimal(net_cents) * rate_percent / 100).to_integral_value(rounding=ROUND_HALF_UP))


def net_for_gross(gross_cents: int, rate_percent: Decimal) -> int:
    """The net price whose net + VAT is exactly ``gross_cents`` (the nearest when none is)."""
    if rate_percent == 0:
        return gross_cents
    base = int((Decimal(gross_cents) * 100 / (100 + rate_percent)).to_integral_value(rounding=ROUND_HALF_UP))
    for candidate in (base, base - 1, base + 1):
        if candidate + vat_cents(candidate, rate_percent) == gross_cents:
            return candidate
    return base


def _id(document_id: str) -> int:
    try:
        value = int(document_id)
    except (TypeError, ValueError):
        raise NotFound("legal document", document_id) from None
    if value <= 0:
        raise NotFound("legal document", document_id)
    return value


def _legal(document: JsonObject) -> LegalDocument:
    number = document.get("number")
    return LegalDocument(document_id=str(document["id"]), number=str(number) if number else None)
