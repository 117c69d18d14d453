"""Inbound payment-provider events (Stripe's vocabulary, which the offline provider speaks too).

Events may be repeated, concurrently, and arrive out of order:

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
from datetime import UTC, datetime
from typing import Any

import msgspec

from billing_core.errors import InvalidInput, NotFound
from billing_core.payments import PaymentMethod, PaymentStatus, ProviderPaymentMethod
from billing_core.plan_subscription import SubscriptionStatus
from billing_core.ports import ProviderEvent, UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.invoicing import mark_invoice_paid_in
from billing_core.services.subscriptions import apply_provider_status_in, complete_checkout_in, expire_checkout_in
from billing_core.services.wallet import reverse_provider_payment_in, settle_provider_payment_in

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
    inbox entry too, so the provider's retry applies the event again."""
    event = ctx.payments.parse_event(payload, signature_header)
    handler = _HANDLERS.get(event.type)
    effects = NO_EFFECTS if handler is None else handler(ctx, event)  # may read the provider: before the transaction
    with ctx.uow() as uow:
        organization_id = effects.organization(uow)
        if organization_id is not None:
            uow.wallets.lock(organization_id)
        if not uow.inbox.remember(SOURCE, event.id, ctx.clock.now()):
            return EventResult(event.id, event.type, "duplicate")
        effects.apply(uow)
        uow.commit()
    return EventResult(event.id, event.type, "ignored" if handler is None else "processed")


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _reference(data: dict[str, Any]) -> str | None:
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("reference"), str):
        return str(metadata["reference"])
    return _str(data, "client_reference_id")


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


def _checkout_completed(ctx: BillingContext, data: dict[str, Any]) -> Effects:
    session_id = _str(data, "id")
    if session_id is None:
        raise InvalidInput("data.object.id", "checkout session id missing")
    if data.get("mode") == "payment":
        return _settle(ctx, session_id, _reference(data), data.get("payment_status") == "paid")
    subscription_id = _str(data, "subscription")

    def apply(uow: UnitOfWork) -> None:
        try:
            complete_checkout_in(ctx, uow, provider_session_id=session_id, provider_subscription_id=subscription_id)
        except NotFound:
            return
    return Effects(_checkout_organization(session_id), apply)


def _checkout_expired(ctx: BillingContext, data: dict[str, Any]) -> Effects:
    session_id = _str(data, "id")
    if session_id is None:
        return NO_EFFECTS
    if data.get("mode") == "payment":
        return _settle(ctx, session_id, _reference(data), False, "the crypto checkout expired")

    def apply(uow: UnitOfWork) -> None:
        expire_checkout_in(ctx, uow, provider_session_id=session_id)
    return Effects(_checkout_organization(session_id), apply)


