"""The console with the Stripe provider: Stripe.js from the configured URL, Embedded Checkout, the
PaymentElement, crypto top-ups, plan changes that reach Stripe and portal changes that come back.

The app runs with the real Stripe adapter against the local Stripe stub. Stripe.js is a stand-in
(``tests/support/stripe_js_standin.js``) that the stub serves at ``/v3/``: it implements the part of
Stripe.js the console calls and talks to the same stub with the publishable key, so the console's
own page code runs unchanged. The stub delivers signed webhooks to the app as Stripe would.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from billing_core import services
from entrypoints.console.pages import PAGES
from entrypoints.console.router import CONTENT_SECURITY_POLICY
from tests.e2e.console.conftest import SCREENSHOTS, free_socket, open_page, serving
from tests.support.stripe_stub import StripeStub, fixtures_or_skip, running_stub

WEBHOOK_SECRET = "whsec_console_stub"


@dataclass(frozen=True)
class StripeConsole:
    base_url: str
    stub: StripeStub
    container: Any

    def url(self, path: str) -> str:
        return f"{self.base_url}/console{path}"


@pytest.fixture(scope="module")
def stripe_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeConsole]:
    from dependency_injector import providers

    from entrypoints.container import Container, settings_from_env

    for stub in running_stub(fixtures_or_skip()):
        sock = free_socket()
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = settings_from_env({
            "BILLING_STORAGE": "memory", "BILLING_ENV": "test", "BILLING_DEMO": "0",
            "BILLING_DATA_DIR": str(tmp_path_factory.mktemp("stripe-console-data")),
            "BILLING_PUBLIC_BASE_URL": base_url,
            "BILLING_STRIPE_API_KEY": stub.api_key, "BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BILLING_STRIPE_API_BASE": stub.base_url, "BILLING_STRIPE_PUBLISHABLE_KEY": stub.publishable_key,
            "BILLING_STRIPE_JS_URL": f"{stub.base_url}/v3/"})
        container = Container()
        container.settings.override(providers.Object(settings))
        stub.webhook_url, stub.webhook_secret = f"{base_url}/webhooks/stripe", WEBHOOK_SECRET
        # The plans' prices in the Stripe account, found by lookup key (the plan code).
        for code, cents in (("starter", 2000), ("pro", 9900), ("scale", 49900)):
            stub.add_price(unit_amount=cents, lookup_key=code)
        with serving(container, sock) as served:
            yield StripeConsole(base_url=served, stub=stub, container=container)


def _sign_in_fresh_organization(page: Page, server: StripeConsole, name: str) -> tuple[uuid.UUID, str]:
    """A new organization (no subscription, no billing history) and its primary owner signed in."""
    ctx = server.container.billing_context()
    user = f"u{uuid.uuid4().hex[:8]}"
    org = services.organizations.create_organization(ctx, name=name, owner_user_id=user,
                                                     owner_email=f"{user}@example.com")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="e2e", user_id=user)
    open_page(page, server, "/")  # type: ignore[arg-type]
    page.get_by_label("API token").fill(secret)
    page.get_by_label("Organization ID").fill(str(org.id))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/billing/overview")
    page.wait_for_selector("body[data-ready]")
    return org.id, secret


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_policy_adds_exactly_the_stripe_js_origin(stripe_console: StripeConsole) -> None:
    origin = stripe_console.stub.base_url
    with httpx.Client(base_url=stripe_console.base_url) as client:
        for page in PAGES:
            response = client.get(f"/console{page.path}")
            policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
            offline = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
            assert policy.pop("script-src") == f"'self' {origin}"
            assert policy.pop("connect-src") == f"'self' {origin}"
            assert policy.pop("frame-src") == origin
            assert policy == {k: v for k, v in offline.items() if k not in ("script-src", "connect-src")}
            html = response.text
            assert f'<script src="{origin}/v3/"></script>' in html
            assert f'data-stripe-key="{stripe_console.stub.publishable_key}"' in html
            assert stripe_console.stub.api_key not in html and WEBHOOK_SECRET not in html


def test_a_trial_starts_in_the_embedded_checkout_and_the_return_shows_its_status(
        page: Page, stripe_console: StripeConsole) -> None:
    stub = stripe_console.stub
    org_id, _ = _sign_in_fresh_organization(page, stripe_console, "Trial Co")
    open_page(page, stripe_console, "/plans")  # type: ignore[arg-type]
    page.get_by_role("radio", name=re.compile("Starter")).check()
    page.get_by_role("button", name="Start trial").click()
    embedded = page.locator("#embedded-checkout [data-standin=embedded-checkout]")
    expect(embedded).to_be_visible()
    # Cancelled on the page: the embedded checkout goes away, nothing was taken.
    page.get_by_role("region", name="Secure checkout").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("region", name="Secure checkout")).to_be_hidden()
    expect(page.locator("#checkout-result")).to_have_text("Checkout was canceled. No payment was taken.")
    page.get_by_role("button", name="Start trial").click()
    expect(embedded).to_be_visible()
    expect(page.locator("#checkout-simulation")).to_be_hidden()
    expect(page.get_by_role("button", name="Complete checkout")).to_be_hidden()
    session = stub.of_type("checkout.session")[-1]
    assert session["ui_mode"] == "embedded_page" and session["client_secret"].startswith(session["id"])
    assert session["return_url"].startswith(f"{stripe_console.base_url}/console/plans?")
    if _refresh_screenshots():
        page.screenshot(path=str(SCREENSHOTS / "plans-stripe-embedded-checkout.png"), full_page=True)
    embedded.get_by_role("button", name="Start trial").click()

    page.wait_for_url(re.compile(rf"/console/plans\?session_id={session['id']}$"))
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#checkout-result")).to_have_text("Checkout complete. Your subscription is active.")
    expect(page.locator("#sub-status .badge")).to_have_text("Trialing")
    assert ("checkout.session.completed", 200) in stub.delivered
    if _refresh_screenshots():
        page.screenshot(path=str(SCREENSHOTS / "plans-stripe-checkout-complete.png"), full_page=True)

    # Plan change: the Stripe subscription's item is swapped to Pro's price with the proration
    # invoiced at once, and the hosted invoice is linked right away.
    page.get_by_role("button", name="Change plan").click()
    page.get_by_role("radio", name=re.compile("Pro")).check()
    page.get_by_role("button", name="Preview plan change").click()
    page.get_by_role("region", name="Change plan").get_by_role("button", name="Change plan now").click()
    expect(page.get_by_role("status").filter(has_text="Your plan is now")).to_have_text("Your plan is now Pro.")
    link = page.locator("#plan-change-invoice a")
    expect(link).to_have_attribute("href", re.compile(r"^https://invoice\.stripe\.com/i/acct_stub/test_in_"))
    subscription_id = stub.objects[session["id"]]["subscription"]
    update = stub.requests_to("POST", f"/v1/subscriptions/{subscription_id}")[-1]
    pro = next(p for p in stub.of_type("price") if p.get("lookup_key") == "pro")
    assert update.params["proration_behavior"] == "always_invoice"
    assert update.params["items"][0]["price"] == pro["id"]
    assert update.idempotency_key is not None and update.idempotency_key.startswith("plan-change:")
    if _refresh_screenshots():
        page.screenshot(path=str(SCREENSHOTS / "plans-stripe-plan-change-invoice.png"), full_page=True)

    # A change made in Stripe's billing portal comes back as a signed webhook: Scale, ending with the period.
    scale = next(p for p in stub.of_type("price") if p.get("lookup_key") == "scale")
    portal = stub.objects[subscription_id]
    portal["items"]["data"][0]["price"] = dict(scale)
    portal["cancel_at_period_end"] = True
    assert stub.send_event("customer.subscription.updated", portal, created=int(time.time()) + 1) == 200
    # The same event replayed, and an older one naming the old price, change nothing.
    older = {**portal, "cancel_at_period_end": False,
             "items": {**portal["items"], "data": [{**portal["items"]["data"][0], "price": pro}]}}
    assert stub.send_event("customer.subscription.updated", older, created=int(time.time()) - 3600) == 200
    open_page(page, stripe_console, "/plans")  # type: ignore[arg-type]
    expect(page.locator("#sub-tier")).to_have_text("Scale")
    expect(page.locator("#sub-cancel")).to_contain_text("Cancels at the end of the period")
    if _refresh_screenshots():
        page.screenshot(path=str(SCREENSHOTS / "plans-stripe-portal-change.png"), full_page=True)
    ctx = stripe_console.container.billing_context()
    with ctx.uow() as uow:
        current = uow.plan_subscriptions.current(org_id)
    assert current is not None and current.plan == "scale" and current.cancel_at_period_end


def test_the_return_shows_an_open_and_then_an_expired_checkout(page: Page, stripe_console: StripeConsole) -> None:
    stub = stripe_console.stub
    org_id, secret = _sign_in_fresh_organization(page, stripe_console, "Returning Co")
    with httpx.Client(base_url=stripe_console.base_url, headers={"Authorization": f"Bearer {secret}"}) as client:
        opened = client.post(f"/organizations/{org_id}/checkout_sessions",
                             json={"plan": "pro", "return_url": "/console/plans"},
                             headers={"Idempotency-Key": str(uuid.uuid4())})
        assert opened.status_code in (200, 201), opened.text
    session_id = stub.of_type("checkout.session")[-1]["id"]
    open_page(page, stripe_console, f"/plans?session_id={session_id}")  # type: ignore[arg-type]
    expect(page.locator("#checkout-result")).to_have_text(
        "Checkout is still open. Complete it to start the subscription.")
    stub.expire_checkout(session_id)
    assert ("checkout.session.expired", 200) in stub.delivered
    open_page(page, stripe_console, f"/plans?session_id={session_id}")  # type: ignore[arg-type]
    expect(page.locator("#checkout-result")).to_have_text(
        "The checkout expired before it was completed. Start it again.")


def test_a_card_is_added_with_the_payment_element_and_made_the_default(
        page: Page, stripe_console: StripeConsole) -> None:
    stub = stripe_console.stub
    _sign_in_fresh_organization(page, stripe_console, "Card Co")
    open_page(page, stripe_console, "/billing/payment-methods")  # type: ignore[arg-type]
    expect(page.locator("#card-simulation")).to_be_hidden()
    for card in ("pm_card_visa", "pm_card_mastercard"):
        page.get_by_role("button", name="Add New Credit Card").click()
        element = page.locator("#payment-element [data-standin=payment-element]")
        expect(element).to_be_visible()
        element.get_by_label("Card (Stripe.js stand-in)").select_option(card)
        page.get_by_role("button", name="Save card").click()
        expect(page.get_by_role("status")).to_contain_text("was added")
    rows = page.locator("#methods tbody tr")
    expect(rows).to_have_count(2)
    confirms = stub.requests_to("POST", "/v1/setup_intents/*/confirm")
    assert len(confirms) == 2
    assert all(r.headers["authorization"] == f"Bearer {stub.publishable_key}" for r in confirms)
    assert all(re.fullmatch(r"seti_\w+_secret_\w+", r.params["client_secret"]) for r in confirms)
    expect(rows.filter(has_text="Mastercard ending 4444")).to_have_count(1)
    page.get_by_role("button", name=re.compile("Set Mastercard ending 4444 as default")).click()
    expect(rows.filter(has_text="Mastercard ending 4444").locator(".badge")).to_have_text("Default Card")
    if _refresh_screenshots():
        page.screenshot(path=str(SCREENSHOTS / "payment-methods-stripe.png"), full_page=True)
    open_page(page, stripe_console, "/billing/add-credits")  # type: ignore[arg-type]
    expect(page.locator("#method option", has_text="Mastercard ending 4444 (default)")).to_have_count(1)


def _refresh_screenshots() -> bool:
    """``BILLING_CONSOLE_SCREENSHOTS=1`` refreshes the Stripe states' screenshots in docs/screenshots."""
    return os.environ.get("BILLING_CONSOLE_SCREENSHOTS") == "1" and SCREENSHOTS.is_dir()


