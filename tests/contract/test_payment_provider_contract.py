"""The PaymentProvider contract: one suite, run against every adapter of the port.

Each adapter comes with a :class:`Harness` from the ``harness`` factory fixture: the provider, a way to
sign a webhook body the way that provider's sender would, and a count of the payments it really made
(so "the same key never charges twice" is checked on the provider's side, not only on its answer).
Stripe runs the real SDK against the local stub (skipped when ``../shared/stripe`` is absent).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import stripe

from adapters.fakes import InMemoryPaymentProvider
from adapters.stripe import StripePaymentProvider
from adapters.stripe.events import HANDLED_EVENT_TYPES
from billing_core.catalog import Catalog
from billing_core.errors import InvalidInput, MalformedBody
from billing_core.organization import Organization
from billing_core.payloads import MAX_JSON_DEPTH
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
from billing_core.ports import ChargeStatus, PaymentProvider
from tests.support.stripe_stub import StripeStub, fixtures_or_skip, sign_payload

WEBHOOK_SECRET = "whsec_contract_0123456789"
SETUP_SECRET_SHAPE = re.compile(r"^seti_[A-Za-z0-9]+_secret_[A-Za-z0-9]+$")


class _NoBackoffClient(stripe.RequestsClient):
    def _sleep_time_seconds(self, num_retries: int) -> float:
        return 0.0


@dataclass(frozen=True)
class Harness:
    provider: PaymentProvider
    sign: Callable[[bytes, int | None], str]
    """A valid signature header for the body at the given Unix time (None: now)."""
    payments_made: Callable[[], int]


@pytest.fixture(params=["in_memory", "stripe"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "in_memory":
        fake = InMemoryPaymentProvider(webhook_secret=WEBHOOK_SECRET)
        yield Harness(provider=fake, sign=lambda body, ts: fake.sign(body, ts),
                      payments_made=lambda: len(fake.charge_requests))
        return
    with StripeStub(fixtures_or_skip()) as stub:
        provider = StripePaymentProvider(stub.api_key, WEBHOOK_SECRET, api_base=stub.base_url,
                                         return_base_url="https://app.example.test", http_client=_NoBackoffClient())
        yield Harness(provider=provider, sign=lambda body, ts: sign_payload(body, WEBHOOK_SECRET, timestamp=ts),
                      payments_made=lambda: len(stub.of_type("payment_intent")))


def _org(name: str = "Acme GmbH") -> Organization:
    return Organization(id=uuid.uuid4(), name=name, created_at=datetime(2026, 3, 14, tzinfo=UTC))


@pytest.fixture
def customer(harness: Harness) -> str:
    return harness.provider.ensure_customer(_org(), "billing@acme.test")


def _attach(harness: Harness, customer: str, method: str) -> str:
    return harness.provider.attach_payment_method(customer_id=customer,
                                                  provider_payment_method_id=method).provider_payment_method_id


def _charge(harness: Harness, customer: str, method: str | None, key: str) -> tuple[str, ChargeStatus, str | None]:
    result = harness.provider.charge(customer_id=customer, provider_payment_method_id=method, amount_cents=2500,
                                     currency_iso="USD", description="Add credits $25.000", reference=key,
                                     idempotency_key=key)
    return result.provider_payment_id, result.status, result.failure_message or result.client_secret


# --------------------------------------------------------------------------- customers


def test_ensure_customer_is_idempotent_per_organization(harness: Harness) -> None:
    org = _org()
    first = harness.provider.ensure_customer(org, "billing@acme.test")
    assert first
    assert harness.provider.ensure_customer(org, "billing@acme.test") == first
    assert harness.provider.ensure_customer(_org("Other"), None) != first


def test_a_known_customer_id_is_kept(harness: Harness) -> None:
    org = _org()
    org.provider_customer_id = "cus_from_an_earlier_life"
    assert harness.provider.ensure_customer(org, None) == "cus_from_an_earlier_life"


# --------------------------------------------------------------------------- checkout and portal


def test_checkout_sessions_have_a_client_secret_and_replay_per_key(harness: Harness, customer: str,
                                                                   catalog: Catalog) -> None:
    def open_checkout(key: str) -> tuple[str, str]:
        checkout = harness.provider.create_checkout_session(
            customer_id=customer, guest_email=None, plan=catalog.plan("pro"), trial_days=14,
            return_url="https://app.example.test/pricing", reference=key, idempotency_key=key)
        return checkout.provider_session_id, checkout.client_secret

    first = open_checkout("checkout:1")
    assert first[0] and first[1]
    assert open_checkout("checkout:1") == first
    assert open_checkout("checkout:2")[0] != first[0]


def test_guest_and_crypto_checkouts_and_the_portal(harness: Harness, customer: str, catalog: Catalog) -> None:
    guest = harness.provider.create_checkout_session(
        customer_id=None, guest_email="guest@example.test", plan=catalog.plan("starter"), trial_days=None,
        return_url="https://app.example.test/pricing", reference="g-1", idempotency_key="checkout:g-1")
    crypto = harness.provider.create_crypto_checkout(
        customer_id=customer, amount_cents=2500, currency_iso="USD", return_url="https://app.example.test/credits",
        reference="c-1", idempotency_key="payment:c-1")
    portal = harness.provider.create_portal_session(customer_id=customer, return_url="https://app.example.test/")

    assert guest.client_secret and crypto.client_secret
    assert guest.provider_session_id != crypto.provider_session_id
    assert portal.startswith("https://")


# --------------------------------------------------------------------------- payment methods


def test_setup_intent_secret_has_stripes_shape_and_replays_per_key(harness: Harness, customer: str) -> None:
    secret = harness.provider.create_setup_intent(customer_id=customer, idempotency_key="setup:1")
    assert SETUP_SECRET_SHAPE.match(secret), secret
    assert harness.provider.create_setup_intent(customer_id=customer, idempotency_key="setup:1") == secret
    assert harness.provider.create_setup_intent(customer_id=customer, idempotency_key="setup:2") != secret


def test_an_attached_card_is_described(harness: Harness, customer: str) -> None:
    method = harness.provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_card_visa")
    assert method.provider_payment_method_id
    assert method.payment_type == PaymentType.CARD
    assert (method.brand, method.last4) == ("visa", "4242")
    assert isinstance(method.exp_month, int) and 1 <= method.exp_month <= 12
    assert isinstance(method.exp_year, int) and method.exp_year >= 2026
    assert method.iban_last4 is None


def test_an_attached_sepa_debit_shows_only_the_iban_tail(harness: Harness, customer: str) -> None:
    method = harness.provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_sepa_debit")
    assert method.payment_type == PaymentType.SEPA_DEBIT
    assert method.iban_last4 is not None and re.fullmatch(r"\d{4}", method.iban_last4)
    assert method.brand is None and method.exp_month is None


def test_attaching_an_unknown_method_is_invalid_input(harness: Harness, customer: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        harness.provider.attach_payment_method(customer_id=customer, provider_payment_method_id="card_unknown")
    assert raised.value.code == "unknown_payment_method"


def test_detaching_is_idempotent(harness: Harness, customer: str) -> None:
    method = _attach(harness, customer, "pm_card_visa")
    harness.provider.detach_payment_method(provider_payment_method_id=method)
    harness.provider.detach_payment_method(provider_payment_method_id=method)


def test_the_default_method_pays_when_none_is_named(harness: Harness, customer: str) -> None:
    method = _attach(harness, customer, "pm_card_visa")
    harness.provider.set_default_payment_method(customer_id=customer, provider_payment_method_id=method)
    assert _charge(harness, customer, None, "payment:default")[1] == ChargeStatus.SUCCEEDED


# --------------------------------------------------------------------------- charges and refunds


def test_a_charge_succeeds_once_per_idempotency_key(harness: Harness, customer: str) -> None:
    method = _attach(harness, customer, "pm_card_visa")
    first = _charge(harness, customer, method, "payment:1")

    assert first[0] and first[1] == ChargeStatus.SUCCEEDED
    assert _charge(harness, customer, method, "payment:1") == first
    assert harness.payments_made() == 1
    assert _charge(harness, customer, method, "payment:2")[0] != first[0]
    assert harness.payments_made() == 2


def test_a_declined_method_fails_without_raising(harness: Harness, customer: str) -> None:
    method = _attach(harness, customer, "pm_card_chargeDeclined")
    payment_id, status, message = _charge(harness, customer, method, "payment:declined")

    assert status == ChargeStatus.FAILED
    assert message
    assert _charge(harness, customer, method, "payment:declined") == (payment_id, status, message)
    assert harness.payments_made() == 1


def test_an_issuer_wanting_authentication_asks_for_action(harness: Harness, customer: str) -> None:
    method = _attach(harness, customer, "pm_card_authenticationRequired")
    _, status, client_secret = _charge(harness, customer, method, "payment:3ds")
    assert status == ChargeStatus.REQUIRES_ACTION
    assert client_secret


def test_a_refund_returns_an_id_once_per_key(harness: Harness, customer: str) -> None:
    method = _attach(harness, customer, "pm_card_visa")
    payment_id, _, _ = _charge(harness, customer, method, "payment:refundable")

    refund_id = harness.provider.refund(provider_payment_id=payment_id, amount_cents=1000, idempotency_key="refund:1")
    assert refund_id
    assert harness.provider.refund(provider_payment_id=payment_id, amount_cents=1000,
                                   idempotency_key="refund:1") == refund_id


def test_a_hosted_invoice_is_open_with_a_url_once_per_key(harness: Harness, customer: str) -> None:
    def issue() -> tuple[str, str | None, str]:
        invoice = harness.provider.issue_invoice(customer_id=customer, amount_cents=4250, currency_iso="USD",
                                                 description="Usage invoice", reference="inv-1",
                                                 idempotency_key="hosted-invoice:inv-1")
        return invoice.provider_invoice_id, invoice.hosted_invoice_url, invoice.status

    first = issue()
    assert first[1] is not None and first[1].startswith("https://")
    assert first[2] == "open"
    assert issue() == first


# --------------------------------------------------------------------------- events


def _event_body() -> bytes:
    return json.dumps({"id": "evt_contract_1", "object": "event", "type": "payment_intent.succeeded",
                       "created": 1_790_000_000, "livemode": False, "api_version": stripe.api_version,
                       "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded",
                                           "metadata": {"reference": "p-1"}}}}).encode()


def test_a_correctly_signed_event_is_decoded(harness: Harness) -> None:
    body = _event_body()
    event = harness.provider.parse_event(body, harness.sign(body, None))
    assert event == PaymentSucceeded(id="evt_contract_1", type="payment_intent.succeeded", created=1_790_000_000,
                                     provider_payment_id="pi_1", reference="p-1")


@pytest.mark.parametrize("case", ["tampered", "other secret", "missing", "stale"])
def test_a_bad_signature_is_invalid_input(harness: Harness, case: str) -> None:
    body = _event_body()
    header: str | None = harness.sign(body, None)
    if case == "tampered":
        body = body.replace(b"p-1", b"p-2")
    elif case == "other secret":
        header = sign_payload(body, "whsec_not_ours")
    elif case == "missing":
        header = None
    elif case == "stale":
        header = harness.sign(body, int(time.time()) - 3600)

    with pytest.raises(InvalidInput) as raised:
        harness.provider.parse_event(body, header)
    assert raised.value.code == "invalid_signature"


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("signed", [True, False])
def test_a_deeply_nested_event_is_a_malformed_body_not_a_recursion_error(harness: Harness, depth: int,
                                                                          signed: bool) -> None:
    body = _event_body().replace(b'"metadata": {"reference": "p-1"}', b'"metadata": ' + b"[" * depth + b"]" * depth)
    with pytest.raises(MalformedBody) as raised:
        harness.provider.parse_event(body, harness.sign(body, None) if signed else None)
    assert (raised.value.code, raised.value.field) == ("malformed_body", "payload")


def test_an_event_as_deep_as_allowed_is_decoded(harness: Harness) -> None:
    nested = b"[" * (MAX_JSON_DEPTH - 4) + b"]" * (MAX_JSON_DEPTH - 4)  # event > data > object > metadata
    body = _event_body().replace(b'"metadata": {"reference": "p-1"}', b'"metadata": ' + nested)
    assert harness.provider.parse_event(body, harness.sign(body, None)).id == "evt_contract_1"


# --------------------------------------------------------------------------- event translation

_AT = 1_790_000_000
_PERIOD = (datetime.fromtimestamp(_AT, tz=UTC), datetime.fromtimestamp(_AT + 30 * 86_400, tz=UTC))
_REF = str(uuid.UUID(int=7))

# One logical event per handled type: the object the provider sends, and the core event it means.
_LOGICAL: dict[str, tuple[dict[str, object], PaymentEvent]] = {
    "checkout.session.completed": (
        {"id": "cs_1", "object": "checkout.session", "mode": "subscription", "subscription": "sub_1",
         "payment_status": "no_payment_required", "client_reference_id": _REF},
        CheckoutCompleted(id="evt_t", type="checkout.session.completed", created=_AT, session_id="cs_1",
                          mode=CheckoutMode.SUBSCRIPTION, paid=False, subscription_id="sub_1", reference=_REF)),
    "checkout.session.async_payment_succeeded": (
        {"id": "cs_2", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
         "subscription": None, "metadata": {"reference": _REF}},
        CheckoutCompleted(id="evt_t", type="checkout.session.async_payment_succeeded", created=_AT,
                          session_id="cs_2", mode=CheckoutMode.PAYMENT, paid=True, reference=_REF)),
    "checkout.session.expired": (
        {"id": "cs_3", "object": "checkout.session", "mode": "subscription", "metadata": {}},
        CheckoutExpired(id="evt_t", type="checkout.session.expired", created=_AT, session_id="cs_3",
                        mode=CheckoutMode.SUBSCRIPTION)),
    **{f"customer.subscription.{kind}": (
        {"id": "sub_1", "object": "subscription", "status": "past_due", "customer": "cus_1",
         "cancel_at_period_end": kind == "updated",
         "items": {"object": "list", "data": [{"id": "si_1", "current_period_start": _AT,
                                               "current_period_end": _AT + 30 * 86_400,
                                               "price": {"id": "price_pro", "object": "price",
                                                         "lookup_key": "pro"}}]}},
        SubscriptionChanged(id="evt_t", type=f"customer.subscription.{kind}", created=_AT,
                            provider_subscription_id="sub_1", status=SubscriptionStatus.PAST_DUE,
                            current_period_start=_PERIOD[0], current_period_end=_PERIOD[1], state_at=_PERIOD[0],
                            price=ProviderPrice(id="price_pro", lookup_key="pro"),
                            cancel_at_period_end=kind == "updated"))
       for kind in ("created", "updated", "deleted", "paused", "resumed")},
    "invoice.paid": (
        {"id": "in_1", "object": "invoice", "customer": "cus_1", "metadata": {"reference": _REF}},
        InvoicePaid(id="evt_t", type="invoice.paid", created=_AT, customer_id="cus_1", reference=_REF)),
    "payment_intent.succeeded": (
        {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "metadata": {"reference": _REF}},
        PaymentSucceeded(id="evt_t", type="payment_intent.succeeded", created=_AT, provider_payment_id="pi_1",
                         reference=_REF)),
    "payment_intent.payment_failed": (
        {"id": "pi_1", "object": "payment_intent", "metadata": {},
         "last_payment_error": {"type": "card_error", "message": "Your card was declined."}},
        PaymentFailed(id="evt_t", type="payment_intent.payment_failed", created=_AT, provider_payment_id="pi_1",
                      failure_message="Your card was declined.")),
    "charge.refunded": (
        {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "refunded": True},
        ChargeRefunded(id="evt_t", type="charge.refunded", created=_AT, provider_payment_id="pi_1",
                       fully_refunded=True)),
    "charge.dispute.created": (
        {"id": "dp_1", "object": "dispute", "charge": "ch_1", "payment_intent": {"id": "pi_1"}},
        DisputeCreated(id="evt_t", type="charge.dispute.created", created=_AT, provider_payment_id="pi_1")),
    "setup_intent.succeeded": (
        {"id": "seti_1", "object": "setup_intent", "customer": "cus_1",
         "payment_method": {"id": "pm_1", "object": "payment_method", "type": "sepa_debit"}},
        PaymentMethodCollected(id="evt_t", type="setup_intent.succeeded", created=_AT, customer_id="cus_1",
                               provider_payment_method_id="pm_1", payment_type=PaymentType.SEPA_DEBIT)),
}


def _wire(harness: Harness, event_type: str, obj: dict[str, object]) -> bytes:
    """The provider's own wire body: the fake's minimal envelope, or Stripe's full example event
    (with every field Stripe sends) around Stripe's full example object."""
    provider = harness.provider
    if isinstance(provider, InMemoryPaymentProvider):
        return provider.event(event_type, obj, event_id="evt_t", created=_AT)[0]
    resources = fixtures_or_skip()["resources"]
    full = {**resources[str(obj["object"])], **obj}
    event = {**resources["event"], "id": "evt_t", "type": event_type, "created": _AT, "data": {"object": full}}
    return json.dumps(event).encode()


