"""Inbound payment-provider events (Stripe's vocabulary, which the offline provider speaks too).

Events may be repeated and arrive out of order:

* A repeat of an event already processed is answered ``duplicate`` before any handler runs: its
  id is in the inbox. (Re-running it could undo what a later event did: a redelivered
  ``past_due`` after the ``active`` that followed it.)
* The id is remembered after the effects. A crash in between runs the handler again on the
  provider's retry, which is harmless because every effect is idempotent: ledger entries have
  keys, and status moves the payment table forbids are ignored as stale.
* A subscription event older than the state last applied (its ``created`` before the
  subscription's ``provider_state_at``) is stale and ignored, whatever order it arrives in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from billing_core.errors import InvalidInput, NotFound
from billing_core.payments import PaymentMethod, PaymentStatus
from billing_core.plan_subscription import SubscriptionStatus
from billing_core.ports import ProviderEvent
from billing_core.services.context import BillingContext
from billing_core.services.invoicing import mark_invoice_paid
from billing_core.services.subscriptions import apply_provider_status, complete_checkout, expire_checkout
from billing_core.services.wallet import reverse_provider_payment, settle_provider_payment

SOURCE = "payment_provider"


class EventResult(msgspec.Struct, frozen=True):
    event_id: str
    type: str
    outcome: str
    """``processed``, ``duplicate`` or ``ignored``."""


def handle_event(ctx: BillingContext, payload: bytes, signature_header: str | None) -> EventResult:
    """Verify, apply and record one event. A bad signature raises InvalidInput and changes nothing;
    an event seen before is answered ``duplicate`` and changes nothing either."""
    event = ctx.payments.parse_event(payload, signature_header)
    with ctx.uow() as uow:
        if uow.inbox.seen(SOURCE, event.id):
            return EventResult(event.id, event.type, "duplicate")
    handler = _HANDLERS.get(event.type)
    outcome = "ignored"
    if handler is not None:
        handler(ctx, event)
        outcome = "processed"
    with ctx.uow() as uow:
        first = uow.inbox.remember(SOURCE, event.id, ctx.clock.now())
        uow.commit()
    # Two deliveries of one event racing each other both ran the (idempotent) handler; the one
    # that remembered second answers as the repeat it is.
    return EventResult(event.id, event.type, outcome if first else "duplicate")


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


def _checkout_completed(ctx: BillingContext, data: dict[str, Any]) -> None:
    session_id = _str(data, "id")
    if session_id is None:
        raise InvalidInput("data.object.id", "checkout session id missing")
    if data.get("mode") == "payment":
        settle_provider_payment(ctx, provider_payment_id=session_id, reference=_reference(data),
                                succeeded=data.get("payment_status") == "paid")
        return
    try:
        complete_checkout(ctx, provider_session_id=session_id, provider_subscription_id=_str(data, "subscription"))
    except NotFound:
        return


def _checkout_expired(ctx: BillingContext, data: dict[str, Any]) -> None:
    session_id = _str(data, "id")
    if session_id is None:
        return
    if data.get("mode") == "payment":
        settle_provider_payment(ctx, provider_payment_id=session_id, reference=_reference(data), succeeded=False,
                                failure_message="the crypto checkout expired")
        return
    expire_checkout(ctx, provider_session_id=session_id)


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


def _subscription_changed(ctx: BillingContext, event: ProviderEvent) -> None:
    data = event.data
    provider_id, status = _str(data, "id"), data.get("status")
    if provider_id is None or status not in SubscriptionStatus.__members__.values():
        return
    start, end = _period(data)
    apply_provider_status(ctx, provider_subscription_id=provider_id, status=SubscriptionStatus(str(status)),
                          current_period_start=start, current_period_end=end, state_at=_timestamp(event.created))


def _invoice_paid(ctx: BillingContext, data: dict[str, Any]) -> None:
    customer, reference = _str(data, "customer"), _reference(data)
    if customer is None or reference is None:
        return
    with ctx.uow() as uow:
        org = uow.organizations.by_provider_customer(customer)
    try:
        invoice_id = uuid.UUID(reference)
    except ValueError:
        return
    if org is not None:
        try:
            mark_invoice_paid(ctx, organization_id=org.id, invoice_id=invoice_id)
        except NotFound:
            return


def _payment_intent(succeeded: bool) -> Callable[[BillingContext, dict[str, Any]], None]:
    def handle(ctx: BillingContext, data: dict[str, Any]) -> None:
        error = data.get("last_payment_error")
        message = error.get("message") if isinstance(error, dict) else None
        settle_provider_payment(ctx, provider_payment_id=_str(data, "id"), reference=_reference(data),
                                succeeded=succeeded, failure_message=message if isinstance(message, str) else None)
    return handle


def _charge_refunded(ctx: BillingContext, data: dict[str, Any]) -> None:
    intent = _str(data, "payment_intent")
    if intent is not None and data.get("refunded") is True:
        reverse_provider_payment(ctx, provider_payment_id=intent, status=PaymentStatus.REFUNDED,
                                 reason="refunded at the payment provider")


def _dispute_created(ctx: BillingContext, data: dict[str, Any]) -> None:
    intent = _str(data, "payment_intent")
    if intent is not None:
        reverse_provider_payment(ctx, provider_payment_id=intent, status=PaymentStatus.DISPUTED,
                                 reason="payment disputed")


def _setup_succeeded(ctx: BillingContext, data: dict[str, Any]) -> None:
    """A method collected through the setup intent: attach it to our records if not there yet."""
    customer, method_id = _str(data, "customer"), _str(data, "payment_method")
    if customer is None or method_id is None:
        return
    with ctx.uow() as uow:
        org = uow.organizations.by_provider_customer(customer)
        if org is None or uow.payment_methods.by_provider_id(org.id, method_id) is not None:
            return
    described = ctx.payments.attach_payment_method(customer_id=customer, provider_payment_method_id=method_id)
    with ctx.uow() as uow:
        if uow.payment_methods.by_provider_id(org.id, method_id) is not None:
            return
        first = not uow.payment_methods.list(org.id)
        uow.payment_methods.add(PaymentMethod(
            id=uuid.uuid4(), organization_id=org.id, provider_payment_method_id=method_id,
            payment_type=described.payment_type, default=first, brand=described.brand, last4=described.last4,
            exp_month=described.exp_month, exp_year=described.exp_year, iban_last4=described.iban_last4,
            name=described.name, created_at=ctx.clock.now()))
        uow.commit()


Handler = Callable[[BillingContext, ProviderEvent], None]


def _on_object(handle: Callable[[BillingContext, dict[str, Any]], None]) -> Handler:
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
