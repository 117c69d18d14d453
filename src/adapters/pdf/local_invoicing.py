"""``LegalInvoicing`` without an account anywhere: real PDFs rendered locally, stored on disk.

Given the invoice's EN 16931 terms (the core passes them), the PDF is a Factur-X / ZUGFeRD
document (EN 16931 profile): PDF/A-3 with the CII XML embedded (``factur-x.xml``) and the XMP
Factur-X extension. The XML is validated against the Factur-X XSD first; a document that does not
validate is not stored (EInvoiceInvalid), so nothing half-issued exists. Credit notes of such an
invoice are Factur-X credit notes (type 381) referencing it (BT-25).

Layout of ``storage_dir``: ``<document_id>.pdf`` and ``<document_id>.json`` (what credit notes need
to know about the document). Invoice documents are ``inv_<invoice id hex>``, credit notes
``cn_<hash of the idempotency key>``: both are derived from the caller's key, so a retry finds the
document made before. Files are written to a temporary name and renamed, the metadata last, so a
crash never leaves a half document that a retry would return.

One process per ``storage_dir``: the lock that serializes credit-note numbering is in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from adapters.einvoice.cii import to_cii
from adapters.einvoice.facturx_pdf import embed_facturx
from adapters.einvoice.xsd import render_valid
from adapters.pdf.rendering import Buyer, SellerDetails, buyer_from, render_credit_note, render_invoice
from billing_core import einvoice
from billing_core.billing_settings import InvoiceAddress
from billing_core.einvoice import EInvoice
from billing_core.errors import InvalidInput, NotFound
from billing_core.invoices import Invoice
from billing_core.organization import Organization
from billing_core.ports import Clock, LegalDocument

_DOCUMENT_ID = re.compile(r"^(inv|cn)_[0-9a-f]{32}$")


class StoredDocument(msgspec.Struct, kw_only=True):
    document_id: str
    kind: str
    """``invoice`` or ``credit_note``."""
    number: str
    currency_iso: str
    amount_cents: int
    """What the document is worth: the invoice's amount due, or the amount a credit note credits."""
    buyer: Buyer
    issued_at: datetime
    invoice_id: str | None = None
    credits_document_id: str | None = None
    credited_cents: int = 0
    credit_notes: list[str] = msgspec.field(default_factory=list)
    einvoice: EInvoice | None = None
    """The EN 16931 terms embedded in the PDF (None: a plain PDF, made without them)."""


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class LocalPdfLegalInvoicing:
    """The offline default legal-invoice adapter. Document numbers are the core's invoice numbers
    (credit notes: ``<invoice number>-CN<n>``)."""

    def __init__(self, storage_dir: Path, *, seller: SellerDetails, clock: Clock | None = None) -> None:
        self.storage_dir = storage_dir
        self.seller = seller
        self._clock: Clock = clock if clock is not None else _SystemClock()
        self._lock = threading.Lock()

    def issue(self, invoice: Invoice, organization: Organization, address: InvoiceAddress | None,
              billing_email: str | None, buyer_tax_id: str | None = None,
              terms: EInvoice | None = None) -> LegalDocument:
        """Render and store the invoice PDF (Factur-X when ``terms`` are given). Idempotent per
        invoice id: a second call returns the stored document unchanged, even if the address changed
        since. Raises EInvoiceInvalid, storing nothing, when the CII XML fails the XSD."""
        document_id = f"inv_{invoice.id.hex}"
        with self._lock:
            stored = self._load(document_id)
            if stored is None:
                number = invoice.number or document_id
                buyer = buyer_from(address, organization.name, billing_email, buyer_tax_id)
                xml = render_valid(to_cii, terms) if terms is not None else None
                pdf = render_invoice(invoice, seller=self.seller, buyer=buyer,
                                     po_number=address.po_number if address else None, number=number)
                issued = invoice.finalized_at or invoice.created_at
                if xml is not None:
                    pdf = embed_facturx(pdf, xml, number=number, seller_name=self.seller.name, issued=issued.date())
                stored = StoredDocument(document_id=document_id, kind="invoice", number=number,
                                        currency_iso=invoice.currency_iso, amount_cents=invoice.amount_due.cents,
                                        buyer=buyer, issued_at=issued, invoice_id=str(invoice.id), einvoice=terms)
                self._store(stored, pdf)
            return LegalDocument(document_id=document_id, number=stored.number)

    def pdf(self, document_id: str) -> bytes:
        """The stored PDF bytes. Raises NotFound for unknown (or malformed) document ids."""
        if not _DOCUMENT_ID.match(document_id) or self._load(document_id) is None:
            raise NotFound("legal document", document_id)
        try:
            return self._path(document_id, "pdf").read_bytes()
        except FileNotFoundError:
            raise NotFound("legal document", document_id) from None

    def credit_note(self, document_id: str, *, amount_cents: int, reason: str,
                    idempotency_key: str) -> LegalDocument:
        """A credit note for ``amount_cents`` (gross, the document's currency) of an invoice document.

        A credit of at least what remains of the invoice (its amount due minus earlier credit notes)
        cancels it in full and credits exactly that remainder. Idempotent per ``idempotency_key``.
        Raises NotFound for an unknown document, InvalidInput for a non-positive amount or a
        document that is itself a credit note.
        """
        if type(amount_cents) is not int or amount_cents <= 0:
            raise InvalidInput("amount_cents", "a credit note amount must be a positive number of cents")
        credit_id = "cn_" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
        with self._lock:
            existing = self._load(credit_id)
            if existing is not None:
                return LegalDocument(document_id=credit_id, number=existing.number)
            original = self._load(document_id) if _DOCUMENT_ID.match(document_id) else None
            if original is None:
                raise NotFound("legal document", document_id)
            if original.kind != "invoice":
                raise InvalidInput("document_id", "only invoices can be credited", code="not_an_invoice")
            remaining = max(original.amount_cents - original.credited_cents, 0)
            in_full = amount_cents >= remaining
            credited = remaining if in_full else amount_cents
            number = f"{original.number}-CN{len(original.credit_notes) + 1}"
            issued = self._clock.now()
            terms: EInvoice | None = None
            if original.einvoice is not None:
                # Fail closed as the invoice did: the credit note's terms and XML validate, or nothing is stored.
                terms = einvoice.require_valid(einvoice.credit_note(
                    original.einvoice, number=number, issued=issued.date(), amount_cents=credited, reason=reason))
                credited = terms.totals.payable_cents
            pdf = render_credit_note(seller=self.seller, buyer=original.buyer, number=number,
                                     invoice_number=original.number, issued=issued, amount_cents=credited,
                                     currency_iso=original.currency_iso, reason=reason, cancels_in_full=in_full)
            if terms is not None:
                xml = render_valid(to_cii, terms)
                pdf = embed_facturx(pdf, xml, number=number, seller_name=self.seller.name, issued=issued.date(),
                                    credit_note=True)
            note = StoredDocument(document_id=credit_id, kind="credit_note", number=number,
                                  currency_iso=original.currency_iso, amount_cents=credited, buyer=original.buyer,
                                  issued_at=issued, credits_document_id=document_id, einvoice=terms)
            self._store(note, pdf)
            original.credited_cents += credited
            original.credit_notes.append(credit_id)
            self._write(self._path(document_id, "json"), msgspec.json.encode(original))
            return LegalDocument(document_id=credit_id, number=number)

    # ------------------------------------------------------------------ storage

    def _path(self, document_id: str, suffix: str) -> Path:
        return self.storage_dir / f"{document_id}.{suffix}"

    def _load(self, document_id: str) -> StoredDocument | None:
        try:
            raw = self._path(document_id, "json").read_bytes()
        except FileNotFoundError:
            return None
        return msgspec.json.decode(raw, type=StoredDocument)

    def _store(self, document: StoredDocument, pdf: bytes) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self._write(self._path(document.document_id, "pdf"), pdf)
        self._write(self._path(document.document_id, "json"), msgspec.json.encode(document))

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(content)
        os.replace(temporary, path)
