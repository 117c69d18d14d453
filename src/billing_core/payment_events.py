"""What the payment provider tells us happened, in our words.

:meth:`~billing_core.ports.PaymentProvider.parse_event` verifies an inbound event and translates it
into one of these values; :mod:`billing_core.services.provider_events` applies them. The provider's
own shapes (Stripe's objects, its status strings, where it keeps a period or a reference) stay in
its adapter; the core matches on these types only.

Every event carries the provider's ``id`` (the inbox remembers it, so a repeat runs nothing), its
``type`` as the provider names it (answered back and logged, never matched on) and ``created``, the
Unix second the provider says it happened. An event the core does not act on, or whose object lacks
what acting on it needs, is an :class:`UnhandledEvent`: remembered like any other, otherwise ignored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.payments import PaymentType
from billing_core.plan_subscription import SubscriptionStatus


class ProviderEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What every event carries."""

    id: str
    type: str
    """The provider's name for the event (``checkout.session.completed``): for answers and logs."""
    created: int
    """Unix seconds, when the provider says the event happened."""


class CheckoutMode(StrEnum):
    SUBSCRIPTION = "subscription"
    """A plan checkout: completing it starts the plan subscription."""
    PAYMENT = "payment"
    """A one-off payment (crypto credits): the checkout session is the payment."""


class CheckoutCompleted(ProviderEvent, frozen=True, kw_only=True):
    """The customer finished a checkout (or its delayed payment went through)."""

    session_id: str
    mode: CheckoutMode
    paid: bool
    """The checkout's payment has settled (a plan checkout with a trial has none to settle)."""
    subscription_id: str | None = None
    """The provider subscription a plan checkout created."""
    reference: str | None = None
    """Our id the checkout was opened with (a payment's id for a payment checkout)."""


class CheckoutExpired(ProviderEvent, frozen=True, kw_only=True):
    """An open checkout was not completed in time."""

    session_id: str
    mode: CheckoutMode
    reference: str | None = None


class PaymentSucceeded(ProviderEvent, frozen=True, kw_only=True):
    """A payment we asked for settled. At least one of the two ids is set."""

    provider_payment_id: str | None
    reference: str | None = None
    """Our payment id, as the payment was created with it."""


class PaymentFailed(ProviderEvent, frozen=True, kw_only=True):
    """A payment we asked for failed for good. At least one of the two ids is set."""

    provider_payment_id: str | None
    reference: str | None = None
    failure_message: str | None = None
    """The provider's explanation, for the customer."""


class ChargeRefunded(ProviderEvent, frozen=True, kw_only=True):
    """Money of a payment went back to the customer at the provider."""

    provider_payment_id: str
    fully_refunded: bool
    """The whole payment is refunded (a partial refund leaves this False)."""


class DisputeCreated(ProviderEvent, frozen=True, kw_only=True):
    """The customer disputed a payment with their bank."""

    provider_payment_id: str


class SubscriptionChanged(ProviderEvent, frozen=True, kw_only=True):
    """The provider's plan subscription is now in ``status`` (created, updated, paused, deleted...)."""

    provider_subscription_id: str
    status: SubscriptionStatus
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    """The period the provider names (None: it names none); when both are set, the end is after the start."""
    state_at: datetime | None = None
    """When the subscription was in that state (the event's ``created``); None when that is not a
    representable time. An event older than the state last applied is stale (ADR 0008)."""
    price: ProviderPrice | None = None
    """The price the subscription bills now (its first item's); None when the event does not say.
    A price the catalog maps to another plan than ours is a plan change made at the provider (the
    billing portal)."""
    cancel_at_period_end: bool = False
    """The subscription ends when the current period does (cancelled in the billing portal)."""


class ProviderPrice(msgspec.Struct, frozen=True, kw_only=True):
    """A provider price as an event names it: its id and its lookup key (our plan code, by convention)."""

    id: str
    lookup_key: str | None = None


class InvoicePaid(ProviderEvent, frozen=True, kw_only=True):
    """A hosted invoice of the customer was paid."""

    customer_id: str
    reference: str
    """Our invoice id, as the invoice was issued with it."""


class PaymentMethodCollected(ProviderEvent, frozen=True, kw_only=True):
    """The customer saved a payment method through the provider's own form (a setup intent)."""

    customer_id: str
    provider_payment_method_id: str
    payment_type: PaymentType | None = None
    """The method's type as the provider states it in the event; None when the event does not say
    (the provider describes the method again when it is attached)."""


class UnhandledEvent(ProviderEvent, frozen=True, kw_only=True):
    """Any other event, or one whose object lacks what acting on it needs."""


PaymentEvent = (CheckoutCompleted | CheckoutExpired | PaymentSucceeded | PaymentFailed | ChargeRefunded
                | DisputeCreated | SubscriptionChanged | InvoicePaid | PaymentMethodCollected | UnhandledEvent)
"""Everything :meth:`~billing_core.ports.PaymentProvider.parse_event` returns."""
