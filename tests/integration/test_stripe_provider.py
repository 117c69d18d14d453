"""StripePaymentProvider with the real ``stripe`` SDK against the local Stripe stub.

What we assert is what goes over the wire (paths, form parameters, Idempotency-Key headers) and how
Stripe's answers and errors come back through the port. Webhook signatures are made with Stripe's
algorithm (``t=<ts>,v1=<HMAC-SHA256 of "<ts>.<body>">``), independently of the SDK that verifies them.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import stripe

from adapters.stripe import StripePaymentProvider
from billing_core.catalog import Catalog, load_catalog
from billing_core.errors import (
    AuthenticationRequired,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PaymentDeclined,
    PaymentError,
    ProviderUnavailable,
)
from billing_core.organization import Organization
from billing_core.payment_events import CheckoutCompleted, CheckoutMode, ProviderPrice, SubscriptionChanged
from billing_core.payments import PaymentType
from billing_core.ports import ChargeStatus
from tests.support.stripe_stub import StripeStub, card_error, fixtures_or_skip, running_stub, sign_payload

SECRET = "whsec_integration_0123456789"
RETURN_BASE = "https://app.example.test"
SECRET_SHAPE = re.compile(r"^seti_[A-Za-z0-9]+_secret_[A-Za-z0-9]+$")


class NoBackoffClient(stripe.RequestsClient):
    """The SDK's own retry loop without its 0.5 s minimum backoff, so retry tests stay fast."""

    def _sleep_time_seconds(self, num_retries: int) -> float:
        return 0.0


def make_provider(stub: StripeStub, *, api_key: str | None = None, max_network_retries: int = 2,
                  crypto_enabled: bool = True, return_base_url: str | None = RETURN_BASE) -> StripePaymentProvider:
    return StripePaymentProvider(api_key or stub.api_key, SECRET, api_base=stub.base_url,
                                 max_network_retries=max_network_retries, crypto_enabled=crypto_enabled,
                                 return_base_url=return_base_url, http_client=NoBackoffClient())


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    yield from running_stub(fixtures_or_skip())


@pytest.fixture
def provider(stub: StripeStub) -> StripePaymentProvider:
    return make_provider(stub)


@pytest.fixture
def org() -> Organization:
    return Organization(id=uuid.uuid4(), name="Acme GmbH", created_at=datetime(2026, 3, 14, tzinfo=UTC))


@pytest.fixture
def customer(provider: StripePaymentProvider, org: Organization) -> str:
    return provider.ensure_customer(org, "billing@acme.test")


@pytest.fixture
def card(provider: StripePaymentProvider, customer: str) -> str:
    return provider.attach_payment_method(customer_id=customer,
                                          provider_payment_method_id="pm_card_visa").provider_payment_method_id


def _charge(provider: StripePaymentProvider, customer: str, method: str | None, *, key: str = "payment:p-1",
            amount_cents: int = 1500) -> ChargeStatus:
    return provider.charge(customer_id=customer, provider_payment_method_id=method, amount_cents=amount_cents,
                           currency_iso="USD", description="Add credits $15.000", reference="p-1",
                           idempotency_key=key).status


# --------------------------------------------------------------------------- client set-up


def test_each_provider_has_its_own_client_and_the_global_key_stays_unset(stub: StripeStub,
                                                                         org: Organization) -> None:
    make_provider(stub).ensure_customer(org, None)
    request = stub.requests[0]
    assert request.headers["authorization"] == f"Bearer {stub.api_key}"
    assert request.headers["stripe-version"] == stripe.api_version
    assert stripe.api_key is None


def test_missing_credentials_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="API key"):
        StripePaymentProvider("", SECRET)
    with pytest.raises(ValueError, match="webhook"):
        StripePaymentProvider("sk_test_x", "")


# --------------------------------------------------------------------------- customers


def test_ensure_customer_searches_then_creates_with_a_key_from_the_organization(
        stub: StripeStub, provider: StripePaymentProvider, org: Organization) -> None:
    customer_id = provider.ensure_customer(org, "billing@acme.test")

    search, create = stub.requests
    assert (search.method, search.path) == ("GET", "/v1/customers/search")
    assert search.query["query"] == f"metadata['organization_id']:'{org.id}'"
    assert (create.method, create.path) == ("POST", "/v1/customers")
    assert create.idempotency_key == f"customer-create:{org.id}"
    assert create.params == {"name": "Acme GmbH", "email": "billing@acme.test",
                             "metadata": {"organization_id": str(org.id)}}
    assert customer_id == stub.of_type("customer")[0]["id"]


def test_ensure_customer_finds_the_existing_customer_instead_of_creating_another(
        stub: StripeStub, provider: StripePaymentProvider, org: Organization) -> None:
    first = provider.ensure_customer(org, "billing@acme.test")
    assert provider.ensure_customer(org, "billing@acme.test") == first
    assert len(stub.of_type("customer")) == 1
    assert len(stub.requests_to("POST", "/v1/customers")) == 1


