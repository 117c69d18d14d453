"""Provider webhooks drive the subscription and the wallet: replayed, reordered and forged events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.fakes import InMemoryBilling, in_memory_billing
from billing_core import InvalidInput, SubscriptionStatus, services
from billing_core.permissions import Actor, Permission
from billing_core.spend_guard import DenialReason, SpendWarning
from tests.unit.domain_builders import DOLLAR


@pytest.fixture
def billing() -> InMemoryBilling:
    return in_memory_billing(datetime(2026, 6, 1, 8, 0, tzinfo=UTC))


def _setup(billing: InMemoryBilling) -> tuple[uuid.UUID, Actor, Actor]:
    ctx = billing.ctx
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada", owner_email="a@acme.test")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    ada = services.organizations.authenticate(ctx, secret)
    _, service = services.organizations.issue_token(ctx, organization_id=org.id, name="svc",
                                                    scopes=frozenset({Permission.USAGE_WRITE}))
    services.product_subscriptions.subscribe_product(ctx, ada, organization_id=org.id, product="compute",
                                                     project_id=None)
    return org.id, ada, services.organizations.authenticate(ctx, service)


def _send(billing: InMemoryBilling, event_type: str, obj: dict[str, Any], event_id: str) -> str:
    body, signature = billing.payments.event(event_type, obj, event_id=event_id)
    return services.provider_events.handle_event(billing.ctx, body, signature).outcome


def _subscription(status: str, start: datetime) -> dict[str, Any]:
    return {"id": "sub_42", "object": "subscription", "status": status,
            "current_period_start": int(start.timestamp()),
            "current_period_end": int((start + timedelta(days=30)).timestamp())}


def test_checkout_to_recovery_through_events(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, platform = _setup(billing)
    session = services.checkout.start_checkout(ctx, ada, organization_id=org_id, plan="pro",
                                               return_url="https://app.test/pricing")
    completed = {"id": session.provider_session_id, "object": "checkout.session", "mode": "subscription",
                 "subscription": "sub_42", "status": "complete"}
    assert _send(billing, "checkout.session.completed", completed, "evt_1") == "processed"
    assert _send(billing, "checkout.session.completed", completed, "evt_1") == "duplicate"
    summary = services.plan_subscriptions.summary(ctx, ada, organization_id=org_id)
    assert summary is not None and summary.status == SubscriptionStatus.TRIALING

    # The trial converts; a stale "trialing" update arriving late changes nothing.
    now = billing.clock.advance(timedelta(days=14))
    _send(billing, "customer.subscription.updated", _subscription("active", now), "evt_2")
    _send(billing, "customer.subscription.updated", _subscription("trialing", now - timedelta(days=14)), "evt_0")
    summary = services.plan_subscriptions.summary(ctx, ada, organization_id=org_id)
    assert summary is not None and summary.status == SubscriptionStatus.ACTIVE
    balance_after_activation = services.overview.overview(ctx, ada, organization_id=org_id).credit_balance_micros
    assert balance_after_activation == 100 * DOLLAR  # trial credits expired, Pro credits granted

    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u1", product="compute",
                                       quantity=25).allowed
    # Payment fails: past_due, production keeps running inside the 7-day grace window.
    _send(billing, "customer.subscription.updated", _subscription("past_due", now), "evt_3")
    graced = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u2", product="compute",
                                         quantity=25)
    assert graced.allowed and graced.warning == SpendWarning.PAYMENT_FAILURE_GRACE_ACTIVE
    billing.clock.advance(timedelta(days=7, seconds=1))
    blocked = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u3",
                                          product="compute", quantity=25)
    assert not blocked.allowed and blocked.reason == DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    # Recovery: the invoice is paid and the subscription is active again.
    _send(billing, "customer.subscription.updated", _subscription("active", now), "evt_4")
    _send(billing, "customer.subscription.updated", _subscription("active", now), "evt_4")
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="u3", product="compute",
                                       quantity=25).allowed
    overview = services.overview.overview(ctx, ada, organization_id=org_id)
    assert overview.credit_balance_micros == balance_after_activation - 3 * DOLLAR
    assert services.reconcile.reconcile(ctx, organization_id=org_id).clean


def test_credits_land_only_when_the_payment_succeeds(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, _ = _setup(billing)
    billing.payments.auto_succeed = False  # the charge is "processing" until the webhook
    services.payment_methods.attach(ctx, ada, organization_id=org_id, provider_payment_method_id="pm_sepa_debit")
    payment = services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=40 * DOLLAR)
    assert payment.status == "pending"
    assert services.overview.overview(ctx, ada, organization_id=org_id).credit_balance_micros == 0
    intent = {"id": payment.provider_payment_id, "object": "payment_intent", "status": "succeeded",
              "metadata": {"reference": str(payment.id)}}
    assert _send(billing, "payment_intent.succeeded", intent, "evt_pi") == "processed"
    assert _send(billing, "payment_intent.succeeded", intent, "evt_pi_again") == "processed"
    assert services.overview.overview(ctx, ada, organization_id=org_id).credit_balance_micros == 40 * DOLLAR
    # A dispute later takes the credits back with a compensating entry, once.
    dispute = {"id": "dp_1", "object": "dispute", "payment_intent": payment.provider_payment_id}
    _send(billing, "charge.dispute.created", dispute, "evt_dp")
    _send(billing, "charge.dispute.created", dispute, "evt_dp2")
    assert services.overview.overview(ctx, ada, organization_id=org_id).credit_balance_micros == 0
    kinds = [e.kind for e in services.overview.balance_history(ctx, ada, organization_id=org_id).items]
    assert kinds == ["payment_reversal", "top_up"]
    assert services.reconcile.reconcile(ctx, organization_id=org_id).clean


def test_forged_or_unsigned_events_change_nothing(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, _ = _setup(billing)
    session = services.checkout.start_checkout(ctx, ada, organization_id=org_id, plan="pro",
                                               return_url="https://app.test/pricing")
    body, signature = billing.payments.event("checkout.session.completed", {
        "id": session.provider_session_id, "mode": "subscription", "subscription": "sub_x"}, event_id="evt_f")
    forged = body.replace(b"sub_x", b"sub_y")
    for payload, header in ((forged, signature), (body, None), (body, "t=1,v1=deadbeef")):
        with pytest.raises(InvalidInput) as raised:
            services.provider_events.handle_event(ctx, payload, header)
        assert raised.value.code == "invalid_signature"
    assert services.plan_subscriptions.summary(ctx, ada, organization_id=org_id) is None
    assert json.loads(body)["id"] == "evt_f"


def _subscribed(billing: InMemoryBilling) -> tuple[uuid.UUID, Actor]:
    org_id, ada, _ = _setup(billing)
    session = services.checkout.start_checkout(billing.ctx, ada, organization_id=org_id, plan="pro",
                                               return_url="https://app.test/pricing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(billing.ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id="sub_42")
    return org_id, ada


def _status_event(billing: InMemoryBilling, status: str, event_id: str, created: datetime) -> str:
    body, signature = billing.payments.event("customer.subscription.updated", {
        "id": "sub_42", "object": "subscription", "status": status}, event_id=event_id,
        created=int(created.timestamp()))
    return services.provider_events.handle_event(billing.ctx, body, signature).outcome


def _status(billing: InMemoryBilling, org_id: uuid.UUID, ada: Actor) -> SubscriptionStatus:
    summary = services.plan_subscriptions.summary(billing.ctx, ada, organization_id=org_id)
    assert summary is not None
    return summary.status


def test_a_redelivered_event_does_not_undo_the_one_that_followed_it(billing: InMemoryBilling) -> None:
    org_id, ada = _subscribed(billing)
    now = billing.clock.now()
    assert _status_event(billing, "past_due", "evt_fail", now) == "processed"
    assert _status_event(billing, "active", "evt_paid", now + timedelta(minutes=5)) == "processed"
    # The provider retries the first delivery (our 2xx was lost): nothing runs again.
    assert _status_event(billing, "past_due", "evt_fail", now) == "duplicate"
    assert _status(billing, org_id, ada) == SubscriptionStatus.ACTIVE


def test_an_event_about_an_older_state_is_stale_whatever_order_it_arrives_in(billing: InMemoryBilling) -> None:
    org_id, ada = _subscribed(billing)
    now = billing.clock.now()
    # Sent in this order, delivered in the reverse one.
    assert _status_event(billing, "active", "evt_paid", now + timedelta(minutes=5)) == "processed"
    assert _status_event(billing, "past_due", "evt_fail", now) == "processed"
    assert _status(billing, org_id, ada) == SubscriptionStatus.ACTIVE
    with billing.ctx.uow() as uow:
        sub = uow.plan_subscriptions.current(org_id)
    assert sub is not None and sub.past_due_since is None
    assert sub.provider_state_at == (now + timedelta(minutes=5)).replace(microsecond=0)
    # A newer state applies, and one sent in the same second as the last applied does too.
    later = now + timedelta(minutes=10)
    assert _status_event(billing, "past_due", "evt_fail_2", later) == "processed"
    assert _status(billing, org_id, ada) == SubscriptionStatus.PAST_DUE
    assert _status_event(billing, "active", "evt_paid_2", later) == "processed"
    assert _status(billing, org_id, ada) == SubscriptionStatus.ACTIVE
