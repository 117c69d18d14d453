"""The embedded-library use: a whole billing life cycle through billing_core's public API + fakes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import InMemoryBilling, in_memory_billing
from billing_core import NotFound, PermissionDenied, Role, SubscriptionStatus, services
from billing_core.billing_settings import SpendManagement
from billing_core.checkout import PlanAction
from billing_core.credit_packs import PackState
from billing_core.feed import EntryTone
from billing_core.permissions import Actor, Permission
from billing_core.spend_guard import DenialReason, ProductionHealth, SpendWarning
from tests.support.customers import give_invoice_address
from tests.unit.domain_builders import DOLLAR


@pytest.fixture
def billing() -> InMemoryBilling:
    return in_memory_billing(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))


def _actors(billing: InMemoryBilling) -> tuple[uuid.UUID, Actor, Actor, Actor, Actor]:
    ctx = billing.ctx
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada", owner_email="ada@acme.test")
    services.organizations.add_member(ctx, organization_id=org.id, user_id="bob", email="bob@acme.test",
                                      role=Role.OWNER)
    services.organizations.add_member(ctx, organization_id=org.id, user_id="cy", email="cy@acme.test",
                                      role=Role.MEMBER)
    actors = []
    for user in ("ada", "bob", "cy"):
        _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name=user, user_id=user)
        actors.append(services.organizations.authenticate(ctx, secret))
    _, service_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                           scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(ctx, service_secret)
    give_invoice_address(ctx, actors[0], org.id)
    return org.id, actors[0], actors[1], actors[2], platform


def _assert_reconciles(billing: InMemoryBilling, org_id: uuid.UUID) -> None:
    report = services.reconcile.reconcile(billing.ctx, organization_id=org_id)
    assert report.clean, report


def test_full_life_cycle(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, bob, cy, platform = _actors(billing)

    # Plans: a fresh workspace starts a trial; only the primary owner may act.
    choices = services.plan_subscriptions.plans(ctx, ada, organization_id=org_id)
    assert {c.action for c in choices} == {PlanAction.START_TRIAL}
    assert all(c.enabled for c in choices)
    assert not any(c.enabled for c in services.plan_subscriptions.plans(ctx, cy, organization_id=org_id))
    with pytest.raises(PermissionDenied):
        services.checkout.start_checkout(ctx, bob, organization_id=org_id, plan="pro", return_url="/billing")

    # Packs are disabled without a subscription.
    assert services.payments.credit_packs(ctx, ada, organization_id=org_id).state == PackState.NO_SUBSCRIPTION

    session = services.checkout.start_checkout(ctx, ada, organization_id=org_id, plan="pro",
                                               return_url="https://app.test/billing")
    assert session.trial and session.client_secret
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id="sub_1")
    summary = services.plan_subscriptions.summary(ctx, cy, organization_id=org_id)
    assert summary is not None and summary.status == SubscriptionStatus.TRIALING and summary.tier == "Pro"
    overview = services.overview.overview(ctx, cy, organization_id=org_id)
    assert overview.credit_balance_display == "$5.000"  # Free Trial Credits

    # Usage against an org-level product subscription.
    services.product_subscriptions.subscribe_product(ctx, bob, organization_id=org_id, product="compute",
                                                     project_id=None)
    project = uuid.uuid4()
    outcome = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-1",
                                          product="compute", quantity=10, project_id=project)
    assert outcome.allowed and outcome.amount_micros == 400_000 and outcome.balance_micros == 4_600_000
    replay = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-1",
                                         product="compute", quantity=10, project_id=project)
    assert replay.replayed and replay.balance_micros == 4_600_000

    # Add credits with a card: they land because the (offline) charge succeeded.
    method = services.payment_methods.attach(ctx, bob, organization_id=org_id,
                                             provider_payment_method_id="pm_card_visa")
    assert method.default and method.brand == "visa" and method.last4 == "4242"
    payment = services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=20 * DOLLAR)
    assert payment.status == "succeeded"
    assert services.overview.overview(ctx, ada, organization_id=org_id).credit_balance_micros == 24_600_000
    with pytest.raises(PermissionDenied):
        services.payments.add_credits(ctx, cy, organization_id=org_id, amount_micros=20 * DOLLAR)

    # The trial ends: what is left of the trial's grant expires (the $0.40 of usage drew it first,
    # ADR 0016), the plan's credits arrive.
    billing.clock.advance(timedelta(days=14))
    now = billing.clock.now()
    services.plan_subscriptions.apply_provider_status(ctx, provider_subscription_id="sub_1",
                                                      status=SubscriptionStatus.ACTIVE, current_period_start=now,
                                                      current_period_end=now + timedelta(days=30))
    overview = services.overview.overview(ctx, ada, organization_id=org_id)
    assert overview.wallet.total_credits == (25 + 100) * DOLLAR - 4_600_000
    assert overview.wallet.usage_this_period == 400_000
    assert overview.wallet.overage_protection == 50 * DOLLAR
    _assert_reconciles(billing, org_id)

    # Packs: the seed's three states; the primary owner buys one.
    assert services.payments.credit_packs(ctx, cy, organization_id=org_id).state == PackState.NOT_PRIMARY_OWNER
    assert services.payments.credit_packs(ctx, ada, organization_id=org_id).enabled
    services.payments.purchase_pack(ctx, ada, organization_id=org_id, pack_dollars=10)
    with pytest.raises(PermissionDenied):
        services.payments.purchase_pack(ctx, bob, organization_id=org_id, pack_dollars=10)
    assert services.overview.overview(ctx, ada, organization_id=org_id).wallet.total_credits == 135 * DOLLAR - 4_600_000

    # Spend management: a $1 daily budget stops usage for the rest of the UTC day once reached (the
    # call that crosses it still runs, in full), one notice.
    services.settings.update_spend_management(
        ctx, ada, organization_id=org_id,
        spend=SpendManagement(enabled=True, daily_budget_micros=1 * DOLLAR, webhook_url="https://hooks.acme.test/b"))
    allowed = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-2",
                                          product="compute", quantity=20, project_id=project)
    assert allowed.allowed
    crossing = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-cross",
                                           product="compute", quantity=10, project_id=project)
    assert crossing.allowed and crossing.amount_micros == 400_000
    for i in range(3):
        denied = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id=f"evt-d{i}",
                                             product="compute", quantity=10, project_id=project)
        assert not denied.allowed and denied.reason == DenialReason.DAILY_BUDGET_REACHED
        assert denied.retry_at == datetime(2026, 3, 25, tzinfo=UTC)
    budget_mails = [m for m in billing.store.outbox.values() if "budget" in m.dedupe_key]
    assert len(budget_mails) == 2  # one email, one webhook
    billing.clock.advance(timedelta(days=1))
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-3",
                                       product="compute", quantity=1, project_id=project).allowed
    assert services.overview.overview(ctx, ada, organization_id=org_id).wallet.consumed_yesterday == 1_200_000

    # Automatic refund of a failed operation: a green + entry with its reason, once.
    services.usage.refund_usage(ctx, platform, organization_id=org_id, event_id="evt-2")
    again = services.usage.refund_usage(ctx, platform, organization_id=org_id, event_id="evt-2")
    assert again.replayed
    # Yesterday's usage stays counted there: that budget has already reset.
    assert services.overview.overview(ctx, ada, organization_id=org_id).wallet.consumed_yesterday == 1_200_000
    feed = services.overview.usage_feed(ctx, cy, organization_id=org_id).items
    refund = feed[0]
    assert refund.tone == EntryTone.CREDIT and refund.sign == "+"
    assert refund.reason == "failed generation reimbursed" and refund.amount_micros == 800_000
    assert refund.balance_after_micros == services.overview.overview(
          ctx, ada, organization_id=org_id).credit_balance_micros
    _assert_reconciles(billing, org_id)

    # Payment failure: production runs during the grace window, then stops; recovery resumes it.
    services.plan_subscriptions.apply_provider_status(ctx, provider_subscription_id="sub_1",
                                                      status=SubscriptionStatus.PAST_DUE)
    graced = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-4",
                                         product="compute", quantity=1, project_id=project)
    assert graced.allowed and graced.warning == SpendWarning.PAYMENT_FAILURE_GRACE_ACTIVE
    assert graced.grace_ends_at == billing.clock.now() + timedelta(days=7)
    overview = services.overview.overview(ctx, ada, organization_id=org_id)
    assert overview.production_health == ProductionHealth.GRACE_ACTIVE
    assert [b.kind for b in overview.banners] == ["past_due"]
    billing.clock.advance(timedelta(days=8))
    blocked = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-5",
                                          product="compute", quantity=1, project_id=project)
    assert not blocked.allowed and blocked.reason == DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
    assert services.overview.overview(
          ctx, ada, organization_id=org_id).production_health == ProductionHealth.BLOCKED_BY_PAYMENT_FAILURE
    services.plan_subscriptions.apply_provider_status(ctx, provider_subscription_id="sub_1",
                                                      status=SubscriptionStatus.ACTIVE)
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="evt-5",
                                       product="compute", quantity=1, project_id=project).allowed

    # Period close for March: one invoice, credit applied, gapless number, legal invoice + email.
    billing.clock.set(datetime(2026, 4, 2, 6, 0, tzinfo=UTC))
    report = services.invoicing.close_period(ctx, period="2026-03")
    assert report.invoices_created == 1
    rerun = services.invoicing.close_period(ctx, period="2026-03")
    assert rerun.invoices_created == 0
    invoice = services.invoicing.get_invoice(ctx, cy, organization_id=org_id, invoice_id=report.invoice_ids[0])
    assert invoice.number == "INV-000001"
    assert invoice.subtotal_cents == sum(i.amount.cents for i in invoice.items)
    assert invoice.credit_applied_cents == invoice.subtotal_cents and invoice.amount_due.cents == 0
    # evt-5 happened on 2 April (after the grace window), so it waits for April's invoice.
    assert services.overview.overview(ctx, ada, organization_id=org_id).wallet.usage_this_period == 40_000
    history = services.overview.balance_history(ctx, ada, organization_id=org_id).items
    assert history[0].description == "Applied credit balance to invoice INV-000001"
    _assert_reconciles(billing, org_id)

    sent = services.dispatch.dispatch(ctx, billing.deliverers)
    assert sent.sent >= 2 and sent.dead == 0
    services.dispatch.dispatch(ctx, billing.deliverers)  # the invoice email queued by the legal step
    invoice_mail = [m for m in billing.mailer.sent if m.subject == "Invoice INV-000001"]
    assert len(invoice_mail) == 1 and invoice_mail[0].attachments[0].content.startswith(b"%PDF")
    assert [url for url, _ in billing.webhooks.deliveries] == ["https://hooks.acme.test/b"]


def test_low_credit_blocks_and_top_up_resumes(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, bob, _, platform = _actors(billing)
    services.product_subscriptions.subscribe_product(ctx, bob, organization_id=org_id, product="inference",
                                                     project_id=None)
    denied = services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="e1",
                                         product="inference", quantity=1)
    assert not denied.allowed and denied.reason == DenialReason.INSUFFICIENT_CREDIT
    assert services.overview.overview(
          ctx, ada, organization_id=org_id).production_health == ProductionHealth.BLOCKED_BY_LOW_CREDIT
    services.payment_methods.attach(ctx, bob, organization_id=org_id, provider_payment_method_id="pm_card_visa")
    services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=5 * DOLLAR)
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="e1",
                                       product="inference", quantity=1).allowed


def test_declined_top_up_adds_nothing(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, bob, _, _ = _actors(billing)
    services.payment_methods.attach(ctx, bob, organization_id=org_id,
                                    provider_payment_method_id="pm_card_chargeDeclined")
    payment = services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=50 * DOLLAR)
    assert payment.status == "failed" and payment.failure_message == "Your card was declined."
    assert services.overview.overview(ctx, bob, organization_id=org_id).credit_balance_micros == 0


def test_auto_recharge_once_per_crossing(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, ada, bob, _, platform = _actors(billing)
    services.product_subscriptions.subscribe_product(ctx, bob, organization_id=org_id, product="compute",
                                                     project_id=None)
    services.payment_methods.attach(ctx, bob, organization_id=org_id, provider_payment_method_id="pm_card_visa")
    services.payments.add_credits(ctx, ada, organization_id=org_id, amount_micros=10 * DOLLAR)
    services.settings.update_auto_recharge(ctx, ada, organization_id=org_id, enabled=True,
                                           threshold_micros=5 * DOLLAR, amount_micros=25 * DOLLAR)
    for i in range(5):  # 5 × $1.60: the balance falls below $5 at the 4th call
        assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id=f"u{i}",
                                           product="compute", quantity=40).allowed
    services.dispatch.dispatch(ctx, billing.deliverers)
    recharges = [r for r in billing.payments.charge_requests if r["amount"] == 2500]
    assert len(recharges) == 1
    assert services.overview.overview(ctx, bob, organization_id=org_id).credit_balance_micros == (10 - 8 + 25) * DOLLAR
    _assert_reconciles(billing, org_id)


def test_guest_checkout_is_claimed_on_verified_login(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    session = services.checkout.start_guest_checkout(ctx, email="Ada@Acme.test", plan="starter",
                                                     return_url="https://app.test/pricing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id="sub_guest")
    org_id, ada, _, cy, _ = _actors(billing)
    assert services.checkout.claim_guest_checkouts(ctx, cy) == []
    claimed = services.checkout.claim_guest_checkouts(ctx, ada)
    assert [c.id for c in claimed] == [session.id]
    summary = services.plan_subscriptions.summary(ctx, ada, organization_id=org_id)
    assert summary is not None and summary.plan == "starter"
    assert services.checkout.claim_guest_checkouts(ctx, ada) == []


def test_outsider_sees_nothing(billing: InMemoryBilling) -> None:
    ctx = billing.ctx
    org_id, _, _, _, _ = _actors(billing)
    other = services.organizations.create_organization(ctx, name="Other", owner_user_id="eve",
                                                       owner_email="eve@other.test")
    _, secret = services.organizations.issue_token(ctx, organization_id=other.id, name="eve", user_id="eve")
    eve = services.organizations.authenticate(ctx, secret)
    with pytest.raises(NotFound):
        services.overview.overview(ctx, eve, organization_id=org_id)
    with pytest.raises(NotFound):
        services.settings.update_billing_email(ctx, eve, organization_id=org_id, email="eve@other.test")
    assert services.settings.get_settings(ctx, eve, organization_id=other.id).billing_email == "eve@other.test"