def test_before_search_shows_the_customer_the_idempotency_key_replays_it(
        stub: StripeStub, provider: StripePaymentProvider, org: Organization) -> None:
    stub.search_lag = True
    first = provider.ensure_customer(org, "billing@acme.test")
    again = provider.ensure_customer(org, "billing@acme.test")

    assert again == first
    assert len(stub.of_type("customer")) == 1
    assert [r.status for r in stub.requests_to("POST", "/v1/customers")] == [200, 200]


def test_a_changed_email_before_search_catches_up_is_retryable_then_finds_the_customer(
        stub: StripeStub, provider: StripePaymentProvider, org: Organization) -> None:
    stub.search_lag = True
    first = provider.ensure_customer(org, "old@acme.test")
    with pytest.raises(ProviderUnavailable) as raised:
        provider.ensure_customer(org, "new@acme.test")
    assert raised.value.retryable and isinstance(raised.value.__cause__, stripe.IdempotencyError)

    stub.search_lag = False
    assert provider.ensure_customer(org, "new@acme.test") == first
    assert len(stub.of_type("customer")) == 1


def test_a_known_provider_customer_is_reused_without_asking_stripe(stub: StripeStub,
                                                                   provider: StripePaymentProvider,
                                                                   org: Organization) -> None:
    org.provider_customer_id = "cus_known"
    assert provider.ensure_customer(org, None) == "cus_known"
    assert stub.requests == []


# --------------------------------------------------------------------------- checkout


def test_subscription_checkout_is_embedded_with_the_plan_priced_inline(
        stub: StripeStub, provider: StripePaymentProvider, customer: str, catalog: Catalog) -> None:
    plan = catalog.plan("pro")
    checkout = provider.create_checkout_session(
        customer_id=customer, guest_email=None, plan=plan, trial_days=14,
        return_url="https://app.example.test/pricing?tab=plans", reference="chk-1", idempotency_key="checkout:chk-1")

    (request,) = stub.requests_to("POST", "/v1/checkout/sessions")
    assert request.idempotency_key == "checkout:chk-1"
    assert request.params == {
        "ui_mode": "embedded_page",
        "mode": "subscription",
        "return_url": "https://app.example.test/pricing?tab=plans&session_id={CHECKOUT_SESSION_ID}",
        "line_items": [{"quantity": "1", "price_data": {
            "currency": catalog.currency.lower(), "unit_amount": str(plan.price_cents),
            "recurring": {"interval": plan.interval},
            "product_data": {"name": plan.name, "description": plan.description, "metadata": {"plan": "pro"}}}}],
        "subscription_data": {"metadata": {"reference": "chk-1", "plan": "pro"}, "trial_period_days": "14"},
        "client_reference_id": "chk-1",
        "metadata": {"reference": "chk-1", "plan": "pro"},
        "customer": customer,
    }
    session = stub.objects[checkout.provider_session_id]
    assert checkout.client_secret == session["client_secret"]
    assert checkout.client_secret.startswith(f"{checkout.provider_session_id}_secret_")


def test_guest_checkout_goes_by_email_and_a_given_placeholder_is_kept(
        stub: StripeStub, provider: StripePaymentProvider, catalog: Catalog) -> None:
    provider.create_checkout_session(
        customer_id=None, guest_email="guest@example.test", plan=catalog.plan("starter"), trial_days=None,
        return_url="https://app.example.test/done?cs={CHECKOUT_SESSION_ID}", reference="chk-2",
        idempotency_key="checkout:chk-2")

    params = stub.requests_to("POST", "/v1/checkout/sessions")[0].params
    assert params["customer_email"] == "guest@example.test"
    assert "customer" not in params
    assert "trial_period_days" not in params["subscription_data"]
    assert params["return_url"] == "https://app.example.test/done?cs={CHECKOUT_SESSION_ID}"


def test_relative_return_paths_need_a_configured_base(stub: StripeStub, catalog: Catalog) -> None:
    with_base = make_provider(stub)
    with_base.create_checkout_session(customer_id=None, guest_email=None, plan=catalog.plan("pro"), trial_days=None,
                                      return_url="/pricing", reference="chk-3", idempotency_key="checkout:chk-3")
    assert stub.requests[-1].params["return_url"] == \
        "https://app.example.test/pricing?session_id={CHECKOUT_SESSION_ID}"

    without_base = make_provider(stub, return_base_url=None)
    with pytest.raises(InvalidInput) as raised:
        without_base.create_checkout_session(customer_id=None, guest_email=None, plan=catalog.plan("pro"),
                                             trial_days=None, return_url="/pricing", reference="chk-4",
                                             idempotency_key="checkout:chk-4")
    assert (raised.value.field, raised.value.code) == ("return_url", "invalid_url")


def test_the_same_checkout_key_returns_the_same_session(stub: StripeStub, provider: StripePaymentProvider,
                                                        customer: str, catalog: Catalog) -> None:
    def open_checkout() -> str:
        return provider.create_checkout_session(
            customer_id=customer, guest_email=None, plan=catalog.plan("pro"), trial_days=14,
            return_url="https://app.example.test/pricing", reference="chk-5",
            idempotency_key="checkout:chk-5").provider_session_id

    assert open_checkout() == open_checkout()
    assert len(stub.of_type("checkout.session")) == 1


