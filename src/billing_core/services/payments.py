"""Payments for credits: add credits, credit packs, auto-recharge, crypto checkouts; settling and
reversing them on the provider's word (ADR 0009)."""

from __future__ import annotations

import uuid

import msgspec

from billing_core.checkout import check_return_url
from billing_core.credit_packs import PackOffer, check_add_credits_amount, check_pack, pack_offer
from billing_core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PaymentError,
    ProviderUnavailable,
    SubscriptionRequired,
)
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.money import MICROS_PER_CENT, format_credits
from billing_core.payments import Payment, PaymentMethod, PaymentPurpose, PaymentStatus, PaymentType
from billing_core.permissions import Action, Actor, require
from billing_core.ports import ChargeResult, ChargeStatus, UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.customers import ensure_customer
from billing_core.services.notifications import notify


def credit_packs(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> PackOffer:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        subscription = uow.plan_subscriptions.current(organization_id)
    return pack_offer(ctx.catalog, has_active_subscription=subscription is not None and subscription.is_subscribed,
                      actor=actor)


_PURPOSE_LABEL = {
    PaymentPurpose.ADD_CREDITS: "Add Credits",
    PaymentPurpose.CREDIT_PACK: "Credit Pack",
    PaymentPurpose.AUTO_RECHARGE: "Auto Recharge",
}


_PURPOSE_KIND = {
    PaymentPurpose.ADD_CREDITS: EntryKind.TOP_UP,
    PaymentPurpose.CREDIT_PACK: EntryKind.CREDIT_PACK,
    PaymentPurpose.AUTO_RECHARGE: EntryKind.AUTO_RECHARGE,
}


def add_credits(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, amount_micros: int,
                payment_method_id: uuid.UUID | None = None, crypto: bool = False,
                return_url: str | None = None, payment_id: uuid.UUID | None = None) -> Payment:
    """Charge $5-$5,000 to a saved method (or open a crypto checkout). Credits land when paid.

    ``payment_id`` names the payment (over HTTP the ``Idempotency-Key`` maps to it): asking again
    with it returns the recorded payment, or finishes one whose provider answer was lost with the
    same provider key, never a second charge."""
    require(actor, Action.ADD_CREDITS, organization_id)
    amount = check_add_credits_amount(ctx.catalog, amount_micros)
    if return_url is not None:
        return_url = check_return_url(return_url)
    if crypto:
        return _crypto_payment(ctx, organization_id, amount, return_url, payment_id=payment_id)
    return _charge(ctx, organization_id, PaymentPurpose.ADD_CREDITS, amount, payment_method_id,
                   payment_id=payment_id)


def purchase_pack(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, pack_dollars: int,
                  payment_method_id: uuid.UUID | None = None, payment_id: uuid.UUID | None = None) -> Payment:
    """Buy a credit pack: primary-owner only and only with an active subscription. ``payment_id``
    as for :func:`add_credits`."""
    require(actor, Action.PURCHASE_CREDIT_PACKS, organization_id)
    pack = check_pack(ctx.catalog, pack_dollars)
    with ctx.uow() as uow:
        subscription = uow.plan_subscriptions.current(organization_id)
    if subscription is None or not subscription.is_subscribed:
        raise SubscriptionRequired("Subscribe to a plan first to purchase credit packs")
    return _charge(ctx, organization_id, PaymentPurpose.CREDIT_PACK, pack.credits_micros, payment_method_id,
                   payment_id=payment_id)


def _resolve_method(uow: UnitOfWork, organization_id: uuid.UUID,
                    payment_method_id: uuid.UUID | None) -> PaymentMethod:
    if payment_method_id is not None:
        return uow.payment_methods.get(organization_id, payment_method_id)
    for method in uow.payment_methods.list(organization_id):
        if method.default:
            return method
    raise InvalidInput("payment_method_id", "add a payment method first", code="payment_method_required")


def _charge(ctx: BillingContext, organization_id: uuid.UUID, purpose: PaymentPurpose, credits_micros: int,
            payment_method_id: uuid.UUID | None, *, payment_id: uuid.UUID | None = None) -> Payment:
    """Record a pending payment, charge it off-session, settle what the provider answered."""
    cents = credits_micros // MICROS_PER_CENT
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        org = uow.organizations.get(organization_id)
        method = _resolve_method(uow, organization_id, payment_method_id)
        provider_method = method.provider_payment_method_id
        # The type is the provider's word, stored when the method was attached (it sets the refund timeline).
        payment = Payment(id=payment_id or uuid.uuid4(), organization_id=organization_id, purpose=purpose,
                          amount_cents=cents, currency_iso=org.currency_iso, credits_micros=credits_micros,
                          status=PaymentStatus.PENDING, created_at=ctx.clock.now(), payment_type=method.payment_type)
        existing = _existing_payment(uow, organization_id, payment.id)
        _check_same_payment(existing, purpose, credits_micros)
        if existing is not None and (existing.status != PaymentStatus.PENDING
                                     or existing.provider_payment_id is not None):
            return existing
        if existing is None:
            uow.payments.add(payment)
            uow.commit()
        else:
            # Recorded before but the provider's answer never was (a crash, an outage): ask again
            # with the same key, which never charges twice.
            payment = existing
    customer_id = ensure_customer(ctx, organization_id)
    result = ctx.payments.charge(customer_id=customer_id, provider_payment_method_id=provider_method,
                                 amount_cents=payment.amount_cents, currency_iso=payment.currency_iso,
                                 description=f"{_PURPOSE_LABEL[payment.purpose]} "
                                             f"{format_credits(payment.credits_micros)}",
                                 reference=str(payment.id), idempotency_key=f"payment:{payment.id}")
    return record_charge_result(ctx, organization_id, payment.id, result)


def _check_same_payment(existing: Payment | None, purpose: PaymentPurpose, credits_micros: int) -> None:
    if existing is not None and (existing.purpose, existing.credits_micros) != (purpose, credits_micros):
        raise Conflict(f"payment {existing.id} was asked for with other details", code="idempotency_key_reused")


def _existing_payment(uow: UnitOfWork, organization_id: uuid.UUID, payment_id: uuid.UUID) -> Payment | None:
    try:
        return uow.payments.get(organization_id, payment_id)
    except NotFound:
        return None


def _crypto_payment(ctx: BillingContext, organization_id: uuid.UUID, credits_micros: int,
                    return_url: str | None, *, payment_id: uuid.UUID | None = None) -> Payment:
    """Record the pending payment, then open the provider's checkout keyed by it (ADR 0009): the
    provider never holds a checkout we have no record of, so its payment always finds ours."""
    cents = credits_micros // MICROS_PER_CENT
    customer_id = ensure_customer(ctx, organization_id)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        org = uow.organizations.get(organization_id)
        payment = Payment(id=payment_id or uuid.uuid4(), organization_id=organization_id,
                          purpose=PaymentPurpose.ADD_CREDITS, amount_cents=cents, currency_iso=org.currency_iso,
                          credits_micros=credits_micros, status=PaymentStatus.PENDING, created_at=ctx.clock.now(),
                          payment_type=PaymentType.CRYPTO)
        existing = _existing_payment(uow, organization_id, payment.id)
        _check_same_payment(existing, PaymentPurpose.ADD_CREDITS, credits_micros)
        if existing is not None and (existing.payment_type != PaymentType.CRYPTO
                                     or existing.client_secret is not None
                                     or existing.status != PaymentStatus.PENDING):
            return existing
        if existing is None:
            uow.payments.add(payment)
            uow.commit()
        else:
            payment = existing  # recorded, its checkout never opened (an outage): open it now
    try:
        checkout = ctx.payments.create_crypto_checkout(
            customer_id=customer_id, amount_cents=cents, currency_iso=payment.currency_iso,
            return_url=return_url or "/billing/credits", reference=str(payment.id),
            idempotency_key=f"payment:{payment.id}")
    except (PaymentError, ProviderUnavailable) as exc:
        if not exc.retryable:
            # Refused for good: the recorded payment fails rather than staying pending forever.
            with ctx.uow() as uow:
                uow.wallets.lock(organization_id)
                failed = uow.payments.get(organization_id, payment.id)
                _fail(ctx, uow, failed, exc.message)
                uow.payments.save(failed)
                uow.commit()
        raise
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        payment = uow.payments.get(organization_id, payment.id)
        # A provider event may have settled it already; it found the payment by its reference.
        payment.provider_payment_id = payment.provider_payment_id or checkout.provider_session_id
        payment.client_secret = checkout.client_secret
        uow.payments.save(payment)
        uow.commit()
    return payment


def record_charge_result(ctx: BillingContext, organization_id: uuid.UUID, payment_id: uuid.UUID,
                         result: ChargeResult) -> Payment:
    """Store the provider's answer; credits land only for a succeeded charge."""
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        payment = uow.payments.get(organization_id, payment_id)
        payment.provider_payment_id = payment.provider_payment_id or result.provider_payment_id
        payment.client_secret = result.client_secret
        if result.status == ChargeStatus.SUCCEEDED:
            _settle(ctx, uow, payment)
        elif result.status == ChargeStatus.FAILED:
            _fail(ctx, uow, payment, result.failure_message or "the payment failed")
        uow.payments.save(payment)
        uow.commit()
        return payment


def _settle(ctx: BillingContext, uow: UnitOfWork, payment: Payment) -> None:
    if payment.status != PaymentStatus.PENDING:
        return  # already settled, or since failed, refunded or disputed: a late or repeated event
    payment.move_to(PaymentStatus.SUCCEEDED)
    payment.settled_at = ctx.clock.now()
    if payment.purpose not in _PURPOSE_KIND:
        return
    via = _PURPOSE_LABEL[payment.purpose]
    uow.wallets.post(transfer(
        organization_id=payment.organization_id, idempotency_key=f"payment:{payment.id}",
        kind=_PURPOSE_KIND[payment.purpose],
        description=f"Stripe Payment Intent {payment.provider_payment_id} via {via} call.",
        created_at=payment.settled_at, source=Account.PAYMENT_CLEARING, target=Account.WALLET,
        amount_micros=payment.credits_micros, reference=str(payment.id)))
    if payment.purpose == PaymentPurpose.AUTO_RECHARGE:
        settings = uow.settings.get(payment.organization_id)
        if settings.auto_recharge.consecutive_failures:
            settings.auto_recharge = msgspec.structs.replace(settings.auto_recharge, consecutive_failures=0)
            uow.settings.save(settings)


def _fail(ctx: BillingContext, uow: UnitOfWork, payment: Payment, message: str) -> None:
    if payment.status != PaymentStatus.PENDING:
        # Already failed, or settled (and maybe refunded or disputed since): the payment table forbids
        # leaving those for FAILED, so a late or repeated failure event is stale and changes nothing.
        return
    payment.move_to(PaymentStatus.FAILED)
    payment.failure_message = message[:500]
    if payment.purpose == PaymentPurpose.AUTO_RECHARGE:
        _auto_recharge_failed(ctx, uow, payment, message)


def _auto_recharge_failed(ctx: BillingContext, uow: UnitOfWork, payment: Payment, message: str) -> None:
    now = ctx.clock.now()
    settings = uow.settings.get(payment.organization_id)
    recharge = settings.auto_recharge
    failures = recharge.consecutive_failures + 1
    paused_at = now if failures >= ctx.policy.auto_recharge_max_failures else recharge.paused_at
    settings.auto_recharge = msgspec.structs.replace(recharge, consecutive_failures=failures, paused_at=paused_at)
    uow.settings.save(settings)
    text = f"Auto-recharge of {format_credits(payment.credits_micros)} failed: {message}"
    if paused_at is not None:
        text += " Auto-recharge is paused until you update your payment method."
    notify(uow, organization_id=payment.organization_id, email=settings.billing_email,
           webhook_url=settings.spend_management.webhook_url, event_type="auto_recharge.failed",
           subject="Auto-recharge failed", text=text,
           data={"organization_id": str(payment.organization_id), "payment_id": str(payment.id),
                 "consecutive_failures": failures, "paused": paused_at is not None},
           now=now, dedupe_key=f"{payment.organization_id}:auto-recharge-failed:{payment.id}")


def reverse_payment(ctx: BillingContext, uow: UnitOfWork, payment: Payment, status: PaymentStatus,
                    reason: str) -> None:
    """A settled payment failed later, was refunded in full or disputed: take its credits back with
    a compensating entry (the wallet may go negative; the spend guard then stops usage)."""
    if not payment.move_to(status):
        return
    if payment.purpose not in _PURPOSE_KIND:
        return
    remaining = payment.credits_micros - payment.refunded_cents * MICROS_PER_CENT
    if remaining <= 0:
        return
    uow.wallets.post(transfer(
        organization_id=payment.organization_id, idempotency_key=f"payment-reversal:{payment.id}",
        kind=EntryKind.PAYMENT_REVERSAL, description=f"Reversal of payment {payment.provider_payment_id}",
        reason=reason, created_at=ctx.clock.now(), source=Account.WALLET, target=Account.PAYMENT_CLEARING,
        amount_micros=remaining, reference=str(payment.id)))


def settle_provider_payment(ctx: BillingContext, *, provider_payment_id: str | None, reference: str | None,
                            succeeded: bool, failure_message: str | None = None) -> Payment | None:
    """Apply a provider's final word on a payment (webhook). Unknown payments are ignored (None)."""
    with ctx.uow() as uow:
        payment = settle_provider_payment_in(ctx, uow, provider_payment_id=provider_payment_id, reference=reference,
                                             succeeded=succeeded, failure_message=failure_message)
        uow.commit()
        return payment


def settle_provider_payment_in(ctx: BillingContext, uow: UnitOfWork, *, provider_payment_id: str | None,
                               reference: str | None, succeeded: bool,
                               failure_message: str | None = None) -> Payment | None:
    """:func:`settle_provider_payment` inside the caller's unit of work (which commits), deciding
    under the organization's wallet lock on the payment as it stands then."""
    found = _find_payment(uow, provider_payment_id, reference)
    if found is None:
        return None
    uow.wallets.lock(found.organization_id)
    payment = uow.payments.get(found.organization_id, found.id)
    if provider_payment_id and payment.provider_payment_id != provider_payment_id:
        payment.provider_payment_id = provider_payment_id
    if succeeded:
        _settle(ctx, uow, payment)
    else:
        _fail(ctx, uow, payment, failure_message or "the payment failed")
    uow.payments.save(payment)
    return payment


def _find_payment(uow: UnitOfWork, provider_payment_id: str | None, reference: str | None) -> Payment | None:
    if provider_payment_id:
        found = uow.payments.by_provider_id(provider_payment_id)
        if found is not None:
            return found
    if reference:
        try:
            return uow.payments.by_reference(uuid.UUID(reference))
        except ValueError:
            return None
    return None


def reverse_provider_payment(ctx: BillingContext, *, provider_payment_id: str, status: PaymentStatus,
                             reason: str) -> Payment | None:
    """charge.refunded (in full) or charge.dispute.created for a settled payment."""
    with ctx.uow() as uow:
        payment = reverse_provider_payment_in(ctx, uow, provider_payment_id=provider_payment_id, status=status,
                                              reason=reason)
        uow.commit()
        return payment


def reverse_provider_payment_in(ctx: BillingContext, uow: UnitOfWork, *, provider_payment_id: str,
                                status: PaymentStatus, reason: str) -> Payment | None:
    """:func:`reverse_provider_payment` inside the caller's unit of work (which commits), deciding
    under the organization's wallet lock on the payment as it stands then."""
    found = uow.payments.by_provider_id(provider_payment_id)
    if found is None:
        return None
    uow.wallets.lock(found.organization_id)
    payment = uow.payments.get(found.organization_id, found.id)
    if payment.status != PaymentStatus.SUCCEEDED:
        return payment
    reverse_payment(ctx, uow, payment, status, reason)
    uow.payments.save(payment)
    return payment


def run_auto_recharge(ctx: BillingContext, *, organization_id: uuid.UUID, amount_micros: int,
                      payment_method_id: uuid.UUID | None, operation_id: uuid.UUID) -> Payment | None:
    """Charge an auto-recharge queued by a debit. ``operation_id`` (the outbox message id) makes a
    retried delivery reuse the same payment and provider idempotency key."""
    with ctx.uow() as uow:
        settings = uow.settings.get(organization_id)
    if not settings.auto_recharge.enabled or settings.auto_recharge.paused:
        return None
    try:
        return _charge(ctx, organization_id, PaymentPurpose.AUTO_RECHARGE, amount_micros,
                       payment_method_id, payment_id=operation_id)
    except InvalidInput as exc:
        # No usable method: count it as a failed recharge so the owner hears of it.
        failed = Payment(id=operation_id, organization_id=organization_id, purpose=PaymentPurpose.AUTO_RECHARGE,
                         amount_cents=amount_micros // MICROS_PER_CENT, currency_iso=ctx.catalog.currency,
                         credits_micros=amount_micros, status=PaymentStatus.PENDING, created_at=ctx.clock.now())
        with ctx.uow() as uow:
            uow.wallets.lock(organization_id)
            if _existing_payment(uow, organization_id, operation_id) is None:
                uow.payments.add(failed)
                _fail(ctx, uow, failed, exc.message)
                uow.payments.save(failed)
                uow.commit()
        return failed
