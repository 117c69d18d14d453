"""An in-memory payment provider: the offline default and the tests' controllable provider.

It keeps customers, payment methods, payments and refunds as plain attributes and honours
idempotency keys like a real provider: the same key returns the first result. Tests steer it with
``decline_next`` / ``fail_with`` and read what happened from ``charges``, ``refunds``, ``calls``.

Its webhooks speak Stripe's dialect (the same bodies and ``Stripe-Signature`` header), so the one
translation of :mod:`adapters.stripe.events` turns them into the core's events: the offline
provider and Stripe cannot disagree on what an event means.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from datetime import datetime
from typing import Any

import msgspec

from adapters.stripe.events import to_payment_event
from billing_core.catalog import Plan
from billing_core.errors import (
    InvalidInput,
    InvalidSignature,
    MalformedBody,
    NotFound,
    PaymentError,
    ProviderUnavailable,
)
from billing_core.organization import Organization
from billing_core.payloads import check_json_depth
from billing_core.payment_events import PaymentEvent
from billing_core.payments import PaymentType, ProviderPaymentMethod
from billing_core.ports import ChargeResult, ChargeStatus, HostedInvoice, ProviderCheckout

# Test card numbers in the spirit of Stripe's: pm ids the fake knows how to describe.
KNOWN_METHODS: dict[str, ProviderPaymentMethod] = {
    "pm_card_visa": ProviderPaymentMethod(provider_payment_method_id="pm_card_visa", payment_type=PaymentType.CARD,
                                          brand="visa", last4="4242", exp_month=12, exp_year=2034,
                                          name="Ada Lovelace"),
    "pm_card_mastercard": ProviderPaymentMethod(provider_payment_method_id="pm_card_mastercard",
                                                payment_type=PaymentType.CARD, brand="mastercard", last4="4444",
                                                exp_month=3, exp_year=2031, name="Ada Lovelace"),
    "pm_card_chargeDeclined": ProviderPaymentMethod(provider_payment_method_id="pm_card_chargeDeclined",
                                                    payment_type=PaymentType.CARD, brand="visa", last4="0002",
                                                    exp_month=1, exp_year=2033, name="Declined Card"),
    "pm_card_authenticationRequired": ProviderPaymentMethod(provider_payment_method_id="pm_card_authenticationRequired",
                                                            payment_type=PaymentType.CARD, brand="visa", last4="3184",
                                                            exp_month=5, exp_year=2032, name="Ada Lovelace"),
    "pm_sepa_debit": ProviderPaymentMethod(provider_payment_method_id="pm_sepa_debit",
                                           payment_type=PaymentType.SEPA_DEBIT, iban_last4="3000",
                                           name="Ada Lovelace"),
}


PAYMENT_METHOD_ID = re.compile(r"^pm_[A-Za-z0-9_]{1,200}$")
"""Payment-method ids look like Stripe's."""

SIGNATURE_TOLERANCE_SECONDS = 300
"""Like Stripe: a signature older than this is refused, so a captured delivery cannot be replayed later."""


