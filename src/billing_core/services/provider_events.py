"""Inbound payment-provider events, applied exactly once.

The provider's adapter verifies an event and translates it into one of the core's events
(:mod:`billing_core.payment_events`); :func:`handle_event` matches on their types. Events may be
repeated, concurrently, and arrive out of order:

* Each event is applied in ONE unit of work with its inbox entry (ADR 0009): the organization's
  wallet lock first (when the event names a known organization), then the event id is remembered
  by an insert that detects a duplicate itself (``ON CONFLICT DO NOTHING``: the write decides, not
  a read), then the effects, then one commit. A concurrent delivery of the same event waits on the
  lock or on that insert and, once the first commits, answers ``duplicate`` having changed nothing;
  if the first fails, nothing of it is kept, the id included, and the provider's retry runs it again.
* A repeat of an event already processed is therefore answered ``duplicate`` without running the
  handler. (Re-running it could undo what a later event did: a redelivered ``past_due`` after the
  ``active`` that followed it.)
* Different events about the same object (``completed`` and ``async_payment_succeeded`` of one
  checkout, a webhook and the offline completion) are kept from doubling by the effects themselves:
  conditional writes on the expected state and ledger idempotency keys, under the wallet lock.
* A subscription event older than the state last applied (its ``created`` before the
  subscription's ``provider_state_at``) is stale and ignored, whatever order it arrives in.
* A handler never calls the provider inside the unit of work: what it needs from the provider (the
  description of a payment method) is fetched before, and the fetch is idempotent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from billing_core.errors import NotFound
from billing_core.payment_events import (
    ChargeRefunded,
    CheckoutCompleted,
    CheckoutExpired,
    CheckoutMode,
    DisputeCreated,
    InvoicePaid,
    PaymentEvent,
    PaymentFailed,
    PaymentMethodCollected,
    PaymentSucceeded,
    SubscriptionChanged,
    UnhandledEvent,
)
from billing_core.payments import PaymentMethod, PaymentStatus, ProviderPaymentMethod
from billing_core.ports import UnitOfWork
from billing_core.services.checkout import complete_checkout_in, expire_checkout_in
from billing_core.services.context import BillingContext
from billing_core.services.invoicing import mark_invoice_paid_in
from billing_core.services.payments import reverse_provider_payment_in, settle_provider_payment_in
from billing_core.services.plan_subscriptions import apply_provider_status_in

SOURCE = "payment_provider"


class EventResult(msgspec.Struct, frozen=True):
    event_id: str
    type: str
    outcome: str
    """``processed``, ``duplicate`` or ``ignored``."""


@dataclass(frozen=True)
class Effects:
    """What one event does, as applied in the unit of work that remembers it."""

    organization: Callable[[UnitOfWork], uuid.UUID | None]
    """The organization the event is about, looked up before anything is locked (None: none known)."""
    apply: Callable[[UnitOfWork], None]
    """The effects; they run after the event was remembered and never commit."""


def _no_organization(uow: UnitOfWork) -> None:
    return None


def _nothing(uow: UnitOfWork) -> None:
    return None


NO_EFFECTS = Effects(_no_organization, _nothing)


def handle_event(ctx: BillingContext, payload: bytes, signature_header: str | None) -> EventResult:
    """Verify, apply and record one event, exactly once. A bad signature raises InvalidInput and
    changes nothing; an event seen before (or being applied concurrently) is answered
    ``duplicate`` and changes nothing either. An error of the handler rolls everything back, the
    inbox entry too, so the provider's retry applies the event again. An event the core does not
    act on is remembered too, and answered ``ignored``."""
    event = ctx.payments.parse_event(payload, signature_header)
    effects = _effects(ctx, event)  # may read the provider: before the transaction
    with ctx.uow() as uow:
        organization_id = effects.organization(uow)
        if organization_id is not None:
            uow.wallets.lock(organization_id)
        if not uow.inbox.remember(SOURCE, event.id, ctx.clock.now()):
            return EventResult(event.id, event.type, "duplicate")
        effects.apply(uow)
        uow.commit()
    return EventResult(event.id, event.type, "ignored" if isinstance(event, UnhandledEvent) else "processed")


def _effects(ctx: BillingContext, event: PaymentEvent) -> Effects:
    """What the event does: which organization to lock and the effects to apply in the inbox's unit
    of work. Reads (before any transaction) what it needs from the provider."""
    match event:
        case CheckoutCompleted(mode=CheckoutMode.PAYMENT):
            return _settle(ctx, event.session_id, event.reference, event.paid)
        case CheckoutCompleted():
            return _checkout_completed(ctx, event)
        case CheckoutExpired(mode=CheckoutMode.PAYMENT):
            return _settle(ctx, event.session_id, event.reference, False, "the crypto checkout expired")
        case CheckoutExpired():
            return _checkout_expired(ctx, event)
        case PaymentSucceeded():
            return _settle(ctx, event.provider_payment_id, event.reference, True)
        case PaymentFailed():
            return _settle(ctx, event.provider_payment_id, event.reference, False, event.failure_message)
        case ChargeRefunded(fully_refunded=True):
            return _reverse(ctx, event.provider_payment_id, PaymentStatus.REFUNDED, "refunded at the payment provider")
        case ChargeRefunded():
            return NO_EFFECTS  # a partial refund: ours are recorded by the refund use case itself
        case DisputeCreated():
            return _reverse(ctx, event.provider_payment_id, PaymentStatus.DISPUTED, "payment disputed")
        case SubscriptionChanged():
            return _subscription_changed(ctx, event)
        case InvoicePaid():
            return _invoice_paid(ctx, event)
        case PaymentMethodCollected():
            return _method_collected(ctx, event)
        case UnhandledEvent():
            return NO_EFFECTS


def _payment_organization(provider_payment_id: str | None, reference: str | None,
                          ) -> Callable[[UnitOfWork], uuid.UUID | None]:
    def find(uow: UnitOfWork) -> uuid.UUID | None:
        if provider_payment_id:
            payment = uow.payments.by_provider_id(provider_payment_id)
            if payment is not None:
                return payment.organization_id
        if reference:
            try:
                by_reference = uow.payments.by_reference(uuid.UUID(reference))
            except ValueError:
                return None
            return None if by_reference is None else by_reference.organization_id
        return None
    return find


def _settle(ctx: BillingContext, provider_payment_id: str | None, reference: str | None, succeeded: bool,
            failure_message: str | None = None) -> Effects:
    def apply(uow: UnitOfWork) -> None:
        settle_provider_payment_in(ctx, uow, provider_payment_id=provider_payment_id, reference=reference,
                                   succeeded=succeeded, failure_message=failure_message)
    return Effects(_payment_organization(provider_payment_id, reference), apply)


def _checkout_organization(session_id: str) -> Callable[[UnitOfWork], uuid.UUID | None]:
    def find(uow: UnitOfWork) -> uuid.UUID | None:
        session = uow.checkouts.by_provider_id(session_id)
        return None if session is None else session.organization_id
    return find


def _checkout_completed(ctx: BillingContext, event: CheckoutCompleted) -> Effects:
    def apply(uow: UnitOfWork) -> None:
        try:
            complete_checkout_in(ctx, uow, provider_session_id=event.session_id,
                                 provider_subscription_id=event.subscription_id)
        except NotFound:
            return
    return Effects(_checkout_organization(event.session_id), apply)


def _checkout_expired(ctx: BillingContext, event: CheckoutExpired) -> Effects:
    def apply(uow: UnitOfWork) -> None:
        expire_checkout_in(ctx, uow, provider_session_id=event.session_id)
    return Effects(_checkout_organization(event.session_id), apply)


def _subscription_changed(ctx: BillingContext, event: SubscriptionChanged) -> Effects:
    def organization(uow: UnitOfWork) -> uuid.UUID | None:
        sub = uow.plan_subscriptions.by_provider_id(event.provider_subscription_id)
        return None if sub is None else sub.organization_id

    def apply(uow: UnitOfWork) -> None:
        apply_provider_status_in(ctx, uow, provider_subscription_id=event.provider_subscription_id,
                                 status=event.status, current_period_start=event.current_period_start,
                                 current_period_end=event.current_period_end, state_at=event.state_at)
    return Effects(organization, apply)


def _customer_organization(customer: str) -> Callable[[UnitOfWork], uuid.UUID | None]:
    def find(uow: UnitOfWork) -> uuid.UUID | None:
        org = uow.organizations.by_provider_customer(customer)
        return None if org is None else org.id
    return find


def _invoice_paid(ctx: BillingContext, event: InvoicePaid) -> Effects:
    try:
        invoice_id = uuid.UUID(event.reference)
    except ValueError:
        return NO_EFFECTS  # not one of our invoices
    organization = _customer_organization(event.customer_id)

    def apply(uow: UnitOfWork) -> None:
        organization_id = organization(uow)
        if organization_id is None:
            return
        try:
            mark_invoice_paid_in(ctx, uow, organization_id=organization_id, invoice_id=invoice_id)
        except NotFound:
            return
    return Effects(organization, apply)


def _reverse(ctx: BillingContext, provider_payment_id: str, status: PaymentStatus, reason: str) -> Effects:
    def apply(uow: UnitOfWork) -> None:
        reverse_provider_payment_in(ctx, uow, provider_payment_id=provider_payment_id, status=status, reason=reason)
    return Effects(_payment_organization(provider_payment_id, None), apply)


def _method_collected(ctx: BillingContext, event: PaymentMethodCollected) -> Effects:
    """A method collected with the provider's form: attach it to our records if not there yet.

    The provider describes the method before the unit of work (attaching an attached method is a
    no-op there; its description, the type included, is the provider's word); the method is added
    in the unit of work that remembers the event."""
    customer, method_id = event.customer_id, event.provider_payment_method_id
    organization = _customer_organization(customer)
    with ctx.uow() as uow:
        organization_id = organization(uow)
        if organization_id is None or uow.payment_methods.by_provider_id(organization_id, method_id) is not None:
            return Effects(organization, _nothing)
    described = ctx.payments.attach_payment_method(customer_id=customer, provider_payment_method_id=method_id)

    def apply(uow: UnitOfWork) -> None:
        organization_id = organization(uow)
        if organization_id is not None:
            _add_method(ctx, uow, organization_id, described)
    return Effects(organization, apply)


def _add_method(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID,
                described: ProviderPaymentMethod) -> None:
    method_id = described.provider_payment_method_id
    if uow.payment_methods.by_provider_id(organization_id, method_id) is not None:
        return
    first = not uow.payment_methods.list(organization_id)
    uow.payment_methods.add(PaymentMethod(
        id=uuid.uuid4(), organization_id=organization_id, provider_payment_method_id=method_id,
        payment_type=described.payment_type, default=first, brand=described.brand, last4=described.last4,
        exp_month=described.exp_month, exp_year=described.exp_year, iban_last4=described.iban_last4,
        name=described.name, created_at=ctx.clock.now()))