def test_crypto_checkout_is_an_embedded_payment_for_the_amount(stub: StripeStub, provider: StripePaymentProvider,
                                                               customer: str) -> None:
    checkout = provider.create_crypto_checkout(customer_id=customer, amount_cents=2500, currency_iso="USD",
                                               return_url="/billing/credits", reference="pay-9",
                                               idempotency_key="payment:pay-9")

    (request,) = stub.requests_to("POST", "/v1/checkout/sessions")
    assert request.idempotency_key == "payment:pay-9"
    assert request.params == {
        "ui_mode": "embedded_page",
        "mode": "payment",
        "allowed_payment_method_types": ["crypto"],
        "customer": customer,
        "return_url": "https://app.example.test/billing/credits?session_id={CHECKOUT_SESSION_ID}",
        "line_items": [{"quantity": "1", "price_data": {"currency": "usd", "unit_amount": "2500",
                                                        "product_data": {"name": "Usage credits"}}}],
        "client_reference_id": "pay-9",
        "metadata": {"reference": "pay-9"},
    }
    assert stub.objects[checkout.provider_session_id]["payment_method_types"] == ["crypto"]
    assert checkout.client_secret


def test_crypto_checkout_is_refused_locally_when_disabled(stub: StripeStub, customer: str) -> None:
    sent = len(stub.requests)
    with pytest.raises(PaymentError) as raised:
        make_provider(stub, crypto_enabled=False).create_crypto_checkout(
            customer_id=customer, amount_cents=2500, currency_iso="USD", return_url="/billing/credits",
            reference="pay-10", idempotency_key="payment:pay-10")
    assert raised.value.code == "crypto_unavailable"
    assert len(stub.requests) == sent


def test_portal_session_returns_stripes_url(stub: StripeStub, provider: StripePaymentProvider,
                                            customer: str) -> None:
    url = provider.create_portal_session(customer_id=customer, return_url="/billing")

    (request,) = stub.requests_to("POST", "/v1/billing_portal/sessions")
    assert request.params == {"customer": customer, "return_url": "https://app.example.test/billing"}
    assert url == stub.of_type("billing_portal.session")[0]["url"]


# --------------------------------------------------------------------------- payment methods


def test_setup_intent_is_off_session_and_returns_its_client_secret(stub: StripeStub, provider: StripePaymentProvider,
                                                                   customer: str) -> None:
    secret = provider.create_setup_intent(customer_id=customer, idempotency_key="setup-intent:o:1")

    (request,) = stub.requests_to("POST", "/v1/setup_intents")
    assert request.idempotency_key == "setup-intent:o:1"
    assert request.params == {"customer": customer, "usage": "off_session",
                              "automatic_payment_methods": {"enabled": "true"}}
    assert SECRET_SHAPE.match(secret)
    assert provider.create_setup_intent(customer_id=customer, idempotency_key="setup-intent:o:1") == secret


def test_an_attached_card_is_described_from_stripes_object(stub: StripeStub, provider: StripePaymentProvider,
                                                           customer: str) -> None:
    stub.add_payment_method("pm_1Fresh", card={"brand": "mastercard", "last4": "4444", "exp_month": 3,
                                               "exp_year": 2031},
                            billing_details={"name": "Ada Lovelace", "email": None, "phone": None, "address": None})
    method = provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_1Fresh")

    (request,) = stub.requests_to("POST", "/v1/payment_methods/pm_1Fresh/attach")
    assert request.params == {"customer": customer}
    assert stub.objects["pm_1Fresh"]["customer"] == customer
    assert (method.provider_payment_method_id, method.payment_type, method.brand, method.last4, method.exp_month,
            method.exp_year, method.name, method.iban_last4) == (
        "pm_1Fresh", PaymentType.CARD, "mastercard", "4444", 3, 2031, "Ada Lovelace", None)


def test_a_sepa_debit_method_keeps_only_the_last_four_iban_digits(stub: StripeStub, provider: StripePaymentProvider,
                                                                  customer: str) -> None:
    method = provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_sepa_debit")

    assert method.payment_type == PaymentType.SEPA_DEBIT
    assert method.iban_last4 == "3000"
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == (None, None, None, None)
    assert "DE89" not in repr(method)


