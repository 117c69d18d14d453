"""Issue 19, items 4 to 8, in a real browser: the seeds' wording where a user reads it.

Every test works on an organization of its own (created behind the API through the container), so the
session-wide server's demo organization stays as the other console tests expect it.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from playwright.sync_api import Page, expect

from billing_core import Permission, services
from billing_core.permissions import Actor
from billing_core.plan_subscription import SubscriptionStatus
from tests.e2e.console.conftest import ConsoleServer, open_page

DOLLAR = 1_000_000
GREEN = "rgb(26, 127, 55)"


@dataclass(frozen=True)
class Workspace:
    id: uuid.UUID
    secret: str
    owner: Actor
    ctx: Any


def workspace(server: ConsoleServer, name: str, *, credits: int = 0, plan: str | None = None) -> Workspace:
    """A new organization whose creator is its primary owner; with a card, ``credits`` dollars added and,
    given ``plan``, a subscription (a paid one when credits came first: no trial after billing history)."""
    ctx = server.container.billing_context()
    user = f"u{uuid.uuid4().hex[:8]}"
    org = services.organizations.create_organization(ctx, name=name, owner_user_id=user,
                                                     owner_email=f"{user}@example.com")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="e2e", user_id=user)
    owner = services.organizations.authenticate(ctx, secret)
    if credits:
        services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
        services.payments.add_credits(ctx, owner, organization_id=org.id, amount_micros=credits * DOLLAR)
    if plan:
        session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan=plan,
                                                   return_url="/console/plans")
        assert session.provider_session_id is not None
        services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                            provider_subscription_id=f"sub_{org.id.hex}")
    return Workspace(org.id, secret, owner, ctx)


def sign_in_to(page: Page, server: ConsoleServer, ws: Workspace, then: str) -> None:
    open_page(page, server, "/")
    page.get_by_label("API token").fill(ws.secret)
    page.get_by_label("Organization ID").fill(str(ws.id))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/billing/overview")
    page.wait_for_selector("body[data-ready]")
    if then != "/billing/overview":
        open_page(page, server, then)


def platform(ws: Workspace) -> Actor:
    _, secret = services.organizations.issue_token(ws.ctx, organization_id=ws.id, name="platform",
                                                   scopes=frozenset({Permission.USAGE_WRITE}))
    return services.organizations.authenticate(ws.ctx, secret)


def shown_utc(moment: datetime) -> str:
    """A time as the console writes it (en-US, UTC): ``Dec 07, 2026, 19:11 UTC``."""
    return f"{moment.astimezone(UTC):%b %d, %Y, %H:%M} UTC"


# --------------------------------------------------------------------------- item 4: production health

def test_production_health_on_the_dashboard_and_the_pricing_page(page: Page, console_server: ConsoleServer) -> None:
    """Blocked by payment failure vs blocked by credit thresholds; the grace window active (with its end)
    or expired, where the seed puts recovery banners."""
    ws = workspace(console_server, "Grace Co", credits=50, plan="pro")
    sub = services.plan_subscriptions.set_status(ws.ctx, organization_id=ws.id, status=SubscriptionStatus.PAST_DUE)
    assert sub.past_due_since is not None
    ends = sub.past_due_since + timedelta(days=7)  # Pro's grace days
    sign_in_to(page, console_server, ws, "/billing/overview")
    for path in ("/billing/overview", "/plans"):
        open_page(page, console_server, path)
        grace = page.locator("#banners #grace-window")
        expect(grace).to_have_attribute("data-grace", "active")
        expect(grace).to_have_text("Payment failed. Production keeps running during the grace period, which ends "
                                   f"{shown_utc(ends)}. Update your payment method before then.")
        expect(page.locator("#production-health")).to_have_count(0)  # production still runs

    # The window ran out: production is blocked by the payment failure, and the banner says since when.
    with ws.ctx.uow() as uow:
        current = uow.plan_subscriptions.current(ws.id)
        assert current is not None
        current.past_due_since = current.past_due_since - timedelta(days=30)
        uow.plan_subscriptions.save(current)
        # The spend guard reads the wallet's copy of the subscription gate.
        wallet = uow.wallets.lock(ws.id)
        uow.wallets.set_gate(ws.id, msgspec.structs.replace(wallet.gate, past_due_since=current.past_due_since))
        uow.commit()
    expired_at = ends - timedelta(days=30)
    for path in ("/billing/overview", "/plans"):
        open_page(page, console_server, path)
        health = page.locator("#banners #production-health")
        expect(health).to_have_attribute("data-health", "blocked_by_payment_failure")
        expect(health).to_have_text("Production is blocked by a payment failure. Update your payment method to "
                                    "restore API access.")
        expect(page.locator("#grace-window")).to_have_text(
            f"The grace period after the failed payment expired {shown_utc(expired_at)}.")

    # Credit thresholds are another cause, said in other words: a trial's credits used up.
    low = workspace(console_server, "Low Co", plan="starter")
    services.product_subscriptions.subscribe_product(low.ctx, low.owner, organization_id=low.id, product="compute",
                                                     project_id=None, start_date=datetime.now(UTC) - timedelta(hours=1))
    assert services.usage.report_usage(low.ctx, platform(low), organization_id=low.id, event_id="all-of-it",
                                       product="compute", quantity=125, project_id=None).allowed
    sign_in_to(page, console_server, low, "/plans")
    health = page.locator("#banners #production-health")
    expect(health).to_have_attribute("data-health", "blocked_by_low_credit")
    expect(health).to_have_text("Production is blocked by credit thresholds: your credits are below the minimum, "
                                "overage protection included. Add credits to restore API access.")
    expect(page.locator("#grace-window")).to_have_count(0)


# --------------------------------------------------------------------------- item 5: the Team plan page

def test_the_team_plan_module_switches_and_the_right_column_stays(page: Page, console_server: ConsoleServer) -> None:
    ws = workspace(console_server, "Layout Co")
    sign_in_to(page, console_server, ws, "/plans")
    left, right = page.locator("#left-column"), page.locator("#right-column")
    module = left.get_by_role("region", name="Team plan")
    # "When the workspace has no active subscription, the left column shows a Team plan module with a plan
    # selector." — "Choose a plan"
    expect(module.get_by_role("group", name="Choose a plan")).to_be_visible()
    expect(module.get_by_role("radio")).to_have_count(4)
    expect(module.get_by_role("button", name="Start trial")).to_be_enabled()
    expect(module.locator("#plan-summary")).to_be_hidden()
    # "The right column permanently shows your Credit balance" and the packs.
    expect(right.get_by_role("region", name="Credit balance").locator("#credit-balance")).to_have_text("$0.000")
    expect(right.locator("#pack-message")).to_have_text("Subscribe to a plan first to purchase credit packs")
    left_box, right_box = left.bounding_box(), right.bounding_box()
    assert left_box and right_box and left_box["x"] + left_box["width"] <= right_box["x"]

    module.get_by_role("radio", name=re.compile("Scale")).check()
    module.get_by_role("button", name="Start trial").click()
    page.get_by_role("region", name="Secure checkout").get_by_role("button", name="Complete checkout").click()
    page.wait_for_url(re.compile(r"/console/plans\?.*checkout_status=complete"))
    page.wait_for_selector("body[data-ready]")

    # "Once subscribed, the Team plan module shows a read-only summary of your current tier": the selector is gone.
    expect(module.get_by_role("group", name="Choose a plan")).to_be_hidden()
    summary = module.locator("#subscription-summary")
    expect(summary.locator("dt")).to_have_text(["Tier", "Status", "Description", "Price", "Features",
                                                "Current period"])
    expect(page.locator("#sub-tier")).to_have_text("Scale")
    expect(page.locator("#sub-tier .dot")).to_have_attribute("data-color", "green")  # "with a status indicator"
    expect(page.locator("#sub-status")).to_contain_text("Trialing")
    expect(page.locator("#sub-status")).to_contain_text("Free trial is running")
    expect(page.locator("#sub-price")).to_contain_text("/ month")
    expect(page.locator("#sub-features li").first).to_be_visible()
    # "a Billing details module appears below the plan summary"
    details = left.get_by_role("region", name="Billing details")
    expect(details.get_by_role("button", name="Visit billing portal")).to_be_enabled()
    summary_box, details_box = module.bounding_box(), details.bounding_box()
    assert summary_box and details_box and details_box["y"] >= summary_box["y"] + summary_box["height"]
    # The right column is still there, now with the packs open to the primary owner.
    expect(right.locator("#credit-balance")).to_have_text(re.compile(r"^\$[\d,]+\.\d{3}$"))
    expect(right.locator("#pack-message")).to_have_text("Purchase add-on packs for extra credits on top of your plan")
    expect(right.locator("#packs button")).to_have_count(6)

    # Plan changes live behind a button on the summary.
    module.get_by_role("button", name="Change plan").click()
    expect(module.get_by_role("group", name="Choose a plan")).to_be_visible()
    module.get_by_role("button", name="Back to the summary").click()
    expect(module.locator("#plan-summary")).to_be_visible()

    # The old addresses of the three pages lead here.
    for old in ("/subscription", "/credits"):
        open_page(page, console_server, old)
        assert page.url.endswith("/console/plans")
        expect(page.locator("#sub-tier")).to_have_text("Scale")


# --------------------------------------------------------------------------- item 6: the usage feed

def test_overage_moved_onto_an_invoice_is_no_green_entry_and_a_refund_names_its_charge(
        page: Page, console_server: ConsoleServer) -> None:
    # $5 added, and Pro's $100 of included credits; Pro has a $50 overage credit line.
    ws = workspace(console_server, "Overage Co", credits=5, plan="pro")
    now = datetime.now(UTC)
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(day=10, hour=9, minute=0, second=0, microsecond=0)
    services.product_subscriptions.subscribe_product(ws.ctx, ws.owner, organization_id=ws.id, product="compute",
                                                     project_id=None, start_date=last_month - timedelta(days=1))
    usage_writer = platform(ws)
    assert services.usage.report_usage(ws.ctx, usage_writer, organization_id=ws.id, event_id="overage",
                                       product="compute", quantity=3000, project_id=None,
                                       occurred_at=last_month).allowed  # $120: $15 beyond the $105
    services.invoicing.close_period(ws.ctx, organization_id=ws.id)
    services.product_subscriptions.subscribe_product(ws.ctx, ws.owner, organization_id=ws.id, product="inference",
                                                     project_id=None, start_date=now - timedelta(hours=1))
    assert services.usage.report_usage(ws.ctx, usage_writer, organization_id=ws.id, event_id="draft-1",
                                       product="inference", quantity=500, project_id=None).allowed
    services.usage.refund_usage(ws.ctx, usage_writer, organization_id=ws.id, event_id="draft-1",
                                reason="draft generation failed on our side")

    sign_in_to(page, console_server, ws, "/billing/usage")
    feed = page.locator("#usage-feed tbody tr")
    settled = page.locator("#usage-feed tbody tr[data-kind='invoice_credit_applied']")
    expect(settled).to_have_class(re.compile(r"\bsettlement\b"))
    expect(settled).to_contain_text("Applied credit balance to invoice")
    expect(settled).to_contain_text("Usage moved onto the invoice: $105.000 paid from your credit balance, "
                                    "$15.000 billed on the invoice")
    assert settled.locator("td.amount").evaluate("cell => getComputedStyle(cell).color") != GREEN
    # "Only refunds are green + entries": every green row is a refund, and every refund is green.
    greens = [row for row in feed.all()
              if row.locator("td.amount").evaluate("cell => getComputedStyle(cell).color") == GREEN]
    assert [row.get_attribute("data-kind") for row in greens] == ["automatic_refund"]
    refund = greens[0]
    expect(refund.locator("td.amount")).to_contain_text("+$1.000")
    # "Each one shows what it was for": the charge it reverses.
    expect(refund).to_contain_text("Refund of Inference: 500 1K tokens (event draft-1)")
    refund.locator("details.feed-reason summary").click()
    expect(refund.get_by_text("Reverses: Inference: 500 1K tokens (event draft-1), charged")).to_be_visible()
    # Every row names what it was for.
    for row in feed.all():
        assert row.locator(".feed-purpose").count() == 1 or row.get_attribute("data-kind") == "usage", \
            row.inner_text()


# --------------------------------------------------------------------------- item 7: wording

def test_the_seeds_wording(page: Page, console_server: ConsoleServer) -> None:
    ws = workspace(console_server, "Words Co", credits=20, plan="pro")
    # "The auto-recharge section indicates if this feature is "Disabled" or "Enabled"."
    sign_in_to(page, console_server, ws, "/billing/overview")
    expect(page.locator("#auto-recharge-state .badge")).to_have_text("Disabled")
    services.settings.update_auto_recharge(ws.ctx, ws.owner, organization_id=ws.id, enabled=True)
    # The auto-recharge payment, and its description in the balance history as the seed writes it.
    services.payments.run_auto_recharge(ws.ctx, organization_id=ws.id, amount_micros=25 * DOLLAR,
                                        payment_method_id=None, operation_id=uuid.uuid4())
    open_page(page, console_server, "/billing/balance-history")
    recharge = page.locator("#balance-history tbody tr").first
    expect(recharge).to_contain_text(re.compile(r"Stripe Payment Intent \S+ via Auto Recharge call\."))
    expect(recharge).to_contain_text("$25.000")
    # Paused after failed charges: still "Enabled", with the reason beside it.
    with ws.ctx.uow() as uow:
        settings = uow.settings.get(ws.id)
        paused = msgspec.structs.replace(settings.auto_recharge, paused_at=datetime.now(UTC), consecutive_failures=3)
        uow.settings.save(msgspec.structs.replace(settings, auto_recharge=paused))
        uow.commit()
    open_page(page, console_server, "/billing/overview")
    expect(page.locator("#auto-recharge-state .badge")).to_have_text("Enabled")
    expect(page.locator("#auto-recharge-paused")).to_contain_text("after 3 failed charges")

    # "Expiring date"
    open_page(page, console_server, "/billing/payment-methods")
    expect(page.get_by_role("columnheader", name="Expiring date")).to_be_visible()

    # "a Description (such as "European VAT number")": only for an EU VAT id.
    open_page(page, console_server, "/billing/tax-settings")
    for country, value, description in (("GB", "GB123456789", "United Kingdom VAT number"),
                                        ("FR", "FR40303265045", "European VAT number")):
        page.get_by_role("button", name="Add Tax Registration").click()
        page.get_by_label("Country").fill(country)
        expect(page.get_by_label("Description")).to_have_attribute("placeholder", description)
        page.get_by_label("Value").fill(value)
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.locator("#tax-registrations tr", has_text=value)).to_contain_text(description)

    # "already has an active subscription" is not said of an unpaid workspace.
    services.plan_subscriptions.set_status(ws.ctx, organization_id=ws.id, status=SubscriptionStatus.PAST_DUE)
    services.plan_subscriptions.set_status(ws.ctx, organization_id=ws.id, status=SubscriptionStatus.UNPAID)
    open_page(page, console_server, "/plans")
    expect(page.locator("#sub-status")).to_contain_text("Invoice unpaid — update your payment method")
    expect(page.get_by_role("button", name="Change plan")).to_be_disabled()
    expect(page.locator("#change-plan-reason")).to_have_text(
        "The workspace's subscription is unpaid — update your payment method")
    expect(page.get_by_text("already has an active subscription")).to_have_count(0)


# --------------------------------------------------------------------------- item 8: the usage report

def test_the_usage_report_chart_totals_forecast_and_csv(page: Page, console_server: ConsoleServer,
                                                        tmp_path: Path) -> None:
    ws = workspace(console_server, "Report Co", credits=50, plan="pro")
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    services.product_subscriptions.subscribe_product(ws.ctx, ws.owner, organization_id=ws.id, product="storage",
                                                     project_id=None, start_date=start)
    writer = platform(ws)
    projects = [uuid.uuid4(), uuid.uuid4()]
    # 40 GB-hours per project at $0.000150: $0.006 each, which the invoice rounds to one cent each.
    for n, project in enumerate(projects):
        assert services.usage.report_usage(ws.ctx, writer, organization_id=ws.id, event_id=f"st-{n}",
                                           product="storage", quantity=40, project_id=project,
                                           occurred_at=start + timedelta(hours=3 + n)).allowed
    sign_in_to(page, console_server, ws, "/billing/usage")
    report = page.get_by_role("region", name="Usage report")
    expect(report).to_contain_text("Use this to build cost forecasts and chargeback reports.")
    # A chart of cost per day: one bar per day of the period so far, the first one carrying the usage.
    chart = page.locator("#usage-chart")
    expect(chart).to_have_attribute("data-granularity", "day")
    expect(chart.locator("svg")).to_be_visible()
    assert chart.locator("g.bar").count() == (now - start).days + 1
    first_day = chart.locator("g.bar").first
    expect(first_day).to_have_attribute("data-total", "12000")
    # Hourly on zoom.
    first_day.click()
    expect(chart).to_have_attribute("data-granularity", "hour")
    expect(page.locator("#chart-title")).to_have_text(f"Cost per hour on {start:%Y-%m-%d} (UTC)")
    expect(chart.locator("g.bar")).to_have_count(24)
    expect(chart.locator("g.bar").nth(3)).to_have_attribute("data-total", "6000")
    page.get_by_role("button", name="Back to days").click()
    expect(chart).to_have_attribute("data-granularity", "day")

    # Totals that match the invoice to the cent: 2 cents, not the 1 cent of rounding $0.012 once.
    expect(page.locator("#report-invoice-total")).to_have_text("$0.02")
    page.get_by_label("By", exact=True).select_option("project")
    expect(page.locator("#usage-totals tbody tr")).to_have_count(2)
    expect(page.locator("#chart-legend li")).to_have_text([f"Project {str(p)[:8]}" for p in sorted(
        projects, key=lambda p: f"Project {str(p)[:8]}")])
    for row in page.locator("#usage-totals tbody tr").all():
        expect(row.locator("td").last).to_have_text("$0.01")
    expect(page.locator("#report-invoice-total")).to_have_text("$0.02")
    with ws.ctx.uow() as uow:  # the invoice this window would get, built by the period close's own rule
        from billing_core.invoices import build_items
        buckets = uow.usage.buckets(ws.id, start, now + timedelta(hours=1))
        invoice_cents = sum(i.amount.cents for i in build_items(buckets, ws.ctx.catalog, "USD"))
    assert invoice_cents == 2

    # A forecast to the end of the period at the current rate.
    forecast = page.locator("#forecast")
    expect(forecast).to_contain_text("This period so far: $0.012. Forecast to the end of the period")
    so_far = int(forecast.get_attribute("data-so-far") or 0)
    projected = int(forecast.get_attribute("data-forecast") or 0)
    assert so_far == 12_000 and projected >= so_far

    # The CSV export for chargeback: one row per project and product, adding up to the invoice.
    with page.expect_download() as info:
        report.get_by_role("button", name="Export CSV").click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    assert target.suffix == ".csv"
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    lines = [r for r in rows if r["product"] != "TOTAL"]
    assert sorted(r["project_id"] for r in lines) == sorted(str(p) for p in projects)
    assert {(r["product"], r["quantity"], r["unit"], r["amount"]) for r in lines} == {
        ("storage", "40", "GB-hour", "0.01")}
    assert rows[-1]["product"] == "TOTAL" and rows[-1]["amount"] == "0.02" and rows[-1]["usage_micros"] == "12000"
