"""Click through the console in a real browser, against the real API over in-memory storage."""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from billing_core import Permission, services
from billing_core.errors import DuplicateTaxRegistration
from billing_core.grants import GrantSource
from billing_core.permissions import Actor
from billing_core.plan_subscription import SubscriptionStatus
from entrypoints.console.pages import PAGES
from entrypoints.demo import DEMO_PROJECTS
from tests.e2e.console.conftest import ConsoleServer, open_page, sign_in


def dollars(text: str) -> int:
    """``$1,234.560`` → micro-dollars (three decimals shown, so thousandths)."""
    match = re.fullmatch(r"(-?)\$([\d,]+)\.(\d{3})", text.strip())
    assert match, text
    value = int(match.group(2).replace(",", "")) * 1_000_000 + int(match.group(3)) * 1000
    return -value if match.group(1) else value


def test_every_page_is_a_shell_with_a_strict_content_security_policy(console_server: ConsoleServer) -> None:
    with httpx.Client(base_url=console_server.base_url) as client:
        for page in PAGES:
            response = client.get(f"/console{page.path}")
            assert response.status_code == 200, page.path
            policy = response.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "script-src 'self'" in policy
            assert "'unsafe-inline'" not in policy
            assert response.headers["x-content-type-options"] == "nosniff"
            html = response.text
            assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], "no inline script"
            assert " style=" not in html and "<style" not in html, "no inline style"
            assert not re.search(r"\son[a-z]+\s*=", html), "no inline event handlers"
            assert not any(token in html for token in console_server.tokens.values())
        script = client.get("/console/static/js/main.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "default-src 'self'" in script.headers["content-security-policy"]


def test_sign_in_keeps_the_token_in_session_storage_only(page: Page, console_server: ConsoleServer) -> None:
    token = console_server.tokens["owner"]
    sign_in(page, console_server, "owner")
    assert token not in page.url
    assert token not in page.content()
    assert token in (page.evaluate("() => JSON.stringify(sessionStorage)") or "")
    expect(page.locator("#session-role")).to_have_text("owner")
    # Navigation works from the one nav; signing out forgets the current token.
    page.get_by_role("navigation", name="Billing console").get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoices")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/")
    open_page(page, console_server, "/billing/overview")
    assert "/console/?next=" in page.url


def test_a_refused_token_is_reported(page: Page, console_server: ConsoleServer) -> None:
    open_page(page, console_server, "/")
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Sign in again")


def test_primary_owner_buys_a_pack_and_sees_the_balance_and_the_feed_change(
        page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, "primary-owner", then="/credits")
    expect(page.locator("#pack-message")).to_have_text("Purchase add-on packs for extra credits on top of your plan")
    balance = page.locator("#credit-balance")
    expect(balance).to_have_text(re.compile(r"^-?\$[\d,]+\.\d{3}$"))
    before = dollars(balance.inner_text())
    pack = page.get_by_role("button", name=re.compile(r"^\$10\b"))
    expect(pack).to_be_enabled()
    pack.click()
    # The notice comes after the balance was read again.
    expect(page.get_by_role("status")).to_contain_text("$10.000 added to your balance")
    expect(balance).to_have_text(balance_text(before + 10_000_000))

    open_page(page, console_server, "/billing/usage")
    first = page.locator("#usage-feed tbody tr").first
    # A purchase adds to the balance but is no refund: a plain + entry, not a green one (issue 19, item 6).
    expect(first).to_have_class(re.compile(r"\bdeposit\b"))
    expect(first.locator("td.amount")).to_contain_text("+$10.000")
    expect(first).to_contain_text("Credit pack purchase")
    assert first.locator("td.amount").evaluate("cell => getComputedStyle(cell).color") != "rgb(26, 127, 55)"
    expect(page.locator("#feed-balance")).to_have_text(balance_text(before + 10_000_000))

    open_page(page, console_server, "/billing/balance-history")
    expect(page.locator("#balance-history tbody tr").first).to_contain_text("$10.000")


