"""Refund requests, decided by plan terms and processed by the payment provider, exactly once.

ADR 0009: one unit of work locks the organization's wallet, decides against the payment and the
wallet as locked, and records the request. An approved request is recorded PENDING together with
its effects: the amount reserved on the payment (``refunded_cents``) and the credits taken out of the
wallet (ledger key ``refund:<request id>``). Only then is the provider asked, with the idempotency
key ``refund:<request id>``; its answer completes the request once, under the lock again. A
definitive refusal gives the reservation and the credits back (ledger key
``refund-reversal:<request id>``); an unreachable provider leaves the request PENDING, and asking
again with the same request id finishes it with the same provider key.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from billing_core.errors import InvalidInput, NotFound, PaymentError, ProviderUnavailable, RefundRequestReused
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.payments import Payment, PaymentStatus
from billing_core.permissions import Action, Actor, require
from billing_core.ports import Page, UnitOfWork
from billing_core.refund_policy import RefundRequest, RefundStatus, decide_refund, new_request
from billing_core.services.context import BillingContext


def list_refunds(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[RefundRequest]:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        return uow.refunds.list(organization_id)


def list_payments(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
                  cursor: str | None = None) -> Page[Payment]:
    """The organization's payments, newest first: the ones a refund can be asked for."""
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        return uow.payments.list(organization_id, limit=limit, cursor=cursor)


def refund_ledger_key(request_id: uuid.UUID) -> str:
    """The ledger key of the credits an approved request takes out of the wallet."""
    return f"refund:{request_id}"


def refund_reversal_ledger_key(request_id: uuid.UUID) -> str:
    """The ledger key giving those credits back when the provider refuses the refund for good."""
    return f"refund-reversal:{request_id}"


def provider_refund_key(request_id: uuid.UUID) -> str:
    """The provider idempotency key of the request's refund: one provider refund per request."""
    return f"refund:{request_id}"


def request_refund(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, payment_id: uuid.UUID,
                   reason: str | None = None, request_id: uuid.UUID | None = None) -> RefundRequest:
    """Approve (and refund through the provider) or deny with a reason; either way the request is
    recorded. ``request_id`` names the request: asking again with it returns the recorded request,
    finishing it first if the provider was unreachable last time (no second refund, no second
    ledger entry). The returned request is DENIED, SUCCEEDED or FAILED (the provider refused; the
    credits are back in the wallet). Raises ProviderUnavailable while the provider cannot be
    reached (the request stays PENDING), Conflict when ``request_id`` names a request for another
    payment."""
    require(actor, Action.REQUEST_REFUND, organization_id)
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise InvalidInput("reason", "reason must be text of at most 500 characters")
    request_id = request_id or uuid.uuid4()
    with ctx.uow() as uow:
        wallet = uow.wallets.lock(organization_id)
        request = _recorded(uow, organization_id, request_id)
        if request is not None:
            if request.payment_id != payment_id:
                raise RefundRequestReused(f"refund request {request_id} is for another payment")
            payment = uow.payments.get(organization_id, payment_id)
        else:
            payment = uow.payments.get(organization_id, payment_id)
            sub = uow.plan_subscriptions.current(organization_id)
            plan = ctx.catalog.plan(sub.plan) if sub is not None else None
            # Uninvoiced usage has already consumed credits the settled wallet still holds.
            unused = min(wallet.wallet_micros, wallet.balance_micros)
            now = ctx.clock.now()
            decision = decide_refund(payment, plan, unused_credits_micros=unused, now=now)
            request = new_request(request_id=request_id, payment=payment, requested_by=actor.subject,
                                  reason=reason, decision=decision, now=now)
            uow.refunds.add(request)
            if request.status == RefundStatus.PENDING:
                _reserve(ctx, uow, payment, request)
            uow.commit()
    if request.status != RefundStatus.PENDING:
        return request
    return _submit(ctx, request, payment)


def finish_pending_refunds(ctx: BillingContext, *, older_than: datetime, limit: int = 100) -> int:
    """The sweeper (``background.run_cycle``): ask the provider again, with the same key, for every
    refund request still PENDING that was recorded before ``older_than`` (its provider was
    unreachable and no client retried), and record the answer once, as the same request repeated
    would. A provider still unreachable leaves it for the next sweep. How many it completed."""
    with ctx.uow() as uow:
        pending = uow.refunds.pending(older_than, limit=limit)
    finished = 0
    for request in pending:
        with ctx.uow() as uow:
            payment = uow.payments.get(request.organization_id, request.payment_id)
        try:
            done = _submit(ctx, request, payment)
        except (PaymentError, ProviderUnavailable) as exc:
            if exc.retryable:
                continue
            raise
        finished += done.status != RefundStatus.PENDING
    return finished


