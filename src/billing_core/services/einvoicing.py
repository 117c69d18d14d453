"""E-invoices (EN 16931): the terms of an invoice from the ledger and the buyer's billing details,
and the XML download beside the PDF (``GET /organizations/{id}/invoices/{invoice_id}/xml``).

The same terms are what the outbox checks before a legal invoice is issued (fail closed, see
:mod:`billing_core.services.dispatch`) and what the Factur-X PDF embeds."""

from __future__ import annotations

import uuid

import msgspec

from billing_core.billing_settings import TaxRegistrationStatus
from billing_core.einvoice import EInvoice, as_xrechnung, from_invoice, require_valid
from billing_core.errors import InvalidInput, NotFound
from billing_core.invoices import Invoice
from billing_core.permissions import Actor
from billing_core.ports import EInvoiceRenderer, EInvoiceSyntax
from billing_core.services.context import BillingContext
from billing_core.services.invoicing import get_invoice


def invoice_terms(ctx: BillingContext, invoice: Invoice) -> tuple[EInvoice, str | None]:
    """The invoice's EN 16931 terms (unchecked) and the buyer's verified VAT id: the one of the
    address's country first."""
    with ctx.uow() as uow:
        org = uow.organizations.get(invoice.organization_id)
        settings = uow.settings.get(invoice.organization_id)
        registrations = uow.settings.tax_registrations(invoice.organization_id)
    country = settings.address.country if settings.address else None
    verified = sorted((r for r in registrations if r.status == TaxRegistrationStatus.VERIFIED),
                      key=lambda r: r.country != country)
    buyer_tax_id = verified[0].value if verified else None
    terms = from_invoice(invoice, organization=org, address=settings.address, billing_email=settings.billing_email,
                         buyer_tax_id=buyer_tax_id, seller=ctx.seller)
    return terms, buyer_tax_id


class EInvoiceXml(msgspec.Struct, frozen=True, kw_only=True):
    invoice: Invoice
    xml: bytes
    filename: str


def parse_syntax(value: str) -> EInvoiceSyntax:
    try:
        return EInvoiceSyntax(value)
    except ValueError:
        raise InvalidInput("format", "format must be one of " + ", ".join(s.value for s in EInvoiceSyntax),
                           code="invalid_format") from None


def einvoice_xml(ctx: BillingContext, renderer: EInvoiceRenderer, actor: Actor, *, organization_id: uuid.UUID,
                 invoice_id: uuid.UUID, syntax: str) -> EInvoiceXml:
    """The issued invoice as e-invoice XML (permissions of the PDF: VIEW_BILLING), rendered from the
    terms kept when the legal invoice was issued: the buyer's address, tax id and the amounts as the
    invoice states them, whatever changed since (for an invoice issued before the terms were kept,
    they are built from current data). NotFound until the legal invoice is issued; EInvoiceInvalid
    (naming the rules) when the terms do not validate, which for XRechnung adds the German CIUS
    rules (BR-DE-*)."""
    chosen = parse_syntax(syntax)
    invoice = get_invoice(ctx, actor, organization_id=organization_id, invoice_id=invoice_id)
    if invoice.legal_document_id is None:
        raise NotFound("legal invoice document", invoice_id)
    with ctx.uow() as uow:
        kept = uow.invoices.issued_einvoice(organization_id, invoice_id)
    terms = kept if kept is not None else invoice_terms(ctx, invoice)[0]
    if chosen == EInvoiceSyntax.XRECHNUNG_UBL:
        terms = as_xrechnung(terms, customer_number=str(organization_id))
    xml = renderer.render(require_valid(terms), chosen)
    suffix = "xrechnung" if chosen == EInvoiceSyntax.XRECHNUNG_UBL else "cii"
    return EInvoiceXml(invoice=invoice, xml=xml, filename=f"invoice-{invoice.number or invoice.id}-{suffix}.xml")
