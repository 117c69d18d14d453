"""Stripe's webhook events in the core's terms (:mod:`billing_core.payment_events`).

The one place that knows Stripe's event names and where Stripe keeps what the core needs: the
checkout's mode and payment status, the subscription's period (on the subscription in older API
versions, on its first item in newer ones), our reference (``metadata.reference`` or
``client_reference_id``), an id given as a string or as an expanded object. The offline provider
(:class:`adapters.fakes.InMemoryPaymentProvider`) speaks the same webhook dialect and decodes with
this module too, so the two cannot drift.

Pure: stdlib, msgspec and the core only; the signature is verified before a body gets here.
A signed body that is not an event is refused; an event whose object does not name what acting on
it needs becomes an :class:`~billing_core.payment_events.UnhandledEvent` (Stripe changes shapes
between API versions, and a leaked secret lets anybody sign, so nothing in the object is trusted
to be well formed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from billing_core.errors import InvalidInput, InvalidSignature
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
    ProviderPrice,
    SubscriptionChanged,
    UnhandledEvent,
)
from billing_core.payments import PaymentType
from billing_core.plan_subscription import SubscriptionStatus

JSON = dict[str, Any]

PAYMENT_TYPES: dict[str, PaymentType] = {
    "card": PaymentType.CARD,
    "sepa_debit": PaymentType.SEPA_DEBIT,
    "crypto": PaymentType.CRYPTO,
    "us_bank_account": PaymentType.US_BANK_ACCOUNT,
}
"""Stripe's payment method ``type`` values we support."""

SUBSCRIPTION_STATUSES: dict[str, SubscriptionStatus] = {status.value: status for status in SubscriptionStatus}
"""Stripe's subscription statuses: the eight of the seed, spelled as Stripe spells them."""


class _Envelope:
    """The event's own fields, checked once."""

    def __init__(self, event_id: str, event_type: str, created: int) -> None:
        self.id, self.type, self.created = event_id, event_type, created

    def unhandled(self) -> UnhandledEvent:
        return UnhandledEvent(id=self.id, type=self.type, created=self.created)


def to_payment_event(body: object) -> PaymentEvent:
    """The decoded JSON of a verified Stripe event as a core event.

    Raises InvalidInput(code=invalid_signature) for a body that is not an event (no string id or
    type, no integer ``created``, no ``data.object``), like a body whose signature fails: a genuine
    Stripe delivery never looks like that. A completed checkout without a session id is refused as
    InvalidInput(field ``data.object.id``): it cannot be matched to anything, ever."""
    if not isinstance(body, dict):
        raise _not_an_event("the payload is not a JSON object")
    event_id, event_type, created = body.get("id"), body.get("type"), body.get("created")
    if not isinstance(event_id, str) or not event_id:
        raise _not_an_event("the event has no id")
    if not isinstance(event_type, str):
        raise _not_an_event("the event has no type")
    if type(created) is not int:  # bool is an int too
        raise _not_an_event("the event's created is not Unix seconds")
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise _not_an_event("the event carries no data.object")
    envelope = _Envelope(event_id, event_type, created)
    translate = _TRANSLATIONS.get(event_type)
    return envelope.unhandled() if translate is None else translate(envelope, obj)


def _not_an_event(message: str) -> InvalidInput:
    return InvalidSignature("payload", message)


def _id(obj: JSON, key: str) -> str | None:
    """A non-empty id, whether Stripe sent it as a string or as the expanded object."""
    value = obj.get(key)
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _reference(obj: JSON) -> str | None:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("reference"), str):
        return str(metadata["reference"])
    return _id(obj, "client_reference_id")


def _mode(obj: JSON) -> CheckoutMode:
    # Only a payment checkout pays by itself; every other mode is handled as a plan checkout.
    return CheckoutMode.PAYMENT if obj.get("mode") == "payment" else CheckoutMode.SUBSCRIPTION


def _checkout_completed(event: _Envelope, obj: JSON) -> PaymentEvent:
    session_id = _id(obj, "id")
    if session_id is None:
        raise InvalidInput("data.object.id", "checkout session id missing")
    mode = _mode(obj)
    return CheckoutCompleted(id=event.id, type=event.type, created=event.created, session_id=session_id, mode=mode,
                             paid=obj.get("payment_status") == "paid", reference=_reference(obj),
                             subscription_id=_id(obj, "subscription") if mode == CheckoutMode.SUBSCRIPTION else None)


def _checkout_expired(event: _Envelope, obj: JSON) -> PaymentEvent:
    session_id = _id(obj, "id")
    if session_id is None:
        return event.unhandled()
    return CheckoutExpired(id=event.id, type=event.type, created=event.created, session_id=session_id,
                           mode=_mode(obj), reference=_reference(obj))


