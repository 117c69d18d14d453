"""Structured e-invoices: EN 16931 documents as CII (Factur-X / ZUGFeRD) and UBL (XRechnung) XML,
validated against the official XSDs, and Factur-X PDF/A-3 embedding."""

from __future__ import annotations

from adapters.einvoice.cii import to_cii
from adapters.einvoice.ubl import to_ubl
from adapters.einvoice.xsd import require_xsd_valid
from billing_core.einvoice import EInvoice
from billing_core.ports import EInvoiceSyntax


class XmlEInvoiceRenderer:
    """:class:`~billing_core.ports.EInvoiceRenderer` with drafthorse (CII) and lxml (UBL)."""

    def render(self, document: EInvoice, syntax: EInvoiceSyntax) -> bytes:
        xml = to_cii(document) if syntax == EInvoiceSyntax.CII else to_ubl(document)
        return require_xsd_valid(xml, document.number)


__all__ = ["XmlEInvoiceRenderer", "to_cii", "to_ubl"]
