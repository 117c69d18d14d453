"""Refund requests, decided by plan terms and processed by the payment provider."""

from __future__ import annotations

import uuid

from billing_core.errors import InvalidInput
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.payments import PaymentStatus
from billing_core.permissions import Action, Actor, require
from billing_core.refund_policy import RefundDecision, RefundDecisionStatus, RefundRequest, decide_refund
from billing_core.services.context import BillingContext


def list_refunds(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[RefundRequest]:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        return uow.refunds.list(organization_id)


def _decide(ctx: BillingContext, organization_id: uuid.UUID, payment_id: uuid.UUID) -> RefundDecision:
    with ctx.uow() as uow:
        payment = uow.payments.get(organization_id, payment_id)
        sub = uow.plan_subscriptions.current(organization_id)
        wallet = uow.wallets.get(organization_id)
    plan = ctx.catalog.plan(sub.plan) if sub is not None else None
    # Uninvoiced usage has already consumed credits the settled wallet still holds.
    unused = min(wallet.wallet_micros, wallet.balance_micros)
    return decide_refund(payment, plan, unused_credits_micros=unused, now=ctx.clock.now())


def request_refund(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, payment_id: uuid.UUID,
                   reason: str | None = None, request_id: uuid.UUID | None = None) -> RefundRequest:
    """Approve (and refund through the provider) or deny with a reason. Approved refunds take the
    unused credits back out of the wallet in the same unit of work that records the request."""
    require(actor, Action.REQUEST_REFUND, organization_id)
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise InvalidInput("reason", "reason must be text of at most 500 characters")
    request_id = request_id or uuid.uuid4()
    decision = _decide(ctx, organization_id, payment_id)
    provider_refund_id = None
    if decision.status == RefundDecisionStatus.APPROVED:
        with ctx.uow() as uow:
            payment = uow.payments.get(organization_id, payment_id)
        assert payment.provider_payment_id is not None
        provider_refund_id = ctx.payments.refund(provider_payment_id=payment.provider_payment_id,
                                                 amount_cents=decision.amount_cents,
                                                 idempotency_key=f"refund:{request_id}")
    with ctx.uow() as uow:
        request = RefundRequest(id=request_id, organization_id=organization_id, payment_id=payment_id,
                                requested_by=actor.subject, reason=reason, created_at=ctx.clock.now(),
                                decision=decision, provider_refund_id=provider_refund_id)
        if decision.status == RefundDecisionStatus.APPROVED:
            payment = uow.payments.get(organization_id, payment_id)
            payment.refunded_cents += decision.amount_cents
            if payment.refunded_cents >= payment.amount_cents:
                payment.move_to(PaymentStatus.REFUNDED)
            uow.payments.save(payment)
            uow.wallets.post(transfer(
                organization_id=organization_id, idempotency_key=f"refund:{request_id}",
                kind=EntryKind.CREDIT_REFUND, description=f"Refund of payment {payment.provider_payment_id}",
                reason=reason or "refund requested", created_at=request.created_at, source=Account.WALLET,
                target=Account.REFUNDS, amount_micros=decision.credits_micros, reference=str(payment_id)))
        uow.refunds.add(request)
        uow.commit()
    return request