def test_a_crypto_top_up_is_credited_once_and_a_paid_checkout_follows(
        page: Page, stripe_console: StripeConsole) -> None:
    stub = stripe_console.stub
    ctx = stripe_console.container.billing_context()
    org_id, secret = _sign_in_fresh_organization(page, stripe_console, "Crypto Co")
    actor = services.organizations.authenticate(ctx, secret)
    trial = services.checkout.start_checkout(ctx, actor, organization_id=org_id, plan="starter",
                                                  return_url="/console/plans")
    assert trial.provider_session_id is not None
    stub.finish_checkout(trial.provider_session_id)
    stub.deliver_pending()
    before = services.overview.overview(ctx, actor, organization_id=org_id).credit_balance_micros

    open_page(page, stripe_console, "/billing/add-credits")  # type: ignore[arg-type]
    page.get_by_label("Payment amount").fill("25")
    page.get_by_label("Select a payment method").select_option("crypto")
    page.get_by_role("button", name="Add to my balance").click()
    crypto = page.locator("#crypto-checkout [data-standin=embedded-checkout]")
    expect(crypto).to_be_visible()
    session = stub.of_type("checkout.session")[-1]
    assert session["mode"] == "payment" and session["payment_method_types"] == ["crypto"]
    assert services.overview.overview(ctx, actor, organization_id=org_id).credit_balance_micros == before
    crypto.get_by_role("button", name="Pay with crypto").click()
    page.wait_for_url(re.compile(rf"/console/billing/add-credits\?session_id={session['id']}$"))
    page.wait_for_selector("body[data-ready]")
    expect(page.get_by_role("status")).to_contain_text("Crypto payment submitted")
    assert services.overview.overview(ctx, actor, organization_id=org_id).credit_balance_micros == before + 25_000_000
    # Stripe delivers the completion again: credited once.
    assert stub.send_event("checkout.session.completed", stub.objects[session["id"]]) == 200
    assert services.overview.overview(ctx, actor, organization_id=org_id).credit_balance_micros == before + 25_000_000

    # The subscription ends; with billing history the next checkout is paid, by card, inline.
    ended = stub.objects[stub.objects[trial.provider_session_id]["subscription"]]
    assert stub.send_event("customer.subscription.deleted", {**ended, "status": "canceled"},
                           created=int(time.time()) + 1) == 200
    open_page(page, stripe_console, "/plans")  # type: ignore[arg-type]
    page.get_by_role("radio", name=re.compile("Pro")).check()
    page.get_by_role("button", name="Proceed to payment").click()
    embedded = page.locator("#embedded-checkout [data-standin=embedded-checkout]")
    embedded.get_by_label("Card (Stripe.js stand-in)").select_option("pm_card_chargeDeclined")
    embedded.get_by_role("button", name="Pay and subscribe").click()
    expect(embedded.get_by_role("alert")).to_have_text("Your card was declined.")
    embedded.get_by_label("Card (Stripe.js stand-in)").select_option("pm_card_visa")
    embedded.get_by_role("button", name="Pay and subscribe").click()
    page.wait_for_url(re.compile(r"/console/plans\?session_id=cs_test_"))
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#checkout-result")).to_have_text("Checkout complete. Your subscription is active.")
    expect(page.locator("#sub-status .badge")).to_have_text("Active")
    expect(page.locator("#sub-tier")).to_have_text("Pro")
