"""The whole life cycle with the real Stripe SDK against the local stub, driven by signed webhooks:
checkout → trial → active → usage → payment failure → past_due → grace expires → recovered → active,
with the wallet and the ledger checked at each step. Every event is delivered twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.fakes import FixedClock, InMemoryStore
from adapters.fakes.storage import in_memory_uow_factory
from adapters.stripe import StripePaymentProvider
from billing_core import InvalidInput, SubscriptionStatus, load_catalog, services
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext
from billing_core.spend_guard import DenialReason, SpendWarning
from tests.support.customers import sign_up
from tests.support.stripe_stub import StripeStub, fixtures_or_skip, running_stub, sign_payload

SECRET = "whsec_life_cycle_test"
DOLLAR = 1_000_000


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    yield from running_stub(fixtures_or_skip())


@pytest.fixture
def ctx(stub: StripeStub) -> BillingContext:
    provider = StripePaymentProvider(stub.api_key, SECRET, api_base=stub.base_url, max_network_retries=0,
                                     return_base_url="https://app.example.test")
    return BillingContext(uow=in_memory_uow_factory(InMemoryStore()), clock=FixedClock(datetime.now(UTC)),
                          catalog=load_catalog(), payments=provider)


def _deliver(ctx: BillingContext, stub: StripeStub, event_type: str, obj: dict[str, Any], event_id: str) -> list[str]:
    body = stub.event_payload(event_type, obj, event_id=event_id)
    header = sign_payload(body, SECRET)
    return [services.provider_events.handle_event(ctx, body, header).outcome for _ in range(2)]


def _balance(ctx: BillingContext, actor: Actor, org_id: uuid.UUID) -> int:
    assert services.reconcile.reconcile(ctx, organization_id=org_id).clean
    return services.overview.overview(ctx, actor, organization_id=org_id).credit_balance_micros


def test_checkout_to_recovery_with_stripe(ctx: BillingContext, stub: StripeStub) -> None:
    org_id, ada, platform = sign_up(ctx)
    clock = ctx.clock
    assert isinstance(clock, FixedClock)
    session = services.checkout.start_checkout(ctx, ada, organization_id=org_id, plan="pro",
                                               return_url="/pricing")
    [create] = stub.requests_to("POST", "/v1/checkout/sessions")
    assert create.params["subscription_data"]["trial_period_days"] == "14"
    assert create.headers["idempotency-key"] == f"checkout:{session.id}"

    completed = {"id": session.provider_session_id, "object": "checkout.session", "mode": "subscription",
                 "subscription": "sub_life", "status": "complete", "customer": "cus_x"}
    assert _deliver(ctx, stub, "checkout.session.completed", completed, "evt_a") == ["processed", "duplicate"]
    assert _balance(ctx, ada, org_id) == 5 * DOLLAR  # Free Trial Credits

    start = clock.advance(timedelta(days=14))
    sub = {"id": "sub_life", "object": "subscription", "current_period_start": int(start.timestamp()),
           "current_period_end": int((start + timedelta(days=30)).timestamp())}
    _deliver(ctx, stub, "customer.subscription.updated", {**sub, "status": "active"}, "evt_b")
    assert _balance(ctx, ada, org_id) == 100 * DOLLAR

    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u1", product="compute",
                                       quantity=50).allowed
    assert _balance(ctx, ada, org_id) == 98 * DOLLAR

    _deliver(ctx, stub, "customer.subscription.updated", {**sub, "status": "past_due"}, "evt_c")
    graced = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u2",
                                         product="compute", quantity=50)
    assert graced.allowed and graced.warning == SpendWarning.PAYMENT_FAILURE_GRACE_ACTIVE
    assert _balance(ctx, ada, org_id) == 96 * DOLLAR

    clock.advance(timedelta(days=8))
    blocked = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u3",
                                          product="compute", quantity=50)
    assert not blocked.allowed and blocked.reason == DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    assert _balance(ctx, ada, org_id) == 96 * DOLLAR

    _deliver(ctx, stub, "customer.subscription.updated", {**sub, "status": "active"}, "evt_d")
    summary = services.plan_subscriptions.summary(ctx, ada, organization_id=org_id)
    assert summary is not None and summary.status == SubscriptionStatus.ACTIVE
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u3", product="compute",
                                       quantity=50).allowed
    assert _balance(ctx, ada, org_id) == 94 * DOLLAR
    history = [e.description for e in services.overview.balance_history(ctx, ada, organization_id=org_id).items]
    assert history == ["Pro plan credits", "Free Trial Credits expired", "Free Trial Credits"]


def test_top_up_through_stripe_lands_on_success_only(ctx: BillingContext, stub: StripeStub) -> None:
    org_id, ada, _ = sign_up(ctx)
    services.payment_methods.attach(ctx, ada, organization_id=org_id, provider_payment_method_id="pm_card_visa")
    payment = services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=20 * DOLLAR)
    [intent] = stub.requests_to("POST", "/v1/payment_intents")
    assert intent.params["amount"] == "2000"
    assert intent.headers["idempotency-key"] == f"payment:{payment.id}"
    assert payment.status == "succeeded"
    assert _balance(ctx, ada, org_id) == 20 * DOLLAR
    # The webhook for the same intent changes nothing more.
    _deliver(ctx, stub, "payment_intent.succeeded",
             {"id": payment.provider_payment_id, "object": "payment_intent", "status": "succeeded",
              "metadata": {"reference": str(payment.id)}}, "evt_pi")
    assert _balance(ctx, ada, org_id) == 20 * DOLLAR


def test_declined_card_adds_nothing(ctx: BillingContext, stub: StripeStub) -> None:
    org_id, ada, _ = sign_up(ctx)
    services.payment_methods.attach(ctx, ada, organization_id=org_id,
                                    provider_payment_method_id="pm_card_chargeDeclined")
    payment = services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=20 * DOLLAR)
    assert payment.status == "failed" and payment.failure_message
    assert _balance(ctx, ada, org_id) == 0


def test_a_bad_signature_changes_nothing(ctx: BillingContext, stub: StripeStub) -> None:
    org_id, ada, _ = sign_up(ctx)
    session = services.checkout.start_checkout(ctx, ada, organization_id=org_id, plan="pro",
                                               return_url="/pricing")
    body = stub.event_payload("checkout.session.completed", {"id": session.provider_session_id,
                                                             "mode": "subscription", "subscription": "sub_z"})
    with pytest.raises(InvalidInput):
        services.provider_events.handle_event(ctx, body, sign_payload(body, "whsec_wrong"))
    assert services.plan_subscriptions.summary(ctx, ada, organization_id=org_id) is None
