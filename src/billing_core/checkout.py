"""Embedded checkout for plan subscriptions, trials and guest checkouts.

"Start trial" only when the organization has no billing history; otherwise "Proceed to payment".
Only the primary-owner may start checkout; the plan selector is visible to everyone.
A guest checkout (no signed-in user) is recorded by email and claimed on the next verified login
with the same email.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from billing_core.catalog import Catalog, PlanCode
from billing_core.errors import InvalidInput
from billing_core.permissions import DENIAL_MESSAGES, Action, Actor, allows
from billing_core.plan_subscription import SUBSCRIBED, SubscriptionStatus


class PlanAction(StrEnum):
    START_TRIAL = "start_trial"
    PROCEED_TO_PAYMENT = "proceed_to_payment"


ACTION_LABELS = {PlanAction.START_TRIAL: "Start trial", PlanAction.PROCEED_TO_PAYMENT: "Proceed to payment"}


class CheckoutStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"
    CANCELED = "canceled"


def plan_action(has_billing_history: bool) -> PlanAction:
    return PlanAction.PROCEED_TO_PAYMENT if has_billing_history else PlanAction.START_TRIAL


class PlanChoice(msgspec.Struct, frozen=True):
    code: PlanCode
    name: str
    description: str
    price_cents: int
    currency_iso: str
    interval: str
    features: tuple[str, ...]
    action: PlanAction
    action_label: str
    enabled: bool
    disabled_reason: str | None


# Why checkout is closed while a subscription that is not active still exists (it must be recovered,
# not replaced): "already has an active subscription" would be untrue for these.
_NOT_ACTIVE_REASONS = {
    SubscriptionStatus.UNPAID: "The workspace's subscription is unpaid — update your payment method",
    SubscriptionStatus.PAUSED: "The workspace's subscription is paused — resume it to continue",
    SubscriptionStatus.INCOMPLETE: "The workspace's subscription is awaiting payment confirmation",
}


def plan_choices(catalog: Catalog, *, actor: Actor, has_billing_history: bool, has_active_subscription: bool,
                 subscription_status: SubscriptionStatus | None = None) -> tuple[PlanChoice, ...]:
    """The plan selector. ``has_active_subscription`` is true while a subscription that has not
    ended exists (checkout is then closed); ``subscription_status`` says which, for the reason."""
    action = plan_action(has_billing_history)
    allowed = allows(actor, Action.SUBSCRIBE_TO_PLAN)
    reason = None
    if not allowed:
        reason = DENIAL_MESSAGES[Action.SUBSCRIBE_TO_PLAN]
    elif has_active_subscription:
        reason = "The workspace already has an active subscription; change plans instead"
        if subscription_status is not None and subscription_status not in SUBSCRIBED:
            reason = _NOT_ACTIVE_REASONS.get(subscription_status, "The workspace already has a subscription")
    return tuple(
        PlanChoice(p.code, p.name, p.description, p.price_cents, catalog.currency, p.interval, p.features,
                   action, ACTION_LABELS[action], allowed and not has_active_subscription, reason)
        for p in catalog.plans
    )


class CheckoutSession(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID | None
    """None for a guest checkout until it is claimed."""
    plan: PlanCode
    trial: bool
    status: CheckoutStatus
    client_secret: str
    return_url: str
    created_at: datetime
    provider_session_id: str | None = None
    guest_email: str | None = None
    completed_at: datetime | None = None
    claimed_at: datetime | None = None
    subscription_id: uuid.UUID | None = None
    provider_subscription_id: str | None = None
    """The provider's subscription, known once checkout completes (a guest's waits for the claim)."""


MAX_RETURN_URL_LENGTH = 2000


def check_return_url(return_url: object, *, field: str = "return_url") -> str:
    """The one rule for every page we send a customer back to (checkout, guest checkout, billing
    portal, crypto top-up): an ``http(s)://host/...`` URL or an absolute path (``/billing``).

    Refused, as ``InvalidInput(code="invalid_url")``: any other scheme (``javascript:``, ``data:``),
    a protocol-relative ``//host`` (or ``///host``) or an ``http:`` without a host, and anything a browser would
    read differently from us: backslashes (``/\\evil.example`` is ``//evil.example`` to a browser),
    whitespace, control and invisible format characters (browsers drop tabs and newlines inside a
    URL, so ``java\tscript:`` runs), and more than 2,000 characters.
    """
    if not isinstance(return_url, str) or not 0 < len(return_url) <= MAX_RETURN_URL_LENGTH:
        raise InvalidInput(field, f"{field} must be an http(s) URL or an absolute path of at most "
                           f"{MAX_RETURN_URL_LENGTH} characters", code="invalid_url")
    if "\\" in return_url or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in return_url):
        raise InvalidInput(field, f"{field} must not contain backslashes, spaces or control characters",
                           code="invalid_url")
    try:
        parts = urlsplit(return_url)
        host = parts.hostname
    except ValueError:  # an unbalanced IPv6 bracket
        host, parts = None, urlsplit("")
    # Browsers read any run of leading slashes as a host to come: "///evil.example" is "//evil.example".
    if parts.scheme == "" and return_url.startswith("/") and not return_url.startswith("//"):
        return return_url
    if parts.scheme.lower() in ("http", "https") and host and return_url.lower().startswith(f"{parts.scheme}://"):
        return return_url
    raise InvalidInput(field, f"{field} must be an http(s) URL or an absolute path such as /billing",
                       code="invalid_url")


def return_url_with_status(return_url: str, session_id: str, status: CheckoutStatus) -> str:
    """The page the customer returns to, carrying the checkout id and status in its query."""
    parts = urlsplit(return_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("checkout_session_id", "checkout_status")]
    query += [("checkout_session_id", session_id), ("checkout_status", status.value)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def claimable(session: CheckoutSession, actor: Actor) -> bool:
    """A guest checkout is claimed only by a verified login with the same email."""
    return (session.organization_id is None and session.status == CheckoutStatus.COMPLETE
            and session.guest_email is not None and actor.email is not None and actor.email_verified
            and session.guest_email.casefold() == actor.email.casefold())
