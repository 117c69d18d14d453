"""Invoices: internal usage invoices (seed ``/invoices``) and legal invoices with their PDFs
(seed ``/organizations/{id}/invoices``), plus the Invoices page's "Payments due"."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery

from billing_core import services
from billing_core.errors import NotFound
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS, _spec
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, Cursor, Limit, OrganizationId, RuntimeDep, paginate


class InvoiceController(Controller):
    """Internal invoices of the token's organization: period, total and line items."""

    path = "/invoices"
    tags = ["invoices"]

    @get(sync_to_thread=True, responses=ERRORS, summary="List internal invoices, newest period first (seed endpoint)")
    def list_invoices(self, ctx: Ctx, actor: CurrentActor, limit: Limit = 50,
                      cursor: Cursor = None) -> s.Page[s.InvoiceOut]:
        page = services.invoicing.list_invoices(ctx, actor, organization_id=actor.organization_id, limit=limit,
                                                cursor=cursor)
        return s.Page(items=[presenters.invoice(i) for i in page.items], next_cursor=page.next_cursor)

    @get("/{invoice_id:uuid}", sync_to_thread=True, responses=ERRORS,
         summary="Show an internal invoice with its line items (seed endpoint)")
    def show(self, ctx: Ctx, actor: CurrentActor, invoice_id: FromPath[uuid.UUID]) -> s.InvoiceOut:
        invoice = services.invoicing.get_invoice(ctx, actor, organization_id=actor.organization_id,
                                                 invoice_id=invoice_id)
        return presenters.invoice(invoice)


# The PDF comes from the legal-invoicing service, which may be down.
PDF_RESPONSES = {200: ResponseSpec(data_container=bytes, media_type="application/pdf",
                                   description="The legal invoice as a PDF"), 503: MUTATION_ERRORS[503]}


XML_RESPONSES = {200: ResponseSpec(data_container=bytes, media_type="application/xml",
                                   description="The e-invoice XML (UBL 2.1 / XRechnung 3.0, or CII / Factur-X "
                                               "EN 16931), validated against its XSD and the EN 16931 rules"),
                 409: _spec("The invoice's data fails the named EN 16931 rules (code einvoice_invalid), e.g. "
                            "PEPPOL-EN16931-R010 for XRechnung without a billing email")}


class LegalInvoiceController(Controller):
    """Legally binding invoices (EasyBill, or the local PDF renderer offline)."""

    path = ORG + "/invoices"
    tags = ["invoices"]

    @get(sync_to_thread=True, responses=ERRORS, summary="List legal invoices (seed endpoint)")
    def list_legal(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
                   cursor: Cursor = None) -> s.Page[s.LegalInvoiceOut]:
        page = services.invoicing.list_invoices(ctx, actor, organization_id=organization_id, limit=limit,
                                                cursor=cursor)
        return s.Page(items=[presenters.legal_invoice(i) for i in page.items], next_cursor=page.next_cursor)

    @get("/download", sync_to_thread=True, responses={**ERRORS, **PDF_RESPONSES},
         summary="Download a legal invoice's PDF (seed endpoint)")
    def download(self, runtime: RuntimeDep, actor: CurrentActor, organization_id: OrganizationId,
                 invoice_id: FromQuery[uuid.UUID]) -> Response[bytes]:
        document = services.invoicing.legal_invoice_pdf(runtime.ctx, runtime.deliverers.legal, actor,
                                                        organization_id=organization_id, invoice_id=invoice_id)
        return Response(document.pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{document.filename}"',
                                 "Cache-Control": "private, no-store"})

    @get("/{invoice_id:uuid}/xml", sync_to_thread=True, responses={**ERRORS, **XML_RESPONSES},
         summary="Download a legal invoice as an EN 16931 e-invoice: XRechnung UBL or CII (Factur-X)")
    def download_xml(self, runtime: RuntimeDep, actor: CurrentActor, organization_id: OrganizationId,
                     invoice_id: FromPath[uuid.UUID], format: FromQuery[str] = "xrechnung-ubl") -> Response[bytes]:
        renderer = runtime.deliverers.einvoice
        if renderer is None:
            raise NotFound("e-invoice renderer", "xml")
        document = services.einvoicing.einvoice_xml(runtime.ctx, renderer, actor, organization_id=organization_id,
                                                    invoice_id=invoice_id, syntax=format)
        return Response(document.xml, media_type="application/xml",
                        headers={"Content-Disposition": f'attachment; filename="{document.filename}"',
                                 "Cache-Control": "private, no-store"})

    @get("/{invoice_id:uuid}", sync_to_thread=True, responses=ERRORS, summary="Show a legal invoice (seed endpoint)")
    def show_legal(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                   invoice_id: FromPath[uuid.UUID]) -> s.LegalInvoiceOut:
        invoice = services.invoicing.get_invoice(ctx, actor, organization_id=organization_id, invoice_id=invoice_id)
        return presenters.legal_invoice(invoice)


class PaymentsDueController(Controller):
    path = ORG + "/payments_due"
    tags = ["invoices"]

    @get(sync_to_thread=True, responses=ERRORS, summary="Collectible open invoices, oldest due first")
    def payments_due(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
                     cursor: Cursor = None) -> s.Page[s.LegalInvoiceOut]:
        due = services.invoicing.payments_due(ctx, actor, organization_id=organization_id)
        page = paginate(due, limit, cursor)
        return s.Page(items=[presenters.legal_invoice(i) for i in page.items], next_cursor=page.next_cursor)