def timestamp(value: object) -> datetime | None:
    """Unix seconds as a UTC datetime; None for anything else (a field Stripe would not send so is
    read as absent rather than failing the whole event)."""
    if type(value) is not int:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _period(obj: JSON) -> tuple[datetime | None, datetime | None]:
    start, end = timestamp(obj.get("current_period_start")), timestamp(obj.get("current_period_end"))
    items = obj.get("items")
    listed = items.get("data") if isinstance(items, dict) else None
    # Newer API versions keep the period on the subscription's items.
    if (start is None or end is None) and isinstance(listed, list) and listed and isinstance(listed[0], dict):
        first = listed[0]
        start, end = timestamp(first.get("current_period_start")), timestamp(first.get("current_period_end"))
    if start is not None and end is not None and end <= start:
        return None, None
    return start, end


def _price(obj: JSON) -> ProviderPrice | None:
    """The first item's price (our subscriptions have one item): id and lookup key."""
    items = obj.get("items")
    listed = items.get("data") if isinstance(items, dict) else None
    first = listed[0] if isinstance(listed, list) and listed and isinstance(listed[0], dict) else None
    price = first.get("price") if first is not None else None
    if isinstance(price, str) and price:
        return ProviderPrice(id=price)
    if not isinstance(price, dict):
        return None
    price_id, lookup_key = _id(price, "id"), price.get("lookup_key")
    if price_id is None:
        return None
    return ProviderPrice(id=price_id, lookup_key=lookup_key if isinstance(lookup_key, str) and lookup_key else None)


def _subscription_changed(event: _Envelope, obj: JSON) -> PaymentEvent:
    subscription_id, status = _id(obj, "id"), obj.get("status")
    if subscription_id is None or not isinstance(status, str) or status not in SUBSCRIPTION_STATUSES:
        return event.unhandled()
    start, end = _period(obj)
    return SubscriptionChanged(id=event.id, type=event.type, created=event.created,
                               provider_subscription_id=subscription_id, status=SUBSCRIPTION_STATUSES[status],
                               current_period_start=start, current_period_end=end, state_at=timestamp(event.created),
                               price=_price(obj), cancel_at_period_end=obj.get("cancel_at_period_end") is True)


def _invoice_paid(event: _Envelope, obj: JSON) -> PaymentEvent:
    customer, reference = _id(obj, "customer"), _reference(obj)
    if customer is None or reference is None:
        return event.unhandled()
    return InvoicePaid(id=event.id, type=event.type, created=event.created, customer_id=customer, reference=reference)


def _payment_succeeded(event: _Envelope, obj: JSON) -> PaymentEvent:
    payment_id, reference = _id(obj, "id"), _reference(obj)
    if payment_id is None and reference is None:
        return event.unhandled()
    return PaymentSucceeded(id=event.id, type=event.type, created=event.created, provider_payment_id=payment_id,
                            reference=reference)


def _payment_failed(event: _Envelope, obj: JSON) -> PaymentEvent:
    payment_id, reference = _id(obj, "id"), _reference(obj)
    if payment_id is None and reference is None:
        return event.unhandled()
    error = obj.get("last_payment_error")
    message = error.get("message") if isinstance(error, dict) else None
    return PaymentFailed(id=event.id, type=event.type, created=event.created, provider_payment_id=payment_id,
                         reference=reference, failure_message=message if isinstance(message, str) else None)


def _charge_refunded(event: _Envelope, obj: JSON) -> PaymentEvent:
    # Our payments are known by their PaymentIntent, which the charge names.
    intent = _id(obj, "payment_intent")
    if intent is None:
        return event.unhandled()
    return ChargeRefunded(id=event.id, type=event.type, created=event.created, provider_payment_id=intent,
                          fully_refunded=obj.get("refunded") is True)


def _dispute_created(event: _Envelope, obj: JSON) -> PaymentEvent:
    intent = _id(obj, "payment_intent")
    if intent is None:
        return event.unhandled()
    return DisputeCreated(id=event.id, type=event.type, created=event.created, provider_payment_id=intent)


def _setup_succeeded(event: _Envelope, obj: JSON) -> PaymentEvent:
    customer, method_id = _id(obj, "customer"), _id(obj, "payment_method")
    if customer is None or method_id is None:
        return event.unhandled()
    method = obj.get("payment_method")
    # Expanded, the method states its type; as a bare id (the usual webhook) it does not.
    stated = method.get("type") if isinstance(method, dict) else None
    return PaymentMethodCollected(id=event.id, type=event.type, created=event.created, customer_id=customer,
                                  provider_payment_method_id=method_id,
                                  payment_type=PAYMENT_TYPES.get(stated) if isinstance(stated, str) else None)


_TRANSLATIONS: dict[str, Callable[[_Envelope, JSON], PaymentEvent]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.expired": _checkout_expired,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "customer.subscription.paused": _subscription_changed,
    "customer.subscription.resumed": _subscription_changed,
    "invoice.paid": _invoice_paid,
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.payment_failed": _payment_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "setup_intent.succeeded": _setup_succeeded,
}
HANDLED_EVENT_TYPES = frozenset(_TRANSLATIONS)
"""The Stripe event types that become core events; every other type is an ``UnhandledEvent``."""
