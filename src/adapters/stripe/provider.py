"""The :class:`~billing_core.ports.PaymentProvider` port on Stripe, through the official SDK.

One :class:`stripe.StripeClient` per provider instance (the container builds one per process); the
global ``stripe.api_key`` is never touched and nothing is built at import time. Every mutating call
carries an idempotency key derived from our own operation id (``payment:<id>``, ``refund:<id>``,
``customer-create:<org id>``, ...), and the SDK retries network failures and 5xx answers with that
same key, so a retry can never charge, refund or create twice. Amounts go to Stripe as integer
minor units (cents), currencies in lower case.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

import msgspec
import stripe

from adapters.stripe.errors import is_authentication_required, translate
from adapters.stripe.events import PAYMENT_TYPES, to_payment_event
from billing_core.catalog import Plan
from billing_core.errors import (
    CryptoUnavailable,
    InvalidInput,
    InvalidSignature,
    MalformedBody,
    NotFound,
    NothingToRefund,
    ProviderRefused,
    ProviderUnavailable,
)
from billing_core.organization import Organization
from billing_core.payloads import check_json_depth
from billing_core.payment_events import PaymentEvent
from billing_core.payments import PaymentType, ProviderPaymentMethod
from billing_core.ports import ChargeResult, ChargeStatus, HostedInvoice, ProviderCheckout

if TYPE_CHECKING:
    from stripe.params import (
        CustomerCreateParams,
        InvoiceCreateParams,
        InvoiceItemCreateParams,
        PaymentIntentCreateParams,
        RefundCreateParams,
        SubscriptionUpdateParams,
        SubscriptionUpdateParamsItem,
    )
    from stripe.params.checkout import (
        SessionCreateParams,
        SessionCreateParamsLineItemPriceDataProductData,
        SessionCreateParamsSubscriptionData,
    )

CHECKOUT_SESSION_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"
"""Stripe replaces this in ``return_url`` with the session id when the customer comes back."""

EMBEDDED_UI_MODE = "embedded_page"
"""Embedded Checkout. Called ``embedded`` before API version 2026-03-25.dahlia; the SDK pins a newer one."""

_INTERVALS = frozenset({"day", "week", "month", "year"})

PAYMENT_METHOD_ID = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")
"""The shape of a Stripe PaymentMethod id."""

_CHARGE_STATUS: dict[str, ChargeStatus] = {
    "succeeded": ChargeStatus.SUCCEEDED,
    "processing": ChargeStatus.PROCESSING,
    "requires_capture": ChargeStatus.PROCESSING,
    "requires_action": ChargeStatus.REQUIRES_ACTION,
    "requires_confirmation": ChargeStatus.REQUIRES_ACTION,
    "requires_payment_method": ChargeStatus.FAILED,
    "canceled": ChargeStatus.FAILED,
}

_DECLINED = "Your card was declined."


class StripePaymentProvider:
    """Payments on Stripe.

    ``api_base`` points the SDK elsewhere (the tests' local stub). ``currency`` prices plan checkouts
    (the catalog's currency: plans carry no currency of their own). ``return_base_url`` turns the
    relative return paths the core accepts (``/billing/credits``) into the absolute URLs Stripe needs.
    ``http_client`` lets a host pass its own transport (proxies, timeouts; tests drop the retry backoff).
    """

    def __init__(self, api_key: str, webhook_secret: str, *, api_base: str | None = None,
                 max_network_retries: int = 2, crypto_enabled: bool = True, currency: str = "usd",
                 return_base_url: str | None = None, http_client: stripe.HTTPClient | None = None) -> None:
        if not api_key:
            raise ValueError("a Stripe API key is required")
        if not webhook_secret:
            raise ValueError("a Stripe webhook signing secret is required")
        self._webhook_secret = webhook_secret
        self._crypto_enabled = crypto_enabled
        self._currency = currency.lower()
        self._return_base_url = return_base_url
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries, http_client=http_client)

    # ----------------------------------------------------------------- customers

    def ensure_customer(self, organization: Organization, email: str | None) -> str:
        """Reuse the organization's customer, else find it by metadata, else create it.

        The create carries ``customer-create:<org id>`` as idempotency key, so a retry (or a second
        call before Stripe's search index shows the first customer) replays the same customer.
        """
        if organization.provider_customer_id:
            return organization.provider_customer_id
        org_id = str(organization.id)
        found = self._find_customer(org_id)
        if found is not None:
            return found
        key = f"customer-create:{org_id}"
        params: CustomerCreateParams = {"name": organization.name, "metadata": {"organization_id": org_id}}
        if email:
            params["email"] = email
        try:
            customer = self._client.v1.customers.create(params, {"idempotency_key": key})
        except stripe.IdempotencyError as exc:
            # The key was first used with other details (the billing email changed): that customer
            # exists but search does not show it yet. Asking again later finds it.
            found = self._find_customer(org_id)
            if found is not None:
                return found
            raise ProviderUnavailable("Stripe has not indexed the organization's customer yet, try again") from exc
        except stripe.StripeError as exc:
            raise translate(exc, idempotency_key=key) from exc
        return customer.id

    def _find_customer(self, org_id: str) -> str | None:
        try:
            result = self._client.v1.customers.search(
                {"query": f"metadata['organization_id']:'{org_id}'", "limit": 10})
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        live = [c for c in result.data if not getattr(c, "deleted", False)]
        if not live:
            return None
        return min(live, key=lambda c: (c.created, c.id)).id

    # ----------------------------------------------------------------- checkout

    def create_checkout_session(self, *, customer_id: str | None, guest_email: str | None, plan: Plan,
                                trial_days: int | None, return_url: str, reference: str,
                                idempotency_key: str) -> ProviderCheckout:
        """An embedded subscription Checkout Session for ``plan`` (price inline, in the catalog currency)."""
        if plan.interval not in _INTERVALS:
            raise InvalidInput("plan.interval", f"Stripe cannot bill every {plan.interval!r}",
                               code="unsupported_interval")
        product: SessionCreateParamsLineItemPriceDataProductData = {
            "name": plan.name, "metadata": {"plan": str(plan.code)}}
        if plan.description:
            product["description"] = plan.description
        metadata = {"reference": reference, "plan": str(plan.code)}
        subscription_data: SessionCreateParamsSubscriptionData = {"metadata": dict(metadata)}
        if trial_days:
            subscription_data["trial_period_days"] = trial_days
        params: SessionCreateParams = {
            "ui_mode": EMBEDDED_UI_MODE,
            "mode": "subscription",
            "return_url": self._return_url(return_url, session_placeholder=True),
            "line_items": [{"quantity": 1, "price_data": {
                "currency": self._currency, "unit_amount": plan.price_cents,
                "recurring": {"interval": plan.interval}, "product_data": product}}],
            "subscription_data": subscription_data,
            "client_reference_id": reference,
            "metadata": metadata,
        }
        if customer_id:
            params["customer"] = customer_id
        elif guest_email:
            params["customer_email"] = guest_email
        return self._checkout(params, idempotency_key)

    def create_crypto_checkout(self, *, customer_id: str, amount_cents: int, currency_iso: str,
                               return_url: str, reference: str, idempotency_key: str) -> ProviderCheckout:
        """An embedded one-off payment Checkout Session paid in crypto (stablecoins)."""
        if not self._crypto_enabled:
            raise CryptoUnavailable("crypto payments are not enabled for this Stripe account")
        _check_amount(amount_cents)
        params: SessionCreateParams = {
            "ui_mode": EMBEDDED_UI_MODE,
            "mode": "payment",
            # ``payment_method_types`` is gone from Checkout since 2026-09-30.endive (the SDK's pinned
            # version is newer); ``allowed_payment_method_types`` filters the dynamic methods to crypto.
            "allowed_payment_method_types": ["crypto"],
            "customer": customer_id,
            "return_url": self._return_url(return_url, session_placeholder=True),
            "line_items": [{"quantity": 1, "price_data": {
                "currency": currency_iso.lower(), "unit_amount": amount_cents,
                "product_data": {"name": "Usage credits"}}}],
            "client_reference_id": reference,
            "metadata": {"reference": reference},
        }
        return self._checkout(params, idempotency_key)

    def _checkout(self, params: SessionCreateParams, idempotency_key: str) -> ProviderCheckout:
        try:
            session = self._client.v1.checkout.sessions.create(params, {"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise translate(exc, idempotency_key=idempotency_key) from exc
        if not session.client_secret:
            raise ProviderRefused("Stripe returned a checkout session without a client secret")
        return ProviderCheckout(provider_session_id=session.id, client_secret=session.client_secret,
                                url=session.url)

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        try:
            session = self._client.v1.billing_portal.sessions.create(
                {"customer": customer_id, "return_url": self._return_url(return_url)})
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return session.url

    def checkout_status(self, provider_session_id: str) -> str:
        """The Checkout Session's ``status`` (open, complete, expired) as Stripe has it now."""
        try:
            session = self._client.v1.checkout.sessions.retrieve(provider_session_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                raise NotFound("checkout session", provider_session_id) from exc
            raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return session.status or "open"

    # ----------------------------------------------------------------- subscriptions

    def change_subscription_plan(self, *, provider_subscription_id: str, plan: Plan, proration_at: datetime,
                                 reference: str, idempotency_key: str) -> HostedInvoice | None:
        """Swap the subscription item's price for ``plan``'s with ``proration_behavior=always_invoice``
        (Stripe invoices the proration at once and charges the default method), prorated as of
        ``proration_at``; the answer's expanded ``latest_invoice`` is that invoice.

        The price is the catalog's ``provider_price_id``, else the active price whose lookup key is
        the plan code, else an inline price of the plan's amount on the item's product. The update
        carries ``<key>:subscription``, so a retry replays the first swap instead of a second one."""
        if plan.interval not in _INTERVALS:
            raise InvalidInput("plan.interval", f"Stripe cannot bill every {plan.interval!r}",
                               code="unsupported_interval")
        try:
            subscription = self._client.v1.subscriptions.retrieve(provider_subscription_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                raise NotFound("provider subscription", provider_subscription_id) from exc
            raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        if not subscription.items.data:
            raise ProviderRefused("the Stripe subscription has no item to change")
        item = subscription.items.data[0]
        price_id = plan.provider_price_id or self._price_by_lookup_key(str(plan.code))
        swap: SubscriptionUpdateParamsItem = {"id": item.id}
        if price_id is not None:
            swap["price"] = price_id
        else:
            product = item.price.product
            swap["price_data"] = {"currency": self._currency, "unit_amount": plan.price_cents,
                                  "recurring": {"interval": plan.interval},
                                  "product": product if isinstance(product, str) else product.id}
        params: SubscriptionUpdateParams = {
            "items": [swap],
            "proration_behavior": "always_invoice",
            "proration_date": int(proration_at.timestamp()),
            "metadata": {"plan": str(plan.code), "plan_change": reference},
            "expand": ["latest_invoice"],
        }
        key = f"{idempotency_key}:subscription"
        try:
            updated = self._client.v1.subscriptions.update(provider_subscription_id, params,
                                                           {"idempotency_key": key})
        except stripe.StripeError as exc:
            raise translate(exc, idempotency_key=key) from exc
        invoice = updated.latest_invoice
        if invoice is None or isinstance(invoice, str):
            return None
        return HostedInvoice(provider_invoice_id=_invoice_id(invoice), hosted_invoice_url=invoice.hosted_invoice_url,
                             status=invoice.status or "open")

    def _price_by_lookup_key(self, lookup_key: str) -> str | None:
        try:
            found = self._client.v1.prices.list({"lookup_keys": [lookup_key], "active": True, "limit": 1})
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return found.data[0].id if found.data else None

    def _return_url(self, url: str, *, session_placeholder: bool = False) -> str:
        """Absolute, and for Checkout carrying ``session_id={CHECKOUT_SESSION_ID}`` unless it already has
        the placeholder (the braces stay literal: Stripe substitutes them)."""
        if url.startswith("/") and not url.startswith("//"):
            if not self._return_base_url:
                raise InvalidInput("return_url", "Stripe needs an absolute return URL; configure a return base URL",
                                   code="invalid_url")
            url = urljoin(self._return_base_url, url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput("return_url", "return_url must be an absolute http(s) URL", code="invalid_url")
        if session_placeholder and CHECKOUT_SESSION_PLACEHOLDER not in url:
            query = f"{parts.query}&" if parts.query else ""
            url = urlunsplit(parts._replace(query=f"{query}session_id={CHECKOUT_SESSION_PLACEHOLDER}"))
        return url

    # ----------------------------------------------------------------- payment methods

    def create_setup_intent(self, *, customer_id: str, idempotency_key: str) -> str:
        try:
            intent = self._client.v1.setup_intents.create(
                {"customer": customer_id, "usage": "off_session", "automatic_payment_methods": {"enabled": True}},
                {"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise translate(exc, idempotency_key=idempotency_key) from exc
        if not intent.client_secret:
            raise ProviderRefused("Stripe returned a setup intent without a client secret")
        return intent.client_secret

    def attach_payment_method(self, *, customer_id: str, provider_payment_method_id: str) -> ProviderPaymentMethod:
        """Attach (a no-op when already attached to this customer) and describe the method."""
        try:
            method = self._client.v1.payment_methods.attach(provider_payment_method_id, {"customer": customer_id})
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return describe_payment_method(method)

    def set_default_payment_method(self, *, customer_id: str, provider_payment_method_id: str) -> None:
        try:
            self._client.v1.customers.update(
                customer_id, {"invoice_settings": {"default_payment_method": provider_payment_method_id}})
        except stripe.StripeError as exc:
            raise translate(exc) from exc

    def detach_payment_method(self, *, provider_payment_method_id: str) -> None:
        """Idempotent: a method Stripe no longer knows, or that is attached to nobody, is already detached."""
        try:
            self._client.v1.payment_methods.detach(provider_payment_method_id)
        except stripe.InvalidRequestError as exc:
            # "not attached to a customer so detachment is impossible" has no code of its own: look.
            if exc.code == "resource_missing" or not self._is_attached(provider_payment_method_id):
                return
            raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc

    def _is_attached(self, provider_payment_method_id: str) -> bool:
        try:
            method = self._client.v1.payment_methods.retrieve(provider_payment_method_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return False
            raise translate(exc) from exc
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return method.customer is not None

    # ----------------------------------------------------------------- money

    def charge(self, *, customer_id: str, provider_payment_method_id: str | None, amount_cents: int,
               currency_iso: str, description: str, reference: str, idempotency_key: str) -> ChargeResult:
        """An off-session PaymentIntent, confirmed at once. Without a method, the customer's default pays."""
        _check_amount(amount_cents)
        method = provider_payment_method_id or self._default_method(customer_id)
        params: PaymentIntentCreateParams = {
            "amount": amount_cents,
            "currency": currency_iso.lower(),
            "customer": customer_id,
            "payment_method": method,
            "confirm": True,
            "off_session": True,
            "description": description,
            "metadata": {"reference": reference},
            # Off-session there is nobody to redirect: only methods that need no redirect may pay.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        try:
            intent = self._client.v1.payment_intents.create(params, {"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            return _declined(exc)
        except stripe.StripeError as exc:
            raise translate(exc, idempotency_key=idempotency_key) from exc
        status = _CHARGE_STATUS.get(intent.status, ChargeStatus.PROCESSING)
        if status == ChargeStatus.FAILED:
            error = intent.last_payment_error
            return ChargeResult(provider_payment_id=intent.id, status=status,
                                failure_message=(error.message if error else None) or "the payment failed")
        return ChargeResult(provider_payment_id=intent.id, status=status,
                            client_secret=intent.client_secret if status == ChargeStatus.REQUIRES_ACTION else None)

    def _default_method(self, customer_id: str) -> str:
        try:
            customer = self._client.v1.customers.retrieve(customer_id)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        settings = None if getattr(customer, "deleted", False) else customer.invoice_settings
        default = settings.default_payment_method if settings is not None else None
        if default is None:
            raise InvalidInput("payment_method_id", "add a payment method first", code="payment_method_required")
        return default if isinstance(default, str) else default.id

    def refund(self, *, provider_payment_id: str, amount_cents: int, idempotency_key: str) -> str:
        """Refund a PaymentIntent (``pi_``), a charge (``ch_``) or a paid Checkout Session (``cs_``)."""
        _check_amount(amount_cents)
        params: RefundCreateParams = {"amount": amount_cents}
        if provider_payment_id.startswith("ch_"):
            params["charge"] = provider_payment_id
        elif provider_payment_id.startswith("cs_"):
            params["payment_intent"] = self._session_payment_intent(provider_payment_id)
        else:
            params["payment_intent"] = provider_payment_id
        try:
            refund = self._client.v1.refunds.create(params, {"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise translate(exc, idempotency_key=idempotency_key) from exc
        return refund.id

    def _session_payment_intent(self, session_id: str) -> str:
        try:
            session = self._client.v1.checkout.sessions.retrieve(session_id)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        intent = session.payment_intent
        if intent is None:
            raise NothingToRefund("provider_payment_id", "the checkout session has not been paid")
        return intent if isinstance(intent, str) else intent.id

    def issue_invoice(self, *, customer_id: str, amount_cents: int, currency_iso: str, description: str,
                      reference: str, idempotency_key: str) -> HostedInvoice:
        """Draft invoice, one invoice item on it, finalize. Each step has its own key derived from
        ``idempotency_key``, so a retry after a partial failure reuses what the first attempt made."""
        _check_amount(amount_cents)
        currency = currency_iso.lower()
        metadata = {"reference": reference}
        invoice_params: InvoiceCreateParams = {
            "customer": customer_id, "currency": currency, "description": description, "metadata": metadata,
            "auto_advance": True, "collection_method": "charge_automatically",
            "pending_invoice_items_behavior": "exclude",
        }
        key = f"{idempotency_key}:invoice"
        try:
            draft = self._client.v1.invoices.create(invoice_params, {"idempotency_key": key})
            invoice_id = _invoice_id(draft)
            item_params: InvoiceItemCreateParams = {
                "customer": customer_id, "invoice": invoice_id, "amount": amount_cents, "currency": currency,
                "description": description, "metadata": metadata}
            key = f"{idempotency_key}:item"
            self._client.v1.invoice_items.create(item_params, {"idempotency_key": key})
            key = f"{idempotency_key}:finalize"
            final = self._client.v1.invoices.finalize_invoice(invoice_id, {"auto_advance": True},
                                                              {"idempotency_key": key})
        except stripe.StripeError as exc:
            raise translate(exc, idempotency_key=key) from exc
        return HostedInvoice(provider_invoice_id=_invoice_id(final), hosted_invoice_url=final.hosted_invoice_url,
                             status=final.status or "open")

    # ----------------------------------------------------------------- events

    def is_payment_method_id(self, value: str) -> bool:
        """A PaymentMethod id (``pm_...``). Legacy ``card_``/``src_`` ids are not taken."""
        return bool(PAYMENT_METHOD_ID.match(value))

    def parse_event(self, payload: bytes, signature_header: str | None) -> PaymentEvent:
        """Verify ``Stripe-Signature`` (HMAC-SHA256, 5 minutes tolerance) and translate the event
        (:func:`adapters.stripe.events.to_payment_event`).

        A payload nested deeper than :data:`~billing_core.payloads.MAX_JSON_DEPTH` is refused as
        :class:`~billing_core.errors.MalformedBody` before anything decodes it."""
        check_json_depth(payload, field="payload")
        try:
            # The SDK's check only: the body is decoded once, by us, into the core's terms.
            stripe.WebhookSignature.verify_header(payload, signature_header, self._webhook_secret,
                                                  stripe.Webhook.DEFAULT_TOLERANCE)
            body = json.loads(payload)
        except RecursionError:
            raise MalformedBody("the event payload nests too deep", field="payload") from None
        except (stripe.SignatureVerificationError, ValueError) as exc:
            # ValueError: not UTF-8 or not JSON, which no genuine Stripe delivery is.
            raise InvalidSignature("Stripe-Signature", "the webhook signature does not verify") from exc
        return to_payment_event(body)


def describe_payment_method(method: stripe.PaymentMethod) -> ProviderPaymentMethod:
    """Our view of a Stripe PaymentMethod. SEPA: the last four IBAN digits only, never the IBAN."""
    payment_type = PAYMENT_TYPES.get(method.type)
    if payment_type is None:
        raise InvalidInput("payment_method_id", f"payment methods of type {method.type!r} are not supported",
                           code="unsupported_payment_method")
    described = ProviderPaymentMethod(
        provider_payment_method_id=method.id, payment_type=payment_type,
        name=method.billing_details.name if method.billing_details is not None else None)
    if payment_type == PaymentType.CARD and method.card is not None:
        card = method.card
        return msgspec.structs.replace(described, brand=card.brand, last4=card.last4, exp_month=card.exp_month,
                                       exp_year=card.exp_year)
    if payment_type == PaymentType.SEPA_DEBIT and method.sepa_debit is not None:
        return msgspec.structs.replace(described, iban_last4=method.sepa_debit.last4)
    if payment_type == PaymentType.US_BANK_ACCOUNT and method.us_bank_account is not None:
        bank = method.us_bank_account
        return msgspec.structs.replace(described, brand=bank.bank_name, last4=bank.last4)
    return described


def _declined(exc: stripe.CardError) -> ChargeResult:
    """A refused off-session charge is an answer, not an error: FAILED, or REQUIRES_ACTION when the
    issuer wants 3-D Secure (the client secret lets the customer authenticate on-session)."""
    error = exc.error
    intent = error.payment_intent if error is not None else None
    payment_id = intent.id if intent is not None else ((error.charge if error is not None else None) or "")
    message = exc.user_message or _DECLINED
    if is_authentication_required(exc):
        return ChargeResult(provider_payment_id=payment_id, status=ChargeStatus.REQUIRES_ACTION,
                            client_secret=intent.client_secret if intent is not None else None,
                            failure_message=message)
    return ChargeResult(provider_payment_id=payment_id, status=ChargeStatus.FAILED, failure_message=message)


def _invoice_id(invoice: stripe.Invoice) -> str:
    if not invoice.id:
        raise ProviderRefused("Stripe returned an invoice without an id")
    return invoice.id


def _check_amount(amount_cents: int) -> None:
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidInput("amount_cents", "the amount must be a positive whole number of cents")