def _recorded(uow: UnitOfWork, organization_id: uuid.UUID, request_id: uuid.UUID) -> RefundRequest | None:
    try:
        return uow.refunds.get(organization_id, request_id)
    except NotFound:
        return None


def _reserve(ctx: BillingContext, uow: UnitOfWork, payment: Payment, request: RefundRequest) -> None:
    """The approved amount counts as refunded, and its credits leave the wallet, before the provider
    is asked: a concurrent request decides against what is left."""
    payment.refunded_cents += request.decision.amount_cents
    uow.payments.save(payment)
    uow.wallets.post(transfer(
        organization_id=payment.organization_id, idempotency_key=refund_ledger_key(request.id),
        kind=EntryKind.CREDIT_REFUND, description=f"Refund of payment {payment.provider_payment_id}",
        reason=request.reason or "refund requested", created_at=request.created_at, source=Account.WALLET,
        target=Account.REFUNDS, amount_micros=request.decision.credits_micros, reference=str(payment.id)))


def _submit(ctx: BillingContext, request: RefundRequest, payment: Payment) -> RefundRequest:
    """Ask the provider for the pending request's refund and record its answer once."""
    if payment.provider_payment_id is None:
        return _fail(ctx, request, "the payment has no provider payment to refund")
    try:
        provider_refund_id = ctx.payments.refund(provider_payment_id=payment.provider_payment_id,
                                                 amount_cents=request.decision.amount_cents,
                                                 idempotency_key=provider_refund_key(request.id))
    except (PaymentError, ProviderUnavailable) as exc:
        if exc.retryable:
            raise  # still PENDING: the same request id asks again with the same key
        return _fail(ctx, request, exc.message)
    with ctx.uow() as uow:
        uow.wallets.lock(request.organization_id)
        done = _completed(ctx, request, RefundStatus.SUCCEEDED, provider_refund_id=provider_refund_id)
        if uow.refunds.complete(done):
            paid = uow.payments.get(request.organization_id, request.payment_id)
            # Refunded in full: a later charge.refunded event for it then changes nothing.
            if paid.refunded_cents >= paid.amount_cents and paid.status == PaymentStatus.SUCCEEDED:
                paid.move_to(PaymentStatus.REFUNDED)
                uow.payments.save(paid)
        uow.commit()
        return uow.refunds.get(request.organization_id, request.id)


def _fail(ctx: BillingContext, request: RefundRequest, message: str) -> RefundRequest:
    """The provider refused for good: give back the reservation and the credits, once."""
    with ctx.uow() as uow:
        uow.wallets.lock(request.organization_id)
        if uow.refunds.complete(_completed(ctx, request, RefundStatus.FAILED, failure_message=message[:500])):
            paid = uow.payments.get(request.organization_id, request.payment_id)
            paid.refunded_cents -= request.decision.amount_cents
            uow.payments.save(paid)
            uow.wallets.post(transfer(
                organization_id=request.organization_id, idempotency_key=refund_reversal_ledger_key(request.id),
                kind=EntryKind.CREDIT_REFUND, description=f"Refund of payment {paid.provider_payment_id} failed",
                reason=message[:500], created_at=ctx.clock.now(), source=Account.REFUNDS, target=Account.WALLET,
                amount_micros=request.decision.credits_micros, reference=str(request.payment_id)))
            if paid.status != PaymentStatus.SUCCEEDED:
                # Reversed at the provider meanwhile (dispute, refund there): that reversal left out
                # the credits this request had reserved, so they are reversed now instead of
                # returning to the wallet.
                uow.wallets.post(transfer(
                    organization_id=request.organization_id,
                    idempotency_key=f"payment-reversal:{paid.id}:{request.id}", kind=EntryKind.PAYMENT_REVERSAL,
                    description=f"Reversal of payment {paid.provider_payment_id}", reason=f"payment {paid.status}",
                    created_at=ctx.clock.now(), source=Account.WALLET, target=Account.PAYMENT_CLEARING,
                    amount_micros=request.decision.credits_micros, reference=str(paid.id)))
        uow.commit()
        return uow.refunds.get(request.organization_id, request.id)


def _completed(ctx: BillingContext, request: RefundRequest, status: RefundStatus, *,
               provider_refund_id: str | None = None, failure_message: str | None = None) -> RefundRequest:
    return RefundRequest(id=request.id, organization_id=request.organization_id, payment_id=request.payment_id,
                         requested_by=request.requested_by, reason=request.reason, created_at=request.created_at,
                         decision=request.decision, provider_refund_id=provider_refund_id, status=status,
                         failure_message=failure_message, completed_at=ctx.clock.now())
