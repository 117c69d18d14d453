"""The spend-management page's project and API key budgets (ADR 0017, issue 21), in a real browser:
the primary owner picks an API key by name from the organization's keys (GET …/api_tokens), adds,
changes and deletes its budget, and after every click the API says the same as the table (which
names the key next to its id); owners and members read the budgets and the page and the API refuse
them changes."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from playwright.sync_api import Dialog, Page, expect

from billing_core import Permission, services
from entrypoints.demo import DEMO_PROJECTS
from tests.e2e.console.conftest import ConsoleServer, sign_in

SPEND_PAGE = "/billing/spend-management"
DENIED = "Only the primary owner can manage spend management"


def fresh_token(server: ConsoleServer) -> tuple[uuid.UUID, str, str]:
    """A new platform token of the demo organization (its id, its secret, its name): a budget no other
    test touches."""
    ctx = server.container.billing_context()
    token, secret = services.organizations.issue_token(
        ctx, organization_id=uuid.UUID(server.organization_id), name=f"e2e budgets {uuid.uuid4().hex[:6]}",
        scopes=frozenset({Permission.USAGE_WRITE, Permission.BILLING_READ}))
    return token.id, secret, token.name


def option_text(name: str) -> str:
    """How the key select names a service key: its name and its scopes (sorted, as the API lists them)."""
    return f"{name} (service: billing:read, usage:write)"


def budget_url(server: ConsoleServer, token_id: uuid.UUID) -> str:
    return f"{server.base_url}/organizations/{server.organization_id}/spend/budgets/token/{token_id}"


def api_budget(server: ConsoleServer, token_id: uuid.UUID, role: str = "primary-owner") -> httpx.Response:
    """The budget as the API has it, read with the demo token of ``role``."""
    return httpx.get(budget_url(server, token_id), headers={"Authorization": f"Bearer {server.tokens[role]}"})


def api_body(server: ConsoleServer, token_id: uuid.UUID) -> dict[str, Any]:
    response = api_budget(server, token_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def report_compute(server: ConsoleServer, secret: str) -> httpx.Response:
    """One vCPU-hour of compute ($0.040) in a demo project, reported over HTTP with the token ``secret``."""
    return httpx.post(f"{server.base_url}/organizations/{server.organization_id}/usage/events",
                      headers={"Authorization": f"Bearer {secret}"},
                      json={"event_id": f"e2e-budget-{uuid.uuid4().hex[:12]}", "product": "compute", "quantity": 1,
                            "project_id": str(DEMO_PROJECTS[0])})


def test_primary_owner_adds_changes_and_deletes_a_token_budget(page: Page, console_server: ConsoleServer) -> None:
    token_id, secret, name = fresh_token(console_server)
    label = f"API key {token_id}"
    sign_in(page, console_server, "primary-owner", then=SPEND_PAGE)
    section = page.get_by_role("region", name="Project and API key budgets")
    expect(section).to_be_visible()
    row = page.locator(f"#budgets tr[data-scope='token'][data-scope-id='{token_id}']")
    expect(row).to_have_count(0)
    assert api_budget(console_server, token_id).status_code == 404

    # Projects are offered from the product subscriptions the API lists (the demo's two projects).
    expect(page.get_by_label("Project ID")).to_have_accessible_description(re.compile("Pick a project"))
    offered = page.locator("#budget-scope-options option").evaluate_all("(options) => options.map((o) => o.value)")
    assert sorted(offered) == sorted(str(p) for p in DEMO_PROJECTS)

    # An API key is chosen by name from the organization's keys the API lists; the option's value is
    # the key's id, and no secret is anywhere in the select.
    key = page.get_by_label("API key name")
    expect(key).to_be_hidden()
    page.get_by_label("API key", exact=True).check()
    expect(key).to_be_visible()
    expect(page.get_by_label("Project ID")).to_be_hidden()
    expect(key).to_have_accessible_description(re.compile("never its secret"))
    options = key.locator("option").evaluate_all("(options) => options.map((o) => [o.value, o.textContent])")
    assert [str(token_id), option_text(name)] in options
    assert not any(secret in value or secret in text for value, text in options)
    for secret_of_role in console_server.tokens.values():
        assert not any(secret_of_role in value or secret_of_role in text for value, text in options)
    assert any("(member " in text for _, text in options), "members' keys are listed with their kind"

    # No key chosen: refused in the page.
    page.get_by_label("Daily budget").fill("12.5")
    page.get_by_role("button", name="Add budget").click()
    expect(page.get_by_role("alert")).to_have_text("API key name: choose one of the organization's API keys.")
    expect(key).to_have_attribute("aria-invalid", "true")
    assert api_budget(console_server, token_id).status_code == 404

    # A malformed amount is refused in the page: nothing reaches the API.
    key.select_option(label=option_text(name))
    page.get_by_label("Daily budget").fill("12.5.0")
    page.get_by_role("button", name="Add budget").click()
    expect(page.get_by_role("alert")).to_have_text("Daily budget: enter a dollar amount such as 40 or 12.50.")
    expect(page.get_by_label("Daily budget")).to_have_attribute("aria-invalid", "true")
    assert api_budget(console_server, token_id).status_code == 404

    # No cap at all: the API's problem+json answer is shown and names the field.
    page.get_by_label("Daily budget").fill("")
    page.get_by_role("button", name="Add budget").click()
    expect(page.get_by_role("alert")).to_have_text("set daily_micros, monthly_micros or both")
    expect(page.get_by_label("Daily budget")).to_have_attribute("aria-invalid", "true")
    assert api_budget(console_server, token_id).status_code == 404

    # Add: dollars in the form, exact micro-dollars on the wire.
    page.get_by_label("Daily budget").fill("12.5")
    page.get_by_label("Monthly budget").fill("300")
    page.get_by_role("button", name="Add budget").click()
    expect(page.get_by_role("status")).to_have_text(f"Added the budget of {label}.")
    expect(row).to_have_count(1)
    expect(row.locator("td")).to_have_text(
        ["API key", f"{name} {token_id}", "$12.500", "$300.000", "$0.000", "$0.000", "$0.000", "Open", "Edit"])
    expect(key).to_have_value("")
    stored = api_body(console_server, token_id)
    assert (stored["daily_micros"], stored["monthly_micros"], stored["reached"]) == (12_500_000, 300_000_000, None)

    # Edit: the form holds the budget's caps; dropping the daily cap and changing the monthly one.
    page.get_by_role("button", name=f"Edit the budget of {label}").click()
    expect(page.get_by_role("heading", name=f"Change the budget of {label}")).to_be_visible()
    expect(key).to_have_value(str(token_id))
    expect(key).not_to_be_editable()
    expect(page.get_by_label("Daily budget")).to_have_value("12.5")
    expect(page.get_by_label("Daily budget")).to_be_focused()
    expect(page.get_by_label("Monthly budget")).to_have_value("300")
    page.get_by_label("Daily budget").fill("")
    page.get_by_label("Monthly budget").fill("0.03")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_role("status")).to_have_text(f"Saved the budget of {label}.")
    expect(row.locator("td").nth(2)).to_have_text("No cap")
    expect(row.locator("td").nth(3)).to_have_text("$0.030")
    expect(page.get_by_role("button", name="Add budget")).to_be_visible()
    stored = api_body(console_server, token_id)
    assert (stored["daily_micros"], stored["monthly_micros"]) == (None, 30_000)

    # Usage through that key crosses its monthly cap (compute is $0.04 a vCPU-hour): the API says
    # the budget is reached, and so does the table after a reload.
    crossing = report_compute(console_server, secret)
    assert crossing.status_code == 201, crossing.text
    denied = report_compute(console_server, secret)
    assert denied.status_code == 402 and denied.json()["code"] == "token_monthly_budget_reached", denied.text
    stored = api_body(console_server, token_id)
    assert stored["spent_month_micros"] == 40_000 and stored["reached"]["period"] == "month"
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(row.locator("td").nth(5)).to_have_text("$0.040")
    expect(row.locator("td").nth(7)).to_contain_text("Monthly budget reached")

    # Delete asks first: dismissing keeps the budget, accepting removes it.
    asked: list[str] = []

    def answer(accept: bool) -> Any:
        def on_dialog(dialog: Dialog) -> None:
            asked.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()
        return on_dialog

    delete = page.get_by_role("button", name=f"Delete the budget of {label}")
    page.once("dialog", answer(False))
    delete.click()
    expect(row).to_have_count(1)
    assert asked == [f"Delete the budget of {label}? Its usage is then capped by the organization's budget alone."]
    assert api_budget(console_server, token_id).status_code == 200

    page.once("dialog", answer(True))
    delete.click()
    expect(page.get_by_role("status")).to_have_text(f"The budget of {label} was deleted.")
    expect(row).to_have_count(0)
    assert len(asked) == 2
    assert api_budget(console_server, token_id).status_code == 404
    # Without its budget, the key is capped by the organization's budgets alone again.
    again = report_compute(console_server, secret)
    assert again.status_code == 201, again.text


def test_owners_and_members_read_the_budgets_and_may_not_change_them(
        page: Page, console_server: ConsoleServer) -> None:
    token_id, _, key_name = fresh_token(console_server)
    label = f"API key {token_id}"
    made = httpx.put(budget_url(console_server, token_id), json={"daily_micros": 7_000_000, "monthly_micros": None},
                     headers={"Authorization": f"Bearer {console_server.tokens['primary-owner']}"})
    assert made.status_code == 201, made.text
    try:
        for role in ("owner", "member"):
            sign_in(page, console_server, role, then=SPEND_PAGE)
            row = page.locator(f"#budgets tr[data-scope='token'][data-scope-id='{token_id}']")
            expect(row.locator("td").nth(1)).to_have_text(f"{key_name} {token_id}")
            expect(row.locator("td").nth(2)).to_have_text("$7.000")
            expect(row.locator("td").nth(3)).to_have_text("No cap")
            for name in (f"Edit the budget of {label}", f"Delete the budget of {label}"):
                expect(page.get_by_role("button", name=name)).to_be_disabled()
                expect(page.get_by_role("button", name=name)).to_have_attribute("title", DENIED)
            expect(page.get_by_role("button", name="Add budget")).to_be_disabled()
            expect(page.locator("#budget-reason")).to_have_text(DENIED)
            for field in ("Project", "API key", "Project ID", "API key name", "Daily budget", "Monthly budget"):
                expect(page.get_by_label(field, exact=True)).to_be_disabled()
            # The organization's own spend settings are the primary owner's too (spend_management:manage).
            expect(page.get_by_role("button", name="Save Changes")).to_be_disabled()
            expect(page.locator("#update-reason")).to_have_text(DENIED)

            # The matrix as the API applies it: this role reads the budget and may not change it.
            assert api_budget(console_server, token_id, role).json()["daily_micros"] == 7_000_000
            headers = {"Authorization": f"Bearer {console_server.tokens[role]}"}
            changed = httpx.put(budget_url(console_server, token_id), json={"daily_micros": 1}, headers=headers)
            assert changed.status_code == 403, changed.text
            assert httpx.delete(budget_url(console_server, token_id), headers=headers).status_code == 403
            assert api_body(console_server, token_id)["daily_micros"] == 7_000_000
    finally:
        httpx.delete(budget_url(console_server, token_id),
                     headers={"Authorization": f"Bearer {console_server.tokens['primary-owner']}"})