def balance_text(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    whole, rest = divmod(abs(micros), 1_000_000)
    return f"{sign}${whole:,}.{rest // 1000:03d}"


def test_member_sees_disabled_buttons_with_the_seed_messages_and_the_server_refuses(
        page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, "member", then="/credits")
    expect(page.locator("#pack-message")).to_have_text("Only the team creator can purchase credit packs")
    packs = page.locator("#packs button")
    expect(packs).to_have_count(6)
    for index in range(6):
        expect(packs.nth(index)).to_be_disabled()

    # The demo workspace is subscribed: the Team plan module is the summary; changing plans is the
    # primary owner's, and so is the portal (the old /subscription address lands on the same page).
    open_page(page, console_server, "/plans")
    expect(page.get_by_role("button", name="Change plan")).to_be_disabled()
    expect(page.locator("#change-plan-reason")).to_have_text("Only the primary owner can subscribe to a plan")
    expect(page.get_by_role("radio")).to_have_count(0)

    open_page(page, console_server, "/subscription")
    assert page.url.endswith("/console/plans")
    expect(page.get_by_role("button", name="Visit billing portal")).to_be_disabled()
    expect(page.locator("#portal-reason")).to_have_text("Only the primary owner can access the billing portal")

    open_page(page, console_server, "/billing/spend-management")
    expect(page.get_by_role("button", name="Save Changes")).to_be_disabled()
    expect(page.locator("#update-reason")).to_have_text("Only the primary owner can manage spend management")

    # The server refuses anyway: the member's own token, straight at the API.
    status = page.evaluate(
        """async (org) => {
            const session = JSON.parse(sessionStorage.getItem("billing-console.session"));
            const response = await fetch(`/organizations/${org}/credit_packs/purchase`, {
                method: "POST", headers: {Authorization: `Bearer ${session.token}`,
                                         "Content-Type": "application/json"},
                body: JSON.stringify({pack_dollars: 10})});
            return response.status;
        }""", console_server.organization_id)
    assert status == 403


def test_an_owner_sees_enabled_exactly_what_the_api_accepts(page: Page, console_server: ConsoleServer) -> None:
    # Owners keep billing:update (payment methods, invoice details) but adding credits and
    # auto-recharge are purchases, the primary owner's: the console follows the API's own matrix.
    sign_in(page, console_server, "owner", then="/billing/add-credits")
    expect(page.locator("#add-submit")).to_be_disabled()
    expect(page.locator("#update-reason")).to_have_text("Only the primary owner can add usage credits")
    open_page(page, console_server, "/billing/auto-recharge")
    expect(page.locator("#recharge-save")).to_be_disabled()
    expect(page.locator("#update-reason")).to_have_text("Only the primary owner can manage auto-recharge")
    open_page(page, console_server, "/billing/invoice-address")
    expect(page.locator("#address-save")).to_be_enabled()

    answers = page.evaluate(
        """async (org) => {
            const session = JSON.parse(sessionStorage.getItem("billing-console.session"));
            const post = (path, body) => fetch(`/organizations/${org}${path}`, {
                method: "POST", headers: {Authorization: `Bearer ${session.token}`,
                                         "Content-Type": "application/json"},
                body: JSON.stringify(body)}).then((r) => r.status);
            return {credits: await post("/credits", {amount_micros: 10000000}),
                    stored: session.actions};
        }""", console_server.organization_id)
    assert answers["credits"] == 403, "the API refuses what the console disabled"
    assert answers["stored"]["add_credits"] == {"allowed": False,
                                                "message": "Only the primary owner can add usage credits"}
    assert answers["stored"]["update_billing"]["allowed"] is True


def test_spend_management_is_saved_and_reloaded(page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, "primary-owner", then="/billing/spend-management")
    toggle = page.get_by_role("switch", name="Spend Management")
    expect(toggle).to_be_checked()  # the demo enabled it
    expect(page.locator("#consumed-today")).to_have_text(re.compile(r"\$\d"))
    # The budget rule as the API applies it (spend_guard.budget_reached).
    expect(page.get_by_label("Set daily credit usage budget")).to_have_accessible_description(
        "Usage is blocked once today's usage reaches your budget; the call that crosses it still runs. Blocked "
        "calls resume at 00:00 UTC, and automatically refunded usage no longer counts against the budget.")
    page.get_by_label("Set daily credit usage budget").fill("55.5")
    page.get_by_label("Set a daily credit usage email notification threshold").fill("30")
    page.get_by_label("Set a webhook URL").fill("https://hooks.example.com/billing")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.get_by_role("status")).to_have_text("Spend management saved.")

    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(page.get_by_label("Set daily credit usage budget")).to_have_value("55.5")
    expect(page.get_by_label("Set a daily credit usage email notification threshold")).to_have_value("30")
    expect(page.get_by_label("Set a webhook URL")).to_have_value("https://hooks.example.com/billing")
    open_page(page, console_server, "/billing/overview")
    expect(page.locator("#spend-state")).to_contain_text("Enabled")

    # A bad webhook target is refused by the API and the field is marked.
    open_page(page, console_server, "/billing/spend-management")
    page.get_by_label("Set a webhook URL").fill("http://127.0.0.1/hook")
    page.get_by_role("button", name="Save Changes").click()
    expect(page.get_by_role("alert")).not_to_be_empty()