def test_attaching_an_unknown_method_is_invalid_input(provider: StripePaymentProvider, customer: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_nonexistent")
    assert (raised.value.field, raised.value.code) == ("payment_method", "unknown_payment_method")
    assert isinstance(raised.value.__cause__, stripe.InvalidRequestError)


def test_a_method_of_another_customer_cannot_be_attached(provider: StripePaymentProvider, card: str) -> None:
    other = provider.ensure_customer(
        Organization(id=uuid.uuid4(), name="Other", created_at=datetime(2026, 1, 1, tzinfo=UTC)), None)
    with pytest.raises(InvalidInput) as raised:
        provider.attach_payment_method(customer_id=other, provider_payment_method_id=card)
    assert raised.value.field == "payment_method"


def test_set_default_updates_the_customers_invoice_settings(stub: StripeStub, provider: StripePaymentProvider,
                                                            customer: str, card: str) -> None:
    provider.set_default_payment_method(customer_id=customer, provider_payment_method_id=card)

    (request,) = stub.requests_to("POST", f"/v1/customers/{customer}")
    assert request.params == {"invoice_settings": {"default_payment_method": card}}
    assert stub.objects[customer]["invoice_settings"]["default_payment_method"] == card


def test_detach_is_idempotent(stub: StripeStub, provider: StripePaymentProvider, card: str) -> None:
    provider.detach_payment_method(provider_payment_method_id=card)
    provider.detach_payment_method(provider_payment_method_id=card)
    provider.detach_payment_method(provider_payment_method_id="pm_gone_long_ago")

    assert stub.objects[card]["customer"] is None
    assert [r.status for r in stub.requests_to("POST", f"/v1/payment_methods/{card}/detach")] == [200, 400]


def test_detach_still_reports_real_failures(stub: StripeStub, provider: StripePaymentProvider, card: str) -> None:
    stub.fail_next(f"/v1/payment_methods/{card}/detach", status=400,
                   body={"error": {"type": "invalid_request_error", "message": "Something else is wrong."}})
    with pytest.raises(InvalidInput):
        provider.detach_payment_method(provider_payment_method_id=card)


# --------------------------------------------------------------------------- charges


def test_charge_is_an_off_session_payment_intent_under_our_key(stub: StripeStub, provider: StripePaymentProvider,
                                                               customer: str, card: str) -> None:
    result = provider.charge(customer_id=customer, provider_payment_method_id=card, amount_cents=1500,
                             currency_iso="USD", description="Add credits $15.000", reference="p-1",
                             idempotency_key="payment:p-1")

    (request,) = stub.requests_to("POST", "/v1/payment_intents")
    assert request.idempotency_key == "payment:p-1"
    assert request.params == {
        "amount": "1500", "currency": "usd", "customer": customer, "payment_method": card,
        "confirm": "true", "off_session": "true", "description": "Add credits $15.000",
        "metadata": {"reference": "p-1"},
        "automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"},
    }
    assert result.status == ChargeStatus.SUCCEEDED
    assert result.provider_payment_id == stub.of_type("payment_intent")[0]["id"]
    assert result.client_secret is None and result.failure_message is None


def test_the_same_key_never_charges_twice(stub: StripeStub, provider: StripePaymentProvider, customer: str,
                                          card: str) -> None:
    first = provider.charge(customer_id=customer, provider_payment_method_id=card, amount_cents=1500,
                            currency_iso="USD", description="d", reference="p-1", idempotency_key="payment:p-1")
    again = provider.charge(customer_id=customer, provider_payment_method_id=card, amount_cents=1500,
                            currency_iso="USD", description="d", reference="p-1", idempotency_key="payment:p-1")

    assert again == first
    assert len(stub.of_type("payment_intent")) == 1


def test_reusing_a_key_for_another_amount_is_a_conflict(provider: StripePaymentProvider, customer: str,
                                                        card: str) -> None:
    _charge(provider, customer, card, amount_cents=1500)
    with pytest.raises(IdempotencyKeyReused) as raised:
        _charge(provider, customer, card, amount_cents=2500)
    assert raised.value.key == "payment:p-1"


def test_without_a_method_the_customers_default_pays(stub: StripeStub, provider: StripePaymentProvider,
                                                     customer: str, card: str) -> None:
    provider.set_default_payment_method(customer_id=customer, provider_payment_method_id=card)
    assert _charge(provider, customer, None) == ChargeStatus.SUCCEEDED
    assert stub.requests_to("POST", "/v1/payment_intents")[0].params["payment_method"] == card


