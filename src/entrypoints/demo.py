"""Seed a demo organization with a few months of history, through the public use cases.

History is written with a clock that walks from three months ago to now, so invoices, packs, a
refund and usage have believable dates. Seeding is idempotent: a second run finds the demo
organization and only issues fresh tokens (secrets are shown once and stored hashed).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from adapters.fakes.clock import FixedClock
from billing_core import Actor, NotFound, Permission, Role, SubscriptionStatus, services
from billing_core.billing_settings import InvoiceAddress, SpendManagement
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import Deliverers

DEMO_ORGANIZATION_ID = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")
DEMO_PROJECTS = (uuid.UUID("00000000-0000-4000-8000-0000000000a1"), uuid.UUID("00000000-0000-4000-8000-0000000000a2"))
DOLLAR = 1_000_000


class DemoCredentials(msgspec.Struct, frozen=True):
    organization_id: uuid.UUID
    tokens: dict[str, str]
    """role (primary-owner, owner, member, service) → bearer secret"""
    created: bool


def seed_demo(ctx: BillingContext, deliverers: Deliverers, *, months: int = 3,
              progress: Callable[[str], None] | None = None) -> DemoCredentials:
    """Create the demo organization (once) and return fresh tokens for each role."""
    say = progress or (lambda _msg: None)
    created = False
    try:
        with ctx.uow() as uow:
            uow.organizations.get(DEMO_ORGANIZATION_ID)
    except NotFound:
        _seed_history(ctx, deliverers, months, say)
        created = True
    tokens = {}
    for role, user in (("primary-owner", "ada"), ("owner", "bob"), ("member", "cy")):
        _, tokens[role] = services.organizations.issue_token(ctx, organization_id=DEMO_ORGANIZATION_ID,
                                                             name=f"demo {role}", user_id=user)
    _, tokens["service"] = services.organizations.issue_token(
        ctx, organization_id=DEMO_ORGANIZATION_ID, name="demo platform service",
        scopes=frozenset({Permission.USAGE_WRITE, Permission.BILLING_READ}))
    return DemoCredentials(DEMO_ORGANIZATION_ID, tokens, created)


def _seed_history(ctx: BillingContext, deliverers: Deliverers, months: int, say: Callable[[str], None]) -> None:
    real_now = ctx.clock.now()
    start = (real_now.replace(day=1, hour=9, minute=0, second=0, microsecond=0) - timedelta(days=31 * months)
             ).replace(day=3)
    clock = FixedClock(start)
    past = dataclasses.replace(ctx, clock=clock)
    org = services.organizations.create_organization(past, name="Acme Robotics", owner_user_id="ada",
                                                     owner_email="ada@acme.example",
                                                     organization_id=DEMO_ORGANIZATION_ID)
    services.organizations.add_member(past, organization_id=org.id, user_id="bob", email="bob@acme.example",
                                      role=Role.OWNER)
    services.organizations.add_member(past, organization_id=org.id, user_id="cy", email="cy@acme.example",
                                      role=Role.MEMBER)
    ada = _actor(past, org.id, "ada")
    bob = _actor(past, org.id, "bob")
    _, service_secret = services.organizations.issue_token(past, organization_id=org.id, name="seed",
                                                           scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(past, service_secret)

    say("subscribing to Pro (trial)")
    session = services.checkout.start_checkout(past, ada, organization_id=org.id, plan="pro",
                                               return_url="/console/plans")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(past, provider_session_id=session.provider_session_id,
                                        provider_subscription_id=f"sub_demo_{org.id.hex[:8]}")
    services.settings.update_address(past, bob, organization_id=org.id, address=InvoiceAddress(
        company_name="Acme Robotics GmbH", address_1="Torstraße 1", city="Berlin", postal_code="10119",
        country="DE", po_number="PO-4711"))
    services.settings.update_billing_email(past, bob, organization_id=org.id, email="billing@acme.example")
    services.settings.add_tax_registration(past, bob, organization_id=org.id, country="DE", value="DE136695976",
                                           description="European VAT number")
    services.payment_methods.attach(past, bob, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    services.payment_methods.attach(past, bob, organization_id=org.id, provider_payment_method_id="pm_sepa_debit")
    services.payments.add_credits(past, ada, organization_id=org.id, amount_micros=50 * DOLLAR)
    for product in ("compute", "storage", "inference"):
        for project in DEMO_PROJECTS:
            services.product_subscriptions.subscribe_product(past, bob, organization_id=org.id, product=product,
                                                             project_id=project, start_date=start)
    services.settings.update_spend_management(past, ada, organization_id=org.id, spend=SpendManagement(
        enabled=True, daily_budget_micros=40 * DOLLAR, daily_email_threshold_micros=25 * DOLLAR))

    sub_id = f"sub_demo_{org.id.hex[:8]}"
    trial_over = False
    event = 0
    last_inference: str | None = None
    day = start
    while day < real_now - timedelta(hours=6):
        if not trial_over and day >= start + timedelta(days=14):
            services.plan_subscriptions.apply_provider_status(past, provider_subscription_id=sub_id,
                                                              status=SubscriptionStatus.ACTIVE,
                                                              current_period_start=day,
                                                              current_period_end=day + timedelta(days=30))
            services.payments.purchase_pack(past, ada, organization_id=org.id, pack_dollars=25)
            trial_over = True
        for hour in (9, 13, 17, 21):
            clock.set(day.replace(hour=hour))
            if clock.now() >= real_now:
                break
            for n, (product, quantity) in enumerate((("compute", 6), ("storage", 900), ("inference", 180))):
                event += 1
                outcome = services.usage.report_usage(
                 past, platform, organization_id=org.id, event_id=f"demo-{event}", product=product,
                 quantity=quantity, project_id=DEMO_PROJECTS[(event + n) % 2])
                if outcome.allowed and product == "inference":
                    last_inference = outcome.event_id
        if day.day == 1 and day > start:
            clock.set(day.replace(hour=6))
            _close_month_before(past, org.id, day, say)
            if trial_over:
                services.plan_subscriptions.apply_provider_status(
                         past, provider_subscription_id=sub_id, status=SubscriptionStatus.ACTIVE,
                         current_period_start=day, current_period_end=day + timedelta(days=30))
        day += timedelta(days=1)
    clock.set(min(day, real_now))
    # Seeded in the first hours of a month, the loop stops before the 1st's close: every month that
    # has ended is closed all the same (a re-run close is a no-op).
    _close_month_before(past, org.id, clock.now(), say)
    if last_inference is not None:
        services.usage.refund_usage(past, platform, organization_id=org.id, event_id=last_inference)
    services.dispatch.dispatch(past, deliverers)
    services.dispatch.dispatch(past, deliverers)
    say(f"seeded {event} usage events")


def _close_month_before(ctx: BillingContext, organization_id: uuid.UUID, at: datetime,
                        say: Callable[[str], None]) -> None:
    """Close the month before ``at``, saying so only when this run invoiced it (the final catch-up
    close repeats the loop's last one, which is a no-op)."""
    period = (at.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    report = services.invoicing.close_period(ctx, period=period, organization_id=organization_id)
    if report.invoices_created:
        say(f"closed {period}: {report.invoices_created} invoice")


def _actor(ctx: BillingContext, organization_id: uuid.UUID, user_id: str) -> Actor:
    _, secret = services.organizations.issue_token(ctx, organization_id=organization_id, name="seed",
                                                   user_id=user_id)
    return services.organizations.authenticate(ctx, secret)
