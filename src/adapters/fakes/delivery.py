"""In-memory delivery adapters: legal invoices, mail, outbound webhooks, tax id checks.

Each records what it was asked to do (``issued``, ``sent``, ``deliveries``) so tests can assert
effects, and can be told to fail (``fail_next``) to exercise retries.
"""

from __future__ import annotations

import threading

from billing_core.billing_settings import InvoiceAddress
from billing_core.einvoice import EInvoice
from billing_core.errors import NotFound, ProviderUnavailable
from billing_core.invoices import Invoice
from billing_core.organization import Organization
from billing_core.ports import EmailMessage, LegalDocument, WebhookDelivery


class _Failing:
    def __init__(self) -> None:
        self.fail_next = 0
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ProviderUnavailable("simulated outage")


class InMemoryLegalInvoicing(_Failing):
    """Keeps documents by our invoice id, so a retried issue finds the first document."""

    def __init__(self) -> None:
        super().__init__()
        self.issued: dict[str, LegalDocument] = {}
        """invoice id → document"""
        self.pdfs: dict[str, bytes] = {}
        self.credit_notes: dict[str, LegalDocument] = {}
        self.documents: dict[str, EInvoice] = {}
        """invoice id → the EN 16931 terms it was issued with"""

    def issue(self, invoice: Invoice, organization: Organization, address: InvoiceAddress | None,
              billing_email: str | None, buyer_tax_id: str | None = None,
              terms: EInvoice | None = None) -> LegalDocument:
        with self._lock:
            self._maybe_fail()
            key = str(invoice.id)
            if key not in self.issued:
                if terms is not None:
                    self.documents[key] = terms
                doc = LegalDocument(document_id=f"doc-{len(self.issued) + 1}", number=invoice.number)
                self.issued[key] = doc
                self.pdfs[doc.document_id] = (f"%PDF-1.4 invoice {invoice.number} total {invoice.total.cents}"
                                              ).encode()
            return self.issued[key]

    def pdf(self, document_id: str) -> bytes:
        try:
            return self.pdfs[document_id]
        except KeyError:
            raise NotFound("legal document", document_id) from None

    def credit_note(self, document_id: str, *, amount_cents: int, reason: str,
                    idempotency_key: str) -> LegalDocument:
        with self._lock:
            self._maybe_fail()
            if document_id not in self.pdfs:
                raise NotFound("legal document", document_id)
            if idempotency_key not in self.credit_notes:
                note = LegalDocument(document_id=f"credit-{len(self.credit_notes) + 1}", number=None)
                self.credit_notes[idempotency_key] = note
                self.pdfs[note.document_id] = f"%PDF-1.4 credit note for {document_id} {amount_cents}".encode()
            return self.credit_notes[idempotency_key]


class InMemoryMailer(_Failing):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        with self._lock:
            self._maybe_fail()
            self.sent.append(message)


class InMemoryWebhookSender(_Failing):
    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[tuple[str, WebhookDelivery]] = []

    def send(self, *, url: str, secret: str, event: WebhookDelivery) -> int:
        with self._lock:
            self._maybe_fail()
            self.deliveries.append((url, event))
            return 200


class InMemoryTaxIdVerifier(_Failing):
    """Verifies every well-formed id unless it is listed in ``invalid``."""

    def __init__(self, invalid: set[str] | None = None) -> None:
        super().__init__()
        self.invalid = invalid or set()
        self.checked: list[tuple[str, str]] = []

    def verify(self, country: str, value: str) -> bool:
        with self._lock:
            self._maybe_fail()
            self.checked.append((country, value))
            return value not in self.invalid
