"""Spend management end to end: notices delivered as signed webhooks to a real local receiver,
retried after 500s and dead-lettered after the retry horizon; auto-recharge pausing after repeated
failures; low-balance alerts once per crossing; a monthly cap that pauses and lifts by itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import InMemoryBilling, in_memory_billing
from adapters.webhooks.sender import HttpxWebhookSender
from billing_core import services
from billing_core.billing_settings import SpendManagement
from billing_core.permissions import Actor
from billing_core.services.context import BillingPolicy
from billing_core.services.dispatch import Deliverers
from billing_core.spend_guard import DenialReason
from tests.support.customers import Customer, sign_up
from tests.support.delivery import WebhookReceiver

DOLLAR = 1_000_000


@pytest.fixture
def billing() -> InMemoryBilling:
    policy = BillingPolicy(allow_private_webhook_urls=True, require_https_webhooks=False)
    return in_memory_billing(datetime(2026, 5, 4, 9, 0, tzinfo=UTC), policy=policy)


def _org(billing: InMemoryBilling, *, method: str = "pm_card_visa",
         credits: int = 20) -> Customer:
    ctx = billing.ctx
    customer = sign_up(ctx)
    services.wallet.grant_credits(ctx, organization_id=customer.organization_id, amount_micros=credits * DOLLAR,
                                  description="Promotional credits", idempotency_key="start")
    services.payment_methods.attach(ctx, customer.owner, organization_id=customer.organization_id,
                                    provider_payment_method_id=method)
    return customer


def _use(billing: InMemoryBilling, platform: Actor, org_id: uuid.UUID, event: str, dollars: int) -> bool:
    # compute costs $0.04 per unit: 25 units per dollar
    return services.usage.report_usage(billing.ctx, platform, organization_id=org_id, event_id=event,
                                       product="compute", quantity=25 * dollars).allowed


def test_budget_notice_is_a_signed_webhook_retried_then_dead_lettered(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, platform = _org(billing)
    secret = services.organizations.webhook_secret(ctx, ada, organization_id=org_id)
    with WebhookReceiver(secrets=[secret]) as receiver:
        services.settings.update_spend_management(ctx, ada, organization_id=org_id, spend=SpendManagement(
            enabled=True, daily_budget_micros=3 * DOLLAR, daily_email_threshold_micros=2 * DOLLAR,
            webhook_url=receiver.url))
        sender = HttpxWebhookSender(timeout=5, allow_private=True)  # the receiver is on loopback
        deliverers = Deliverers(mailer=billing.mailer, webhooks=sender, legal=billing.legal)
        for n in range(5):
            _use(billing, platform, org_id, f"u{n}", 1)
        report = services.dispatch.dispatch(ctx, deliverers)
        assert report.sent == 4  # threshold and budget, each once by email and once by webhook
        assert {m.subject for m in billing.mailer.sent} == {
            "Daily credit usage passed your notification threshold", "Daily credit budget reached"}
        assert sorted(r.verified for r in receiver.received) == [True, True]

        # Next day the receiver is down: the notice is retried with backoff, then dead-lettered.
        billing.clock.advance(timedelta(days=1))
        receiver.status = 500
        for n in range(4):
            _use(billing, platform, org_id, f"v{n}", 1)
        attempts = 0
        for _ in range(40):
            report = services.dispatch.dispatch(ctx, deliverers)
            attempts += report.retried + report.dead
            if report.dead:
                break
            billing.clock.advance(timedelta(hours=2))
        dead = services.dispatch.dead_letters(ctx, organization_id=org_id)
        assert [m.topic for m in dead] == ["webhook", "webhook"]
        assert all(m.attempts >= 10 for m in dead)
        assert all(m.last_error and "500" in m.last_error for m in dead)
        assert billing.clock.now() - dead[0].created_at >= timedelta(hours=24)


def test_auto_recharge_pauses_after_repeated_failures(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, platform = _org(billing, method="pm_card_chargeDeclined", credits=10)
    services.settings.update_auto_recharge(ctx, ada, organization_id=org_id, enabled=True,
                                           threshold_micros=9_500_000, amount_micros=20 * DOLLAR)
    for crossing in range(3):
        assert _use(billing, platform, org_id, f"c{crossing}", 1)
        services.dispatch.dispatch(ctx, billing.deliverers)
        # Each failed attempt leaves the settled wallet as it was; a grant moves it, so the next fall
        # below the threshold is a new crossing.
        services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=1 * DOLLAR,
                                      description="Promotional credits", idempotency_key=f"g{crossing}")
    recharge = services.settings.get_settings(ctx, ada, organization_id=org_id).auto_recharge
    assert recharge.consecutive_failures == 3
    assert recharge.paused
    assert services.overview.overview(ctx, ada, organization_id=org_id).auto_recharge.paused
    failures = [m for m in billing.store.outbox.values() if "auto-recharge-failed" in m.dedupe_key]
    assert len(failures) == 3  # one email per failure (no webhook URL configured)
    _use(billing, platform, org_id, "after-pause", 1)
    services.dispatch.dispatch(ctx, billing.deliverers)
    assert len(billing.payments.charge_requests) == 3  # paused: no fourth charge
    services.settings.update_auto_recharge(ctx, ada, organization_id=org_id, enabled=True)
    assert not services.settings.get_settings(ctx, ada, organization_id=org_id).auto_recharge.paused


def test_low_balance_alert_once_per_crossing(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, platform = _org(billing, credits=10)
    services.settings.update_low_balance_alert(ctx, ada, organization_id=org_id, enabled=True,
                                               threshold_micros=7 * DOLLAR)
    for n in range(6):
        _use(billing, platform, org_id, f"l{n}", 1)
    alerts = [m for m in billing.store.outbox.values() if "low-balance" in m.dedupe_key]
    assert len(alerts) == 1
    services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=10 * DOLLAR)
    for n in range(8):
        _use(billing, platform, org_id, f"m{n}", 1)
    alerts = [m for m in billing.store.outbox.values() if "low-balance" in m.dedupe_key]
    assert len(alerts) == 2


def test_monthly_cap_pauses_and_lifts_next_month(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, platform = _org(billing, credits=100)
    services.settings.update_spend_management(ctx, ada, organization_id=org_id, spend=SpendManagement(
        enabled=True, monthly_cap_micros=5 * DOLLAR))
    for n in range(5):
        assert _use(billing, platform, org_id, f"a{n}", 1)
    denied = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="over",
                                         product="compute", quantity=1)
    assert denied.reason == DenialReason.MONTHLY_BUDGET_REACHED
    assert denied.retry_at == datetime(2026, 6, 1, tzinfo=UTC)
    billing.clock.set(datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC))
    assert _use(billing, platform, org_id, "over", 1)
