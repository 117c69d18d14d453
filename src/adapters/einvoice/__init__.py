"""Structured e-invoices: EN 16931 documents as CII (Factur-X / ZUGFeRD) and UBL (XRechnung) XML,
validated against the official XSDs, and Factur-X PDF/A-3 embedding."""

from __future__ import annotations

from adapters.einvoice.cii import to_cii
from adapters.einvoice.ubl import to_ubl
from adapters.einvoice.xsd import render_valid
from billing_core.einvoice import EInvoice
from billing_core.ports import EInvoiceSyntax


class XmlEInvoiceRenderer:
    """:class:`~billing_core.ports.EInvoiceRenderer` with drafthorse (CII) and lxml (UBL)."""

    def render(self, document: EInvoice, syntax: EInvoiceSyntax) -> bytes:
        return render_valid(to_cii if syntax == EInvoiceSyntax.CII else to_ubl, document)


__all__ = ["XmlEInvoiceRenderer", "to_cii", "to_ubl"]
