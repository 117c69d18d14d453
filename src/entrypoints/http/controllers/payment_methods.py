"""Payment methods on file (seed endpoints) and the setup intent for collecting a new one."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromPath, JSONBody

from billing_core import services
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.middleware import idempotent_request_id
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, Cursor, Limit, OrganizationId, paginate


class PaymentMethodController(Controller):
    path = ORG + "/payment_methods"
    tags = ["payment methods"]

    @get(sync_to_thread=True, responses=ERRORS, summary="List payment methods, default first (seed endpoint)")
    def list_methods(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
                     cursor: Cursor = None) -> s.Page[s.PaymentMethodOut]:
        methods = services.payment_methods.list_methods(ctx, actor, organization_id=organization_id)
        page = paginate(methods, limit, cursor)
        return s.Page(items=[presenters.payment_method(m) for m in page.items], next_cursor=page.next_cursor)

    @post("/create_and_attach", sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Attach a Stripe payment method (pm_...) collected with Stripe.js (seed endpoint)")
    def create_and_attach(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                          data: JSONBody[s.AttachPaymentMethodBody]) -> s.PaymentMethodOut:
        method = services.payment_methods.attach(ctx, actor, organization_id=organization_id,
                                                 provider_payment_method_id=data.payment_method_id)
        return presenters.payment_method(method)

    @post("/payment_intent", sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Create a setup intent for Stripe.js confirmSetup (seed endpoint)")
    def payment_intent(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                       request: Request[Any, Any, Any]) -> s.SetupIntentOut:
        secret = services.payment_methods.setup_intent(ctx, actor, organization_id=organization_id,
                                                       request_id=idempotent_request_id(request.scope))
        return s.SetupIntentOut(client_secret=secret)

    @put("/{payment_method_id:uuid}/set_default", sync_to_thread=True, responses=MUTATION_ERRORS,
         summary="Make a payment method the default (seed endpoint)")
    def set_default(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                    payment_method_id: FromPath[uuid.UUID]) -> s.PaymentMethodOut:
        method = services.payment_methods.set_default(ctx, actor, organization_id=organization_id,
                                                      payment_method_id=payment_method_id)
        return presenters.payment_method(method)

    @delete("/{payment_method_id:uuid}", sync_to_thread=True, responses=MUTATION_ERRORS,
            summary="Remove a payment method (seed endpoint)")
    def remove(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
               payment_method_id: FromPath[uuid.UUID]) -> None:
        services.payment_methods.remove(ctx, actor, organization_id=organization_id,
                                        payment_method_id=payment_method_id)