def test_without_any_method_nothing_is_charged(stub: StripeStub, provider: StripePaymentProvider,
                                               customer: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        _charge(provider, customer, None)
    assert raised.value.code == "payment_method_required"
    assert stub.requests_to("POST", "/v1/payment_intents") == []


@pytest.mark.parametrize(("stripe_status", "expected"), [
    ("processing", ChargeStatus.PROCESSING),
    ("requires_action", ChargeStatus.REQUIRES_ACTION),
    ("requires_payment_method", ChargeStatus.FAILED),
    ("canceled", ChargeStatus.FAILED),
])
def test_payment_intent_statuses_map_to_charge_statuses(stub: StripeStub, provider: StripePaymentProvider,
                                                        customer: str, card: str, stripe_status: str,
                                                        expected: ChargeStatus) -> None:
    stub.override("payment_intent", status=stripe_status)
    result = provider.charge(customer_id=customer, provider_payment_method_id=card, amount_cents=1500,
                             currency_iso="USD", description="d", reference="p-1", idempotency_key="payment:p-1")

    assert result.status == expected
    intent = stub.of_type("payment_intent")[0]
    if expected == ChargeStatus.REQUIRES_ACTION:
        assert result.client_secret == intent["client_secret"]
    else:
        assert result.client_secret is None
    if expected == ChargeStatus.FAILED:
        assert result.failure_message


def test_sepa_debits_are_processing(provider: StripePaymentProvider, customer: str) -> None:
    provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_sepa_debit")
    assert _charge(provider, customer, "pm_sepa_debit") == ChargeStatus.PROCESSING


def test_a_declined_card_is_a_failed_result_with_stripes_message(stub: StripeStub, provider: StripePaymentProvider,
                                                                 customer: str) -> None:
    provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_card_chargeDeclined")
    result = provider.charge(customer_id=customer, provider_payment_method_id="pm_card_chargeDeclined",
                             amount_cents=1500, currency_iso="USD", description="d", reference="p-1",
                             idempotency_key="payment:p-1")

    (intent,) = stub.of_type("payment_intent")
    assert result.status == ChargeStatus.FAILED
    assert result.failure_message == "Your card was declined."
    assert result.provider_payment_id == intent["id"]
    again = provider.charge(customer_id=customer, provider_payment_method_id="pm_card_chargeDeclined",
                            amount_cents=1500, currency_iso="USD", description="d", reference="p-1",
                            idempotency_key="payment:p-1")
    assert again == result
    assert len(stub.of_type("payment_intent")) == 1


def test_authentication_required_asks_for_the_customer(stub: StripeStub, provider: StripePaymentProvider,
                                                       customer: str) -> None:
    provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_card_authenticationRequired")
    result = provider.charge(customer_id=customer, provider_payment_method_id="pm_card_authenticationRequired",
                             amount_cents=1500, currency_iso="USD", description="d", reference="p-1",
                             idempotency_key="payment:p-1")

    (intent,) = stub.of_type("payment_intent")
    assert result.status == ChargeStatus.REQUIRES_ACTION
    assert result.client_secret == intent["client_secret"]
    assert result.provider_payment_id == intent["id"]


def test_any_card_error_is_a_failed_result(stub: StripeStub, provider: StripePaymentProvider, customer: str,
                                           card: str) -> None:
    stub.fail_next("/v1/payment_intents", status=402, body=card_error(
        code="card_declined", decline_code="insufficient_funds", message="Your card has insufficient funds.",
        payment_intent={"id": "pi_declined_1", "object": "payment_intent", "status": "requires_payment_method"}))
    result = provider.charge(customer_id=customer, provider_payment_method_id=card, amount_cents=1500,
                             currency_iso="USD", description="d", reference="p-1", idempotency_key="payment:p-1")
    assert (result.status, result.failure_message, result.provider_payment_id) == (
        ChargeStatus.FAILED, "Your card has insufficient funds.", "pi_declined_1")


# --------------------------------------------------------------------------- retries and errors


def test_a_5xx_is_retried_by_the_sdk_with_the_same_key(stub: StripeStub, provider: StripePaymentProvider,
                                                       customer: str, card: str) -> None:
    stub.fail_next("/v1/payment_intents", status=500)
    assert _charge(provider, customer, card) == ChargeStatus.SUCCEEDED

    attempts = stub.requests_to("POST", "/v1/payment_intents")
    assert [a.status for a in attempts] == [500, 200]
    assert {a.idempotency_key for a in attempts} == {"payment:p-1"}
    assert len(stub.of_type("payment_intent")) == 1


def test_a_lost_answer_is_retried_and_replayed_not_charged_again(stub: StripeStub, provider: StripePaymentProvider,
                                                                 customer: str, card: str) -> None:
    stub.fail_next("/v1/payment_intents", disconnect=True, after_processing=True)
    assert _charge(provider, customer, card) == ChargeStatus.SUCCEEDED

    attempts = stub.requests_to("POST", "/v1/payment_intents")
    assert [a.status for a in attempts] == [0, 200]
    assert {a.idempotency_key for a in attempts} == {"payment:p-1"}
    assert len(stub.of_type("payment_intent")) == 1


def test_persistent_outage_is_provider_unavailable_after_the_retries(stub: StripeStub, customer: str,
                                                                     card: str) -> None:
    stub.fail_next("/v1/payment_intents", status=503, times=3)
    with pytest.raises(ProviderUnavailable) as raised:
        _charge(make_provider(stub, max_network_retries=2), customer, card)

    assert raised.value.retryable
    assert isinstance(raised.value.__cause__, stripe.APIError)
    attempts = stub.requests_to("POST", "/v1/payment_intents")
    assert len(attempts) == 3 and {a.idempotency_key for a in attempts} == {"payment:p-1"}


def test_connection_resets_are_retried_then_unavailable(stub: StripeStub, customer: str, card: str) -> None:
    stub.fail_next("/v1/payment_intents", disconnect=True, times=2)
    with pytest.raises(ProviderUnavailable) as raised:
        _charge(make_provider(stub, max_network_retries=1), customer, card)
    assert isinstance(raised.value.__cause__, stripe.APIConnectionError)
    assert len(stub.requests_to("POST", "/v1/payment_intents")) == 2


def test_rate_limiting_is_provider_unavailable(stub: StripeStub, provider: StripePaymentProvider, customer: str,
                                               card: str) -> None:
    stub.fail_next("/v1/payment_intents", status=429, body={"error": {
        "type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}})
    with pytest.raises(ProviderUnavailable) as raised:
        _charge(provider, customer, card)
    assert isinstance(raised.value.__cause__, stripe.RateLimitError)


def test_an_unreachable_stripe_is_provider_unavailable(org: Organization) -> None:
    fixtures = fixtures_or_skip()
    with StripeStub(fixtures) as gone:
        base = gone.base_url
    provider = StripePaymentProvider("sk_test_x", SECRET, api_base=base, max_network_retries=0)
    with pytest.raises(ProviderUnavailable):
        provider.ensure_customer(org, None)


def test_a_wrong_api_key_is_a_misconfiguration(stub: StripeStub, org: Organization) -> None:
    with pytest.raises(PaymentError) as raised:
        make_provider(stub, api_key="sk_test_wrong").ensure_customer(org, None)
    assert raised.value.code == "provider_misconfigured"
    assert not raised.value.retryable
    assert "sk_test" not in raised.value.message
    assert isinstance(raised.value.__cause__, stripe.AuthenticationError)


def test_an_invalid_parameter_names_the_field(provider: StripePaymentProvider, customer: str, card: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        _charge(provider, customer, card, amount_cents=10)
    assert (raised.value.field, raised.value.code) == ("amount", "invalid_input")
    assert isinstance(raised.value.__cause__, stripe.InvalidRequestError)


def test_card_errors_outside_charges_are_declines(stub: StripeStub, provider: StripePaymentProvider,
                                                  customer: str) -> None:
    stub.fail_next("/v1/payment_methods/pm_card_visa/attach", status=402, body=card_error())
    with pytest.raises(PaymentDeclined) as declined:
        provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_card_visa")
    assert declined.value.message == "Your card was declined."

    stub.fail_next("/v1/payment_methods/pm_card_visa/attach", status=402, body=card_error(
        code="authentication_required", decline_code="authentication_required", message="Authenticate first."))
    with pytest.raises(AuthenticationRequired):
        provider.attach_payment_method(customer_id=customer, provider_payment_method_id="pm_card_visa")


def test_amounts_must_be_positive_whole_cents(provider: StripePaymentProvider, customer: str, card: str) -> None:
    for amount in (0, -5):
        with pytest.raises(InvalidInput):
            _charge(provider, customer, card, amount_cents=amount)


# --------------------------------------------------------------------------- refunds and invoices


def test_refund_of_a_payment_intent(stub: StripeStub, provider: StripePaymentProvider, customer: str,
                                    card: str) -> None:
    payment = provider.charge(customer_id=customer, provider_payment_method_id=card, amount_cents=1500,
                              currency_iso="USD", description="d", reference="p-1", idempotency_key="payment:p-1")
    refund_id = provider.refund(provider_payment_id=payment.provider_payment_id, amount_cents=500,
                                idempotency_key="refund:r-1")

    (request,) = stub.requests_to("POST", "/v1/refunds")
    assert request.idempotency_key == "refund:r-1"
    assert request.params == {"amount": "500", "payment_intent": payment.provider_payment_id}
    assert refund_id == stub.of_type("refund")[0]["id"] and refund_id.startswith("re_")
    assert provider.refund(provider_payment_id=payment.provider_payment_id, amount_cents=500,
                           idempotency_key="refund:r-1") == refund_id
    assert len(stub.of_type("refund")) == 1


def test_refunding_more_than_was_paid_names_the_amount(provider: StripePaymentProvider, customer: str,
                                                       card: str) -> None:
    payment = provider.charge(customer_id=customer, provider_payment_method_id=card, amount_cents=1500,
                              currency_iso="USD", description="d", reference="p-1", idempotency_key="payment:p-1")
    with pytest.raises(InvalidInput) as raised:
        provider.refund(provider_payment_id=payment.provider_payment_id, amount_cents=1600,
                        idempotency_key="refund:r-2")
    assert raised.value.field == "amount"


def test_a_crypto_payment_is_refunded_through_its_checkout_sessions_intent(
        stub: StripeStub, provider: StripePaymentProvider, customer: str) -> None:
    checkout = provider.create_crypto_checkout(customer_id=customer, amount_cents=2500, currency_iso="USD",
                                               return_url="/billing/credits", reference="pay-9",
                                               idempotency_key="payment:pay-9")
    with pytest.raises(InvalidInput) as unpaid:
        provider.refund(provider_payment_id=checkout.provider_session_id, amount_cents=2500,
                        idempotency_key="refund:r-3")
    assert unpaid.value.code == "nothing_to_refund"

    session = stub.complete_checkout(checkout.provider_session_id)
    provider.refund(provider_payment_id=checkout.provider_session_id, amount_cents=2500, idempotency_key="refund:r-4")
    assert stub.requests_to("POST", "/v1/refunds")[-1].params["payment_intent"] == session["payment_intent"]


def test_issue_invoice_drafts_adds_the_item_and_finalizes(stub: StripeStub, provider: StripePaymentProvider,
                                                          customer: str) -> None:
    hosted = provider.issue_invoice(customer_id=customer, amount_cents=4250, currency_iso="USD",
                                    description="Usage invoice INV-0007", reference="inv-7",
                                    idempotency_key="hosted-invoice:inv-7")

    create, item, finalize = (r for r in stub.requests if r.method == "POST" and "/v1/customers" not in r.path)
    assert (create.path, create.idempotency_key) == ("/v1/invoices", "hosted-invoice:inv-7:invoice")
    assert create.params == {"customer": customer, "currency": "usd", "description": "Usage invoice INV-0007",
                             "metadata": {"reference": "inv-7"}, "auto_advance": "true",
                             "collection_method": "charge_automatically", "pending_invoice_items_behavior": "exclude"}
    (invoice,) = stub.of_type("invoice")
    assert (item.path, item.idempotency_key) == ("/v1/invoiceitems", "hosted-invoice:inv-7:item")
    assert item.params == {"customer": customer, "invoice": invoice["id"], "amount": "4250", "currency": "usd",
                           "description": "Usage invoice INV-0007", "metadata": {"reference": "inv-7"}}
    assert (finalize.path, finalize.idempotency_key) == (f"/v1/invoices/{invoice['id']}/finalize",
                                                         "hosted-invoice:inv-7:finalize")
    assert hosted.provider_invoice_id == invoice["id"]
    assert hosted.hosted_invoice_url == invoice["hosted_invoice_url"]
    assert hosted.status == "open" and invoice["amount_due"] == 4250


def test_a_retried_invoice_reuses_what_the_first_attempt_made(stub: StripeStub, provider: StripePaymentProvider,
                                                              customer: str) -> None:
    stub.fail_next("/v1/invoices/*/finalize", status=500, times=3)
    with pytest.raises(ProviderUnavailable):
        provider.issue_invoice(customer_id=customer, amount_cents=4250, currency_iso="USD", description="Usage",
                               reference="inv-8", idempotency_key="hosted-invoice:inv-8")

    hosted = provider.issue_invoice(customer_id=customer, amount_cents=4250, currency_iso="USD", description="Usage",
                                    reference="inv-8", idempotency_key="hosted-invoice:inv-8")
    assert len(stub.of_type("invoice")) == 1 and len(stub.of_type("invoiceitem")) == 1
    assert hosted.status == "open"
    assert provider.issue_invoice(customer_id=customer, amount_cents=4250, currency_iso="USD", description="Usage",
                                  reference="inv-8", idempotency_key="hosted-invoice:inv-8") == hosted


# --------------------------------------------------------------------------- webhooks


def _event_body(stub: StripeStub) -> bytes:
    session = stub.example("checkout.session", id="cs_test_evt", mode="subscription", subscription="sub_1",
                           metadata={"reference": "chk-1"})
    return stub.event_payload("checkout.session.completed", session, event_id="evt_1", created=1_790_000_000)


def test_a_correctly_signed_event_is_decoded(stub: StripeStub, provider: StripePaymentProvider) -> None:
    body = _event_body(stub)
    event = provider.parse_event(body, sign_payload(body, SECRET))

    assert event == CheckoutCompleted(id="evt_1", type="checkout.session.completed", created=1_790_000_000,
                                      session_id="cs_test_evt", mode=CheckoutMode.SUBSCRIPTION, paid=False,
                                      subscription_id="sub_1", reference="chk-1")


def test_a_rolled_secret_signature_among_several_is_accepted(stub: StripeStub,
                                                             provider: StripePaymentProvider) -> None:
    body = _event_body(stub)
    ts = int(time.time())
    old = sign_payload(body, "whsec_old", timestamp=ts).split(",")[1]
    assert provider.parse_event(body, f"{sign_payload(body, SECRET, timestamp=ts)},{old}").id == "evt_1"


@pytest.mark.parametrize("case", ["tampered body", "wrong secret", "missing header", "empty header",
                                  "stale timestamp", "garbled header", "v0 scheme only"])
def test_an_unverifiable_event_is_refused(stub: StripeStub, provider: StripePaymentProvider, case: str) -> None:
    body = _event_body(stub)
    header: str | None = sign_payload(body, SECRET)
    if case == "tampered body":
        body = body.replace(b"chk-1", b"chk-2")
    elif case == "wrong secret":
        header = sign_payload(body, "whsec_someone_else")
    elif case == "missing header":
        header = None
    elif case == "empty header":
        header = ""
    elif case == "stale timestamp":
        header = sign_payload(body, SECRET, timestamp=int(time.time()) - 301)
    elif case == "garbled header":
        header = "not a signature"
    elif case == "v0 scheme only":
        assert header is not None
        header = header.replace("v1=", "v0=")

    with pytest.raises(InvalidInput) as raised:
        provider.parse_event(body, header)
    assert raised.value.code == "invalid_signature"
    assert raised.value.__cause__ is not None


def test_a_signed_body_that_is_not_an_event_is_refused(provider: StripePaymentProvider) -> None:
    for body in (b"not json", json.dumps({"id": "evt_1", "object": "event", "type": "x", "created": 1,
                                          "data": {"object": "nope"}}).encode()):
        with pytest.raises(InvalidInput) as raised:
            provider.parse_event(body, sign_payload(body, SECRET))
        assert raised.value.code == "invalid_signature"


# --------------------------------------------------------------------------- plan changes and checkout status


def test_a_plan_change_swaps_the_item_price_with_the_proration_invoiced_at_once(
        stub: StripeStub, provider: StripePaymentProvider, customer: str) -> None:
    pro = stub.add_price(unit_amount=9900, lookup_key="pro")
    subscription = stub.add_subscription(customer, unit_amount=2000)
    item = subscription["items"]["data"][0]
    half = datetime.fromtimestamp((item["current_period_start"] + item["current_period_end"]) // 2, tz=UTC)
    invoice = provider.change_subscription_plan(provider_subscription_id=subscription["id"],
                                                plan=load_catalog().plan("pro"), proration_at=half,
                                                reference="chg-1", idempotency_key="plan-change:chg-1")
    update = stub.requests_to("POST", f"/v1/subscriptions/{subscription['id']}")[-1]
    assert update.params["items"] == [{"id": item["id"], "price": pro["id"]}]
    assert update.params["proration_behavior"] == "always_invoice"
    assert update.params["proration_date"] == str(int(half.timestamp()))
    assert update.params["expand"] == ["latest_invoice"]
    assert update.params["metadata"] == {"plan": "pro", "plan_change": "chg-1"}
    assert update.idempotency_key == "plan-change:chg-1:subscription"
    assert stub.objects[subscription["id"]]["items"]["data"][0]["price"]["id"] == pro["id"]
    assert invoice is not None and invoice.status == "open"
    assert invoice.hosted_invoice_url == stub.objects[invoice.provider_invoice_id]["hosted_invoice_url"]
    assert stub.objects[invoice.provider_invoice_id]["amount_due"] == (9900 - 2000) // 2
    # The answer is lost after Stripe swapped: the SDK's retry replays the first swap, one invoice.
    stub.fail_next(f"/v1/subscriptions/{subscription['id']}", disconnect=True, after_processing=True)
    again = provider.change_subscription_plan(provider_subscription_id=subscription["id"],
                                              plan=load_catalog().plan("scale"), proration_at=half,
                                              reference="chg-2", idempotency_key="plan-change:chg-2")
    assert again is not None
    assert len([i for i in stub.of_type("invoice") if i.get("billing_reason") == "subscription_update"]) == 2
    retried = stub.requests_to("POST", f"/v1/subscriptions/{subscription['id']}")[-2:]
    assert {r.idempotency_key for r in retried} == {"plan-change:chg-2:subscription"}


def test_a_plan_without_a_stripe_price_is_priced_inline_on_the_items_product(
        stub: StripeStub, provider: StripePaymentProvider, customer: str) -> None:
    subscription = stub.add_subscription(customer, unit_amount=2000)
    product = subscription["items"]["data"][0]["price"]["product"]
    provider.change_subscription_plan(provider_subscription_id=subscription["id"],
                                      plan=load_catalog().plan("enterprise"), proration_at=datetime.now(UTC),
                                      reference="chg-3", idempotency_key="plan-change:chg-3")
    lookup = stub.requests_to("GET", "/v1/prices")[-1]
    assert lookup.query["lookup_keys"] == ["enterprise"]
    update = stub.requests_to("POST", f"/v1/subscriptions/{subscription['id']}")[-1]
    assert update.params["items"][0]["price_data"] == {"currency": "usd", "unit_amount": "199900",
                                                       "recurring": {"interval": "month"}, "product": product}


def test_a_plan_change_of_an_unknown_subscription_is_not_found(provider: StripePaymentProvider) -> None:
    with pytest.raises(NotFound):
        provider.change_subscription_plan(provider_subscription_id="sub_missing", plan=load_catalog().plan("pro"),
                                          proration_at=datetime.now(UTC), reference="x", idempotency_key="k")


def test_checkout_status_is_stripes_session_status(stub: StripeStub, provider: StripePaymentProvider,
                                                   customer: str) -> None:
    opened = provider.create_checkout_session(customer_id=customer, guest_email=None,
                                              plan=load_catalog().plan("pro"), trial_days=None,
                                              return_url="/plans", reference="chk-1", idempotency_key="checkout:1")
    assert provider.checkout_status(opened.provider_session_id) == "open"
    stub.finish_checkout(opened.provider_session_id, "pm_card_visa")
    assert provider.checkout_status(opened.provider_session_id) == "complete"
    assert stub.objects[opened.provider_session_id]["subscription"].startswith("sub_")
    with pytest.raises(NotFound):
        provider.checkout_status("cs_test_missing")


def test_a_subscription_event_names_the_price_and_the_cancellation(stub: StripeStub,
                                                                   provider: StripePaymentProvider,
                                                                   customer: str) -> None:
    scale = stub.add_price(unit_amount=49900, lookup_key="scale")
    subscription = stub.add_subscription(customer, price=scale)
    subscription["cancel_at_period_end"] = True
    body = stub.event_payload("customer.subscription.updated", subscription)
    event = provider.parse_event(body, sign_payload(body, SECRET))
    assert isinstance(event, SubscriptionChanged)
    assert event.price == ProviderPrice(id=scale["id"], lookup_key="scale")
    assert event.cancel_at_period_end is True
    assert load_catalog().plan_for_price(event.price.id, event.price.lookup_key) == load_catalog().plan("scale")