def test_every_handled_event_type_has_a_logical_event() -> None:
    assert set(_LOGICAL) == HANDLED_EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(_LOGICAL))
def test_the_same_logical_event_parses_to_the_same_core_event(harness: Harness, event_type: str) -> None:
    obj, expected = _LOGICAL[event_type]
    body = _wire(harness, event_type, obj)
    assert harness.provider.parse_event(body, harness.sign(body, None)) == expected


@pytest.mark.parametrize("obj", [{"id": "sub_1", "object": "subscription", "status": "bogus"},
                                 {"object": "payment_intent", "metadata": {}},
                                 {"id": "ch_1", "object": "charge", "payment_intent": None}])
def test_an_object_lacking_what_acting_needs_is_unhandled(harness: Harness, obj: dict[str, object]) -> None:
    event_type = {"subscription": "customer.subscription.updated", "payment_intent": "payment_intent.succeeded",
                  "charge": "charge.refunded"}[str(obj["object"])]
    body = json.dumps({"id": "evt_u", "object": "event", "type": event_type, "created": _AT,
                       "data": {"object": obj}}).encode()
    assert harness.provider.parse_event(body, harness.sign(body, None)) == UnhandledEvent(
        id="evt_u", type=event_type, created=_AT)


@pytest.mark.parametrize("envelope", [{"type": "x", "created": _AT}, {"id": "evt_1", "type": "x", "created": "now"},
                                      {"id": "evt_1", "created": _AT}, {"id": "evt_1", "type": "x", "created": True}])
def test_a_signed_body_that_is_not_an_event_is_refused(harness: Harness, envelope: dict[str, object]) -> None:
    body = json.dumps({**envelope, "data": {"object": {"id": "x"}}}).encode()
    with pytest.raises(InvalidInput) as raised:
        harness.provider.parse_event(body, harness.sign(body, None))
    assert raised.value.code == "invalid_signature"


def test_payment_method_ids_have_the_providers_shape(harness: Harness) -> None:
    assert harness.provider.is_payment_method_id("pm_card_visa")
    for other in ("card_123", "", "pm_", "pm_a b", "pm_" + "x" * 300):
        assert not harness.provider.is_payment_method_id(other), other
