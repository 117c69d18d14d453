"""Refund requests and the payments one can be asked for."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from billing_core import services
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.middleware import idempotent_request_id
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, Cursor, Limit, OrganizationId, paginate


class RefundsController(Controller):
    path = ORG
    tags = ["refunds"]

    @get("/payments", sync_to_thread=True, responses=ERRORS,
         summary="Payments, newest first (to pick one to refund)")
    def payments(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
                 cursor: Cursor = None) -> s.Page[s.PaymentOut]:
        page = services.refunds.list_payments(ctx, actor, organization_id=organization_id, limit=limit,
                                              cursor=cursor)
        return s.Page(items=[presenters.payment(p) for p in page.items], next_cursor=page.next_cursor)

    @get("/refunds", sync_to_thread=True, responses=ERRORS, summary="Refund requests, newest first")
    def list_refunds(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
                     cursor: Cursor = None) -> s.Page[s.RefundOut]:
        requests = services.refunds.list_refunds(ctx, actor, organization_id=organization_id)
        page = paginate(requests, limit, cursor)
        currency = ctx.catalog.currency
        return s.Page(items=[presenters.refund(r, currency) for r in page.items], next_cursor=page.next_cursor)

    @post("/refunds", sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Request a refund: approved (amount, expected by) or denied (why), per plan terms")
    def request_refund(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                       data: JSONBody[s.RefundBody], request: Request[Any, Any, Any]) -> s.RefundOut:
        # The Idempotency-Key names the refund request: a retry after a 503 (provider unreachable,
        # answer not stored for replay) finishes the recorded request with the same provider key.
        request_id = idempotent_request_id(request.scope)
        refund = services.refunds.request_refund(ctx, actor, organization_id=organization_id,
                                                 payment_id=data.payment_id, reason=data.reason,
                                                 request_id=request_id)
        return presenters.refund(refund, ctx.catalog.currency)