class InMemoryPaymentProvider:
    """Offline payments. ``webhook_secret`` signs events the way Stripe does (t=..,v1=HMAC)."""

    def __init__(self, *, webhook_secret: str = "whsec_offline", auto_succeed: bool = True,  # noqa: S107
                 signature_tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
                 id_namespace: str | None = None) -> None:
        self.webhook_secret = webhook_secret
        self.id_namespace = secrets.token_hex(6) if id_namespace is None else id_namespace
        """Part of every id this provider makes: random by default, so that a provider made after a
        restart never reuses an id stored before it (``cs_``, ``pi_`` ...); a test that replays a run
        with the same ids passes a fixed one."""
        self.auto_succeed = auto_succeed
        self.signature_tolerance_seconds = signature_tolerance_seconds
        self._lock = threading.Lock()
        self._seq = 0
        self.customers: dict[str, str] = {}
        """organization id → customer id"""
        self.attached: dict[str, str] = {}
        """payment method id → customer id"""
        self.defaults: dict[str, str] = {}
        self.charges: dict[str, ChargeResult] = {}
        """idempotency key → result"""
        self.charge_requests: list[dict[str, Any]] = []
        self.refunds: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, HostedInvoice] = {}
        self.checkouts: dict[str, ProviderCheckout] = {}
        self.checkout_statuses: dict[str, str] = {}
        """provider session id → status, for sessions a test moved on (default: open)"""
        self.plan_swaps: dict[str, HostedInvoice] = {}
        """idempotency key → the proration invoice of a subscription plan swap"""
        self.subscription_plans: dict[str, str] = {}
        """provider subscription id → the plan code it bills after a swap"""
        self.setup_intents: dict[str, str] = {}
        """idempotency key → client secret"""
        self.calls: list[str] = []
        self.decline_next = 0
        self.require_action_next = 0
        self.fail_with: PaymentError | ProviderUnavailable | None = None

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self.id_namespace}{self._seq:06d}"

    def _enter(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_with is not None:
            raise self.fail_with

    def ensure_customer(self, organization: Organization, email: str | None) -> str:
        with self._lock:
            self._enter("ensure_customer")
            key = str(organization.id)
            if key not in self.customers:
                self.customers[key] = organization.provider_customer_id or self._next_id("cus")
            return self.customers[key]

    def create_checkout_session(self, *, customer_id: str | None, guest_email: str | None, plan: Plan,
                                trial_days: int | None, return_url: str, reference: str,
                                idempotency_key: str) -> ProviderCheckout:
        with self._lock:
            self._enter("create_checkout_session")
            if idempotency_key not in self.checkouts:
                sid = self._next_id("cs")
                self.checkouts[idempotency_key] = ProviderCheckout(
                    provider_session_id=sid, client_secret=f"{sid}_secret_{reference[:8]}")
            return self.checkouts[idempotency_key]

    def create_crypto_checkout(self, *, customer_id: str, amount_cents: int, currency_iso: str,
                               return_url: str, reference: str, idempotency_key: str) -> ProviderCheckout:
        with self._lock:
            self._enter("create_crypto_checkout")
            if idempotency_key not in self.checkouts:
                sid = self._next_id("cs")
                self.checkouts[idempotency_key] = ProviderCheckout(
                    provider_session_id=sid, client_secret=f"{sid}_secret_crypto")
            return self.checkouts[idempotency_key]

    def checkout_status(self, provider_session_id: str) -> str:
        """Offline, completion and expiry reach the core directly: a session stays open here."""
        with self._lock:
            self._enter("checkout_status")
            if not any(c.provider_session_id == provider_session_id for c in self.checkouts.values()):
                raise NotFound("checkout session", provider_session_id)
            return self.checkout_statuses.get(provider_session_id, "open")

    def change_subscription_plan(self, *, provider_subscription_id: str, plan: Plan, proration_at: datetime,
                                 reference: str, idempotency_key: str) -> HostedInvoice | None:
        """Records the swap (``subscription_plans``) and answers with one proration invoice per key."""
        with self._lock:
            self._enter("change_subscription_plan")
            if idempotency_key not in self.plan_swaps:
                iid = self._next_id("in")
                self.subscription_plans[provider_subscription_id] = str(plan.code)
                self.plan_swaps[idempotency_key] = HostedInvoice(
                    provider_invoice_id=iid, hosted_invoice_url=f"https://billing.invalid/invoice/{iid}",
                    status="open")
            return self.plan_swaps[idempotency_key]

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        with self._lock:
            self._enter("create_portal_session")
            return f"https://billing.invalid/portal/{customer_id}?return_url={return_url}"

    def create_setup_intent(self, *, customer_id: str, idempotency_key: str) -> str:
        with self._lock:
            self._enter("create_setup_intent")
            if idempotency_key not in self.setup_intents:
                seti = self._next_id("seti")
                self.setup_intents[idempotency_key] = \
                    f"{seti}_secret_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]}"
            return self.setup_intents[idempotency_key]

    def attach_payment_method(self, *, customer_id: str, provider_payment_method_id: str) -> ProviderPaymentMethod:
        with self._lock:
            self._enter("attach_payment_method")
            method = KNOWN_METHODS.get(provider_payment_method_id)
            if method is None and provider_payment_method_id.startswith("pm_"):
                method = ProviderPaymentMethod(provider_payment_method_id=provider_payment_method_id,
                                               payment_type=PaymentType.CARD, brand="visa", last4="4242",
                                               exp_month=12, exp_year=2034)
            if method is None:
                raise InvalidInput("payment_method_id", f"no such payment method: {provider_payment_method_id}",
                                   code="unknown_payment_method")
            self.attached[provider_payment_method_id] = customer_id
            return method

    def is_payment_method_id(self, value: str) -> bool:
        return bool(PAYMENT_METHOD_ID.match(value))

    def set_default_payment_method(self, *, customer_id: str, provider_payment_method_id: str) -> None:
        with self._lock:
            self._enter("set_default_payment_method")
            self.defaults[customer_id] = provider_payment_method_id

    def detach_payment_method(self, *, provider_payment_method_id: str) -> None:
        with self._lock:
            self._enter("detach_payment_method")
            self.attached.pop(provider_payment_method_id, None)

    def charge(self, *, customer_id: str, provider_payment_method_id: str | None, amount_cents: int,
               currency_iso: str, description: str, reference: str, idempotency_key: str) -> ChargeResult:
        with self._lock:
            self._enter("charge")
            if idempotency_key in self.charges:
                return self.charges[idempotency_key]
            self.charge_requests.append({"customer": customer_id, "payment_method": provider_payment_method_id,
                                         "amount": amount_cents, "currency": currency_iso,
                                         "idempotency_key": idempotency_key, "reference": reference})
            pid = self._next_id("pi")
            if self.decline_next > 0 or provider_payment_method_id == "pm_card_chargeDeclined":
                self.decline_next = max(self.decline_next - 1, 0)
                result = ChargeResult(provider_payment_id=pid, status=ChargeStatus.FAILED,
                                      failure_message="Your card was declined.")
            elif self.require_action_next > 0 or provider_payment_method_id == "pm_card_authenticationRequired":
                self.require_action_next = max(self.require_action_next - 1, 0)
                result = ChargeResult(provider_payment_id=pid, status=ChargeStatus.REQUIRES_ACTION,
                                      client_secret=f"{pid}_secret_x")
            elif self.auto_succeed:
                result = ChargeResult(provider_payment_id=pid, status=ChargeStatus.SUCCEEDED)
            else:
                result = ChargeResult(provider_payment_id=pid, status=ChargeStatus.PROCESSING)
            self.charges[idempotency_key] = result
            return result

    def refund(self, *, provider_payment_id: str, amount_cents: int, idempotency_key: str) -> str:
        with self._lock:
            self._enter("refund")
            if idempotency_key not in self.refunds:
                self.refunds[idempotency_key] = {"id": self._next_id("re"), "payment": provider_payment_id,
                                                 "amount": amount_cents}
            return str(self.refunds[idempotency_key]["id"])

    def issue_invoice(self, *, customer_id: str, amount_cents: int, currency_iso: str, description: str,
                      reference: str, idempotency_key: str) -> HostedInvoice:
        with self._lock:
            self._enter("issue_invoice")
            if idempotency_key not in self.invoices:
                iid = self._next_id("in")
                self.invoices[idempotency_key] = HostedInvoice(
                    provider_invoice_id=iid, hosted_invoice_url=f"https://billing.invalid/invoice/{iid}",
                    status="open")
            return self.invoices[idempotency_key]

    # ----------------------------------------------------------------- events

    def sign(self, payload: bytes, timestamp: int | None = None) -> str:
        """A Stripe-style signature header for ``payload``."""
        ts = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(self.webhook_secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={ts},v1={mac}"

    def event(self, event_type: str, obj: dict[str, Any], *, event_id: str | None = None,
              created: int | None = None) -> tuple[bytes, str]:
        """Build a signed event payload the way the provider would send it; ``created`` (Unix
        seconds, default now) is when the provider says the event happened."""
        with self._lock:
            eid = event_id or self._next_id("evt")
        body = json.dumps({"id": eid, "object": "event", "type": event_type,
                           "created": int(time.time()) if created is None else created,
                           "data": {"object": obj}}).encode()
        return body, self.sign(body)

    def parse_event(self, payload: bytes, signature_header: str | None) -> PaymentEvent:
        check_json_depth(payload, field="payload")  # before any decoding: deep nesting exhausts the stack
        if not signature_header:
            raise InvalidSignature("Stripe-Signature", "missing signature")
        try:
            items = [item.split("=", 1) for item in signature_header.split(",")]
            ts = int(next(value for name, value in items if name == "t"))
            signatures = [value for name, value in items if name == "v1"]
            expected = hmac.new(self.webhook_secret.encode(), f"{ts}.".encode() + payload,
                                hashlib.sha256).hexdigest()
            # Several v1 entries appear while a secret is being rolled: one matching is enough.
            if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
                raise ValueError("mismatch")
            if self.signature_tolerance_seconds and ts < time.time() - self.signature_tolerance_seconds:
                raise ValueError("timestamp outside the tolerance zone")
            body = json.loads(payload)
        except RecursionError:
            raise MalformedBody("the event payload nests too deep", field="payload") from None
        except (ValueError, KeyError, TypeError, StopIteration, msgspec.DecodeError) as exc:
            raise InvalidSignature("Stripe-Signature", "the signature does not verify") from exc
        return to_payment_event(body)