def test_invoice_pdf_is_downloaded(page: Page, console_server: ConsoleServer, tmp_path: Path) -> None:
    sign_in(page, console_server, "member", then="/billing/invoices")
    rows = page.locator("#invoice-history tbody tr")
    expect(rows.first.get_by_role("button", name=re.compile("Download PDF"))).to_be_visible()
    with page.expect_download() as info:
        rows.first.get_by_role("button", name=re.compile("Download PDF")).click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    assert target.suffix == ".pdf"
    assert target.read_bytes().startswith(b"%PDF")
    expect(page.get_by_role("columnheader")).to_have_text(
        ["Invoice Date", "Invoice ID", "Due Date", "Amount", "Actions",
         "Invoice Date", "Invoice ID", "Payment date", "Amount", "Actions",
         "Date", "Payment", "Status", "Amount", "Actions"])


def test_a_refund_shows_as_a_green_plus_entry_with_its_reason(page: Page, console_server: ConsoleServer) -> None:
    ctx = console_server.container.billing_context()
    org = uuid.UUID(console_server.organization_id)
    _, secret = services.organizations.issue_token(ctx, organization_id=org, name="e2e platform",
                                                   scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(ctx, secret)
    event_id = f"e2e-{uuid.uuid4().hex[:12]}"
    charged = services.usage.report_usage(ctx, platform, organization_id=org, event_id=event_id,
                                          product="inference", quantity=500, project_id=DEMO_PROJECTS[0])
    assert charged.allowed
    services.usage.refund_usage(ctx, platform, organization_id=org, event_id=event_id,
                                reason="draft generation failed on our side")

    sign_in(page, console_server, "member", then="/billing/usage")
    refund = page.locator("#usage-feed tbody tr[data-kind='automatic_refund']").first
    expect(refund).to_have_class(re.compile(r"\bcredit\b"))
    amount = refund.locator("td.amount")
    expect(amount).to_contain_text("+$")
    assert amount.evaluate("cell => getComputedStyle(cell).color") == "rgb(26, 127, 55)"
    reason = refund.locator("details.feed-reason")
    expect(reason).to_have_attribute("title", "draft generation failed on our side")
    expect(reason.get_by_text("Reason: draft generation failed on our side")).to_be_hidden()
    reason.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(reason.get_by_text("Reason: draft generation failed on our side")).to_be_visible()
    # "Each one shows what it was for": the charge it reverses, by product and event.
    expect(reason.get_by_text(f"Reverses: Inference: 500 1K tokens (event {event_id})")).to_be_visible()
    expect(refund).to_contain_text(f"Refund of Inference: 500 1K tokens (event {event_id})")
    # The charge it reverses is right below it, as a charge.
    charge = page.locator("#usage-feed tbody tr[data-kind='usage']").first
    expect(charge.locator("td.amount")).to_contain_text("-$")


def test_a_usage_charge_explains_its_hold_price_and_debit(page: Page, console_server: ConsoleServer) -> None:
    ctx = console_server.container.billing_context()
    org = uuid.UUID(console_server.organization_id)
    _, secret = services.organizations.issue_token(ctx, organization_id=org, name="e2e platform",
                                                   scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(ctx, secret)
    placed = services.holds.place_hold(ctx, platform, organization_id=org, product="inference", max_quantity=100,
                                       project_id=DEMO_PROJECTS[0])
    assert placed.hold is not None
    event_id = f"e2e-hold-{uuid.uuid4().hex[:12]}"
    settled = services.holds.settle_hold(ctx, platform, organization_id=org, hold_id=placed.hold.id,
                                         event_id=event_id, quantity=60)
    assert settled.hold is not None and settled.hold.charged_micros > 0

    sign_in(page, console_server, "member", then="/billing/usage")
    panel = page.locator(f"#usage-feed details.explain[data-event='{event_id}']")
    expect(panel).to_have_count(1)
    expect(panel.locator("dl")).to_have_count(0)  # nothing is fetched until the panel opens
    panel.locator("summary").focus()
    page.keyboard.press("Enter")
    chain = panel.locator("dl.explain-chain")
    expect(chain).to_be_visible()
    expect(chain.locator("[data-link='event']")).to_contain_text(f"{event_id}: 60 1K tokens of Inference (inference)")
    expect(chain.locator("[data-link='price']")).to_contain_text("60 × $")
    expect(chain.locator("[data-link='debit']")).to_contain_text(f"(ledger key usage:{event_id})")
    expect(chain.locator("[data-link='hold']")).to_contain_text(f"Hold {str(placed.hold.id)[:8]} (settled)")
    expect(chain.locator("[data-link='invoice']")).to_contain_text("Not invoiced yet")
    expect(chain.locator("[data-link='refunds']")).to_have_text("None.")
    # The API the panel reads is the member's to read: the same chain as the service gives.
    explained = services.usage_explain.explain_usage_event(
        ctx, services.organizations.authenticate(ctx, console_server.tokens["member"]), org, event_id)
    assert explained.debit is not None
    expect(chain.locator("[data-link='debit']")).to_contain_text(dollars_text(explained.debit.amount_micros))
    # Paid from the grants the debit drew (the demo's credits cover it: nothing on the credit line).
    assert explained.grants and explained.credit_line_micros == 0
    paid_from = chain.locator("[data-link='grants']")
    for draw in explained.grants:
        expect(paid_from).to_contain_text(f"{dollars_text(draw.amount_micros)} from ")
        expect(paid_from).to_contain_text(f"(grant {str(draw.grant_id)[:8]})")


def dollars_text(micros: int) -> str:
    """Micro-dollars as the console shows credits (``$12.480``)."""
    return f"${micros // 1_000_000:,}.{micros % 1_000_000 // 1000:03d}"


def test_checkout_simulation_returns_to_the_plans_page_with_its_status(
        page: Page, console_server: ConsoleServer) -> None:
    ctx = console_server.container.billing_context()
    org = services.organizations.create_organization(ctx, name="Fresh Co", owner_user_id="fay",
                                                     owner_email="fay@fresh.example")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="e2e", user_id="fay")
    open_page(page, console_server, "/")
    page.get_by_label("API token").fill(secret)
    page.get_by_label("Organization ID").fill(str(org.id))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/billing/overview")

    open_page(page, console_server, "/plans")
    expect(page.locator("#pack-message")).to_have_text("Subscribe to a plan first to purchase credit packs")
    expect(page.locator("#packs button").first).to_be_disabled()
    page.get_by_role("radio", name=re.compile("Scale")).check()
    action = page.get_by_role("button", name="Start trial")
    expect(action).to_be_enabled()
    action.click()
    checkout = page.get_by_role("region", name="Secure checkout")
    expect(checkout).to_be_visible()
    checkout.get_by_role("button", name="Complete checkout").click()
    page.wait_for_url(re.compile(r"/console/plans\?.*checkout_status=complete"))
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#checkout-result")).to_have_text("Checkout complete. Your subscription is active.")

    status = page.locator("#sub-status .badge")
    expect(status).to_have_text("Trialing")
    expect(status).to_have_attribute("data-color", "green")
    expect(page.get_by_role("button", name="Visit billing portal")).to_be_enabled()

    # With a subscription, another tier is an immediate plan change behind the summary's button, previewed first.
    expect(page.get_by_role("button", name="Proceed to payment")).to_be_hidden()
    page.get_by_role("button", name="Change plan").click()
    page.get_by_role("radio", name=re.compile("Pro")).check()
    page.get_by_role("button", name="Preview plan change").click()
    change = page.get_by_role("region", name="Change plan")
    expect(change).to_contain_text("Charged now")
    change.get_by_role("button", name="Change plan now").click()
    expect(page.get_by_role("status").filter(has_text="Your plan is now")).to_have_text("Your plan is now Pro.")

    # A failed renewal: red status and the payment recovery banner on the pricing page.
    services.plan_subscriptions.set_status(ctx, organization_id=org.id, status=SubscriptionStatus.PAST_DUE)
    open_page(page, console_server, "/plans")
    expect(page.locator("#sub-tier")).to_have_text("Pro")
    expect(status).to_have_text("Past due")
    expect(status).to_have_attribute("data-color", "red")
    expect(page.locator("#sub-status")).to_contain_text("Payment failed — update your payment method")
    expect(page.locator("#banners .banner[data-kind='past_due']")).to_have_text(
        "Your last payment failed. Update your payment method to keep production running.")


def test_settings_forms_round_trip(page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, "owner", then="/billing/invoice-address")
    expect(page.get_by_label("Company Name")).to_have_value("Acme Robotics GmbH")
    page.get_by_label("Address 2").fill("Hinterhaus")
    page.get_by_label("Region/Province").fill("Berlin")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Invoice address saved.")
    page.reload()
    expect(page.get_by_label("Address 2")).to_have_value("Hinterhaus")

    open_page(page, console_server, "/billing/invoice-notifications")
    expect(page.get_by_label("Email", exact=True)).to_have_value("billing@acme.example")
    page.get_by_label("Email", exact=True).fill("invoices@acme.example")
    page.get_by_role("button", name="Updates").click()
    expect(page.get_by_role("status")).to_have_text("Billing email updated.")

    open_page(page, console_server, "/billing/tax-settings")
    page.get_by_role("button", name="Add Tax Registration").click()
    page.get_by_label("Country").fill("FR")
    page.get_by_label("Value").fill("FR40303265045")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#tax-registrations")).to_contain_text("FR40303265045")
    # Well-formed but failing its checksum: kept, and shown unverified.
    page.get_by_role("button", name="Add Tax Registration").click()
    page.get_by_label("Country").fill("DE")
    page.get_by_label("Value").fill("DE123456789")
    page.get_by_role("button", name="Add", exact=True).click()
    row = page.locator("#tax-registrations tr", has_text="DE123456789")
    expect(row.locator(".badge")).to_have_text("unverified")
    expect(page.locator("#tax-registrations tr", has_text="FR40303265045").locator(".badge")).to_have_text("verified")
    # "unverified" with a red badge, "verified" with a black one.
    colors = {"unverified": "rgb(179, 38, 30)", "verified": "rgb(31, 35, 40)"}
    for badge in page.locator("#tax-registrations .badge").all():
        status = badge.inner_text().strip()
        assert badge.evaluate("b => getComputedStyle(b).backgroundColor") == colors[status]

    open_page(page, console_server, "/billing/payment-methods")
    expect(page.get_by_text("Default Card")).to_have_count(1)
    expect(page.get_by_role("button", name=re.compile(r"^Delete "))).to_have_count(2)
    page.get_by_role("button", name="Add New Credit Card").click()
    page.get_by_role("button", name="Save card").click()
    expect(page.get_by_role("button", name=re.compile(r"^Delete "))).to_have_count(3)
    page.get_by_role("button", name=re.compile(r"^Set Mastercard .* as default")).click()
    expect(page.locator("tr", has_text="Mastercard").get_by_text("Default Card")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete SEPA Direct Debit ending 3000").click()
    expect(page.get_by_role("button", name=re.compile(r"^Delete "))).to_have_count(2)


def test_add_usage_credits_and_auto_recharge(page: Page, console_server: ConsoleServer) -> None:
    sign_in(page, console_server, "primary-owner", then="/billing/add-credits")
    expect(page.get_by_role("heading", name="How much would you like to add to your balance?")).to_be_visible()
    method = page.get_by_label("Select a payment method")
    expect(method.locator("option").first).to_have_text("Select Method")
    expect(method.locator("option", has_text="Cryptocurrency")).to_have_count(1)
    expect(page.get_by_role("link", name="Add new payment method +")).to_be_visible()
    amount = page.get_by_label("Payment amount")
    amount.fill("3")
    page.get_by_role("button", name="Add to my balance").click()
    expect(page.get_by_role("alert")).to_have_text("Enter an amount between $5 and $5000.")
    expect(amount).to_have_attribute("aria-invalid", "true")
    amount.fill("12.50")
    method.select_option(index=1)  # the first saved method
    page.get_by_role("button", name="Add to my balance").click()
    expect(page.get_by_role("status")).to_have_text("$12.500 was added to your balance.")

    open_page(page, console_server, "/billing/auto-recharge")
    expect(page.get_by_text("Keep your service running by setting up auto-recharge.")).to_be_visible()
    toggle = page.get_by_role("switch", name="Auto Recharge")
    expect(toggle).not_to_be_checked()
    toggle.check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Auto recharge is enabled.")
    open_page(page, console_server, "/billing/overview")
    expect(page.locator("#auto-recharge-state .badge")).to_have_text("Enabled")


@pytest.mark.screenshots
def test_screenshots_of_every_page(page: Page, console_server: ConsoleServer) -> None:
    import os

    from tests.e2e.console.conftest import SCREENSHOTS

    if os.environ.get("BILLING_CONSOLE_SCREENSHOTS") != "1":
        pytest.skip("set BILLING_CONSOLE_SCREENSHOTS=1 to regenerate docs/screenshots/*.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # One unverified registration next to the demo's verified one, so both badges show.
    ctx = console_server.container.billing_context()
    owner = services.organizations.authenticate(ctx, console_server.tokens["owner"])
    # The session's server is shared: an earlier test may have added it already.
    with contextlib.suppress(DuplicateTaxRegistration):
        services.settings.add_tax_registration(ctx, owner, organization_id=uuid.UUID(console_server.organization_id),
                                               country="DE", value="DE123456789", description="European VAT number")
    # A project budget and an API key budget (ADR 0017) for the spend-management page's table; removed
    # afterwards, so that the session's other tests report usage under the organization's budgets only.
    org = uuid.UUID(console_server.organization_id)
    ada = services.organizations.authenticate(ctx, console_server.tokens["primary-owner"])
    service = services.organizations.authenticate(ctx, console_server.tokens["service"])
    assert service.token_id is not None
    budgets = (("project", DEMO_PROJECTS[0], 25_000_000, 400_000_000), ("token", service.token_id, None, 150_000_000))
    for scope, scope_id, daily, monthly in budgets:
        services.budgets.put_budget(ctx, ada, organization_id=org, scope=scope, scope_id=scope_id,
                                    daily_micros=daily, monthly_micros=monthly)
    try:
        open_page(page, console_server, "/")
        page.screenshot(path=SCREENSHOTS / "sign-in.png", full_page=True)
        sign_in(page, console_server, "primary-owner")
        for item in PAGES[1:]:
            open_page(page, console_server, item.path)
            page.screenshot(path=SCREENSHOTS / f"{item.slug}.png", full_page=True)
    finally:
        for scope, scope_id, _, _ in budgets:
            services.budgets.remove_budget(ctx, ada, organization_id=org, scope=scope, scope_id=scope_id)


def test_invoice_history_links_each_hosted_invoice_and_every_pdf(page: Page, console_server: ConsoleServer) -> None:
    with httpx.Client(base_url=console_server.base_url,
                      headers={"Authorization": f"Bearer {console_server.tokens['member']}"}) as client:
        invoices = client.get(f"/organizations/{console_server.organization_id}/invoices",
                              params={"limit": 200}).json()["items"]
    # The demo's periods were covered by credits (PDF only); one settled period with an amount due
    # gets its hosted invoice, as the legal-invoice delivery stores it for a Stripe customer.
    ctx = console_server.container.billing_context()
    org_id = uuid.UUID(console_server.organization_id)
    with ctx.uow() as uow:
        settled = uow.invoices.get(org_id, uuid.UUID(invoices[0]["id"]))
        settled.hosted_invoice_url = "https://invoice.stripe.com/i/acct_demo/test_settled"
        uow.invoices.save(settled)
        uow.commit()
    invoices[0]["hosted_invoice_url"] = settled.hosted_invoice_url
    sign_in(page, console_server, "member", then="/billing/invoices")
    for invoice in invoices:
        row = page.locator(f"#invoice-history tbody tr[data-invoice='{invoice['id']}']")
        link = row.get_by_role("link", name=re.compile("View the hosted invoice"))
        if invoice["hosted_invoice_url"]:
            expect(link).to_have_attribute("href", invoice["hosted_invoice_url"])
        else:
            expect(link).to_have_count(0)
        if invoice["pdf_available"]:
            expect(row.get_by_role("button", name=re.compile("Download PDF"))).to_be_visible()


def test_balance_history_lists_the_credit_grants_with_their_status(page: Page, console_server: ConsoleServer) -> None:
    ctx = console_server.container.billing_context()
    org = uuid.UUID(console_server.organization_id)
    platform = Actor(organization_id=org, subject="platform", scopes=frozenset({Permission.CREDITS_GRANT}))
    made = services.wallet.create_grant(ctx, platform, organization_id=org, amount_micros=7_250_000,
                                        description="Console grant test", source=GrantSource.TRIAL,
                                        expires_at=datetime(2099, 3, 1, tzinfo=UTC), priority=5)
    assert made.grant is not None
    grant_id = str(made.grant.grant.id)

    sign_in(page, console_server, "member", then="/billing/balance-history")
    row = page.locator(f'#grants tbody tr:has(td[title="{grant_id}"])')
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Free trial")
    expect(row).to_contain_text("$7.250")
    expect(row.locator(".badge")).to_have_text("active")
    expect(row).to_have_attribute("data-status", "active")
    expect(page.locator("#grants tbody tr")).not_to_have_count(0)