def _timestamp(value: object) -> datetime | None:
    """Unix seconds as a UTC datetime; None for anything else (a field Stripe would not send so is
    read as absent rather than failing the whole event)."""
    if type(value) is not int:  # bool is an int too
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _period(data: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    start, end = _timestamp(data.get("current_period_start")), _timestamp(data.get("current_period_end"))
    items = data.get("items")
    listed = items.get("data") if isinstance(items, dict) else None
    # Newer API versions keep the period on the subscription's items.
    if (start is None or end is None) and isinstance(listed, list) and listed and isinstance(listed[0], dict):
        first = listed[0]
        start, end = _timestamp(first.get("current_period_start")), _timestamp(first.get("current_period_end"))
    if start is not None and end is not None and end <= start:
        return None, None
    return start, end


def _subscription_changed(ctx: BillingContext, event: ProviderEvent) -> Effects:
    data = event.data
    provider_id, status = _str(data, "id"), data.get("status")
    if provider_id is None or status not in SubscriptionStatus.__members__.values():
        return NO_EFFECTS
    start, end = _period(data)

    def organization(uow: UnitOfWork) -> uuid.UUID | None:
        sub = uow.plan_subscriptions.by_provider_id(provider_id)
        return None if sub is None else sub.organization_id

    def apply(uow: UnitOfWork) -> None:
        apply_provider_status_in(ctx, uow, provider_subscription_id=provider_id, status=SubscriptionStatus(str(status)),
                                 current_period_start=start, current_period_end=end,
                                 state_at=_timestamp(event.created))
    return Effects(organization, apply)


def _customer_organization(customer: str) -> Callable[[UnitOfWork], uuid.UUID | None]:
    def find(uow: UnitOfWork) -> uuid.UUID | None:
        org = uow.organizations.by_provider_customer(customer)
        return None if org is None else org.id
    return find


def _invoice_paid(ctx: BillingContext, data: dict[str, Any]) -> Effects:
    customer, reference = _str(data, "customer"), _reference(data)
    if customer is None or reference is None:
        return NO_EFFECTS
    try:
        invoice_id = uuid.UUID(reference)
    except ValueError:
        return NO_EFFECTS
    organization = _customer_organization(customer)

    def apply(uow: UnitOfWork) -> None:
        organization_id = organization(uow)
        if organization_id is None:
            return
        try:
            mark_invoice_paid_in(ctx, uow, organization_id=organization_id, invoice_id=invoice_id)
        except NotFound:
            return
    return Effects(organization, apply)


def _payment_intent(succeeded: bool) -> Callable[[BillingContext, dict[str, Any]], Effects]:
    def handle(ctx: BillingContext, data: dict[str, Any]) -> Effects:
        error = data.get("last_payment_error")
        message = error.get("message") if isinstance(error, dict) else None
        return _settle(ctx, _str(data, "id"), _reference(data), succeeded,
                       message if isinstance(message, str) else None)
    return handle


def _reverse(ctx: BillingContext, intent: str, status: PaymentStatus, reason: str) -> Effects:
    def apply(uow: UnitOfWork) -> None:
        reverse_provider_payment_in(ctx, uow, provider_payment_id=intent, status=status, reason=reason)
    return Effects(_payment_organization(intent, None), apply)


def _charge_refunded(ctx: BillingContext, data: dict[str, Any]) -> Effects:
    intent = _str(data, "payment_intent")
    if intent is None or data.get("refunded") is not True:
        return NO_EFFECTS
    return _reverse(ctx, intent, PaymentStatus.REFUNDED, "refunded at the payment provider")


def _dispute_created(ctx: BillingContext, data: dict[str, Any]) -> Effects:
    intent = _str(data, "payment_intent")
    if intent is None:
        return NO_EFFECTS
    return _reverse(ctx, intent, PaymentStatus.DISPUTED, "payment disputed")


def _setup_succeeded(ctx: BillingContext, data: dict[str, Any]) -> Effects:
    """A method collected through the setup intent: attach it to our records if not there yet.

    The provider describes the method before the unit of work (attaching an attached method is a
    no-op there); the method is added in the unit of work that remembers the event."""
    customer, method_id = _str(data, "customer"), _str(data, "payment_method")
    if customer is None or method_id is None:
        return NO_EFFECTS
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


Handler = Callable[[BillingContext, ProviderEvent], Effects]
"""Reads the event (and, before any transaction, what it needs from the provider) and says what it
does: which organization to lock and the effects to apply in the inbox's unit of work."""


def _on_object(handle: Callable[[BillingContext, dict[str, Any]], Effects]) -> Handler:
    """A handler that needs only the event's object (its current state), not the event's time."""
    return lambda ctx, event: handle(ctx, event.data)


_HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _on_object(_checkout_completed),
    "checkout.session.async_payment_succeeded": _on_object(_checkout_completed),
    "checkout.session.expired": _on_object(_checkout_expired),
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "customer.subscription.paused": _subscription_changed,
    "customer.subscription.resumed": _subscription_changed,
    "invoice.paid": _on_object(_invoice_paid),
    "payment_intent.succeeded": _on_object(_payment_intent(True)),
    "payment_intent.payment_failed": _on_object(_payment_intent(False)),
    "charge.refunded": _on_object(_charge_refunded),
    "charge.dispute.created": _on_object(_dispute_created),
    "setup_intent.succeeded": _on_object(_setup_succeeded),
}
HANDLED_EVENT_TYPES = frozenset(_HANDLERS)
