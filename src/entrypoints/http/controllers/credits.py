"""Adding credits: credit packs (primary owner, active subscription) and add-credits ($5-$5,000)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from billing_core import services
from billing_core.errors import InvalidInput, PaymentDeclined
from billing_core.money import parse_dollars
from billing_core.payments import Payment, PaymentStatus
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.middleware import idempotent_request_id
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, OrganizationId

CRYPTO = "crypto"
CARD_METHODS = frozenset({"card", "saved"})


def amount_micros(data: s.AddCreditsBody) -> int:
    """``amount`` (dollars, decimal string) or ``amount_micros``: exactly one of them."""
    if (data.amount is None) == (data.amount_micros is None):
        raise InvalidInput("amount", "give either amount (dollars, e.g. \"25.00\") or amount_micros",
                           code="invalid_amount")
    if data.amount is not None:
        return parse_dollars(data.amount, field="amount")
    assert data.amount_micros is not None
    return data.amount_micros


def settled(payment: Payment) -> Payment:
    """A declined charge is a 402 (the card's message as detail); other outcomes are the payment."""
    if payment.status == PaymentStatus.FAILED:
        raise PaymentDeclined(payment.failure_message or "the payment failed")
    return payment


class CreditsController(Controller):
    path = ORG
    tags = ["credits"]

    @get("/credit_packs", sync_to_thread=True, responses=ERRORS,
         summary="Credit packs with the button state and message for this viewer")
    def credit_packs(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> s.CreditPackOfferOut:
        offer = services.payments.credit_packs(ctx, actor, organization_id=organization_id)
        return presenters.pack_offer(offer, ctx.catalog.currency)

    @post("/credit_packs/purchase", sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Buy a credit pack (primary owner, active subscription)")
    def purchase_pack(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                      data: JSONBody[s.PackPurchaseBody], request: Request[Any, Any, Any]) -> s.PaymentOut:
        # The Idempotency-Key names the payment: a retry after a 503 finishes it, never charges twice.
        payment = services.payments.purchase_pack(ctx, actor, organization_id=organization_id,
                                                  pack_dollars=data.pack_dollars,
                                                  payment_method_id=data.payment_method_id,
                                                  payment_id=idempotent_request_id(request.scope))
        return presenters.payment(settled(payment))

    @post("/credits", sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Add usage credits ($5 to $5,000) with a saved payment method or crypto")
    def add_credits(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                    data: JSONBody[s.AddCreditsBody], request: Request[Any, Any, Any]) -> s.PaymentOut:
        method = (data.method or "").strip().lower() or None
        if method is not None and method != CRYPTO and method not in CARD_METHODS:
            raise InvalidInput("method", "method must be \"crypto\", or omitted to pay with a saved payment method")
        if method == CRYPTO and data.payment_method_id is not None:
            raise InvalidInput("payment_method_id", "a crypto payment takes no payment_method_id")
        payment = services.payments.add_credits(ctx, actor, organization_id=organization_id,
                                                amount_micros=amount_micros(data),
                                                payment_method_id=data.payment_method_id, crypto=method == CRYPTO,
                                                return_url=data.return_url,
                                                payment_id=idempotent_request_id(request.scope))
        return presenters.payment(settled(payment))
