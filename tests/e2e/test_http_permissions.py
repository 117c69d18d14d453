"""Every authenticated route × every kind of caller, against the seed's permission matrix.

Reads need ``billing:read`` (every member); ``billing:update`` changes (payment methods, invoice
address, billing email, tax registrations, product subscriptions) belong to the primary owner and
owners. Every money route is the primary owner's alone: the seed's matrix gives "Subscribe to a
plan", "Access the billing portal", "Purchase credit packs" and "Manage low-balance alerts" to the
primary-owner only, and we hold every purchase (Add Usage Credits, crypto top-up, auto-recharge),
refund request and alert setting (spend management, the alert webhook's secret) to the same rule.
Usage reporting belongs to platform service tokens alone. Another organization's token learns nothing (404)
and no token is a 401. Each case runs against a freshly seeded organization.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Api, World, build_world

CALLERS = ("primary-owner", "owner", "member", "service", "outsider", None)

READ = frozenset({"primary-owner", "owner", "member"})
UPDATE = frozenset({"primary-owner", "owner"})
PRIMARY = frozenset({"primary-owner"})
USAGE = frozenset({"service"})
ANY_TOKEN = frozenset({"primary-owner", "owner", "member", "service"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """Formatted with the world: {org}, {pm}, {pm2}, {invoice}, {sub}, {tax}, {session}, {event}, {payment},
    {provider_session}."""
    allowed: frozenset[str]
    body: Callable[[World, Api], dict[str, Any]] | None = None
    subscribed: bool = True
    label: str = ""
    """Tells apart two rows for one route (a card and a crypto top-up)."""
    own_org_route: bool = False
    """Routes on the token's own organization (seed ``/subscriptions``, ``/invoices``): an outsider
    sees its own (empty) data, so a list answers 200."""

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.label})" if self.label else "")


def _now(api: Api) -> str:
    return api.clock.now().isoformat()


ORG = "/organizations/{org}"
ROUTES = [
    # seed endpoints
    Route("GET", "/billing/usage?organization_id={org}&from=2026-02-01T00:00:00Z&to=2026-04-01T00:00:00Z", READ),
    Route("GET", "/subscriptions", READ, own_org_route=True),
    Route("GET", "/subscriptions/{sub}", READ),
    Route("POST", "/subscriptions", UPDATE, body=lambda w, a: {"product": "storage"}, own_org_route=True),
    Route("POST", "/subscriptions/{sub}/end", UPDATE, body=lambda w, a: {}),
    Route("GET", "/invoices", READ, own_org_route=True),
    Route("GET", "/invoices/{invoice}", READ),
    Route("GET", ORG + "/invoices", READ),
    Route("GET", ORG + "/invoices/{invoice}", READ),
    Route("GET", ORG + "/invoices/download?invoice_id={invoice}", READ),
    Route("GET", ORG + "/invoices/{invoice}/xml?format=cii", READ),
    Route("GET", ORG + "/payment_methods", READ),
    Route("POST", ORG + "/payment_methods/create_and_attach", UPDATE,
          body=lambda w, a: {"payment_method_id": "pm_card_mastercard"}),
    Route("PUT", ORG + "/payment_methods/{pm2}/set_default", UPDATE),
    Route("DELETE", ORG + "/payment_methods/{pm2}", UPDATE),
    Route("POST", ORG + "/payment_methods/payment_intent", UPDATE),
    # billing overview and settings
    Route("GET", ORG + "/billing/overview", READ),
    Route("GET", ORG + "/auto_recharge", READ),
    Route("PUT", ORG + "/auto_recharge", PRIMARY, body=lambda w, a: {"enabled": True, "threshold_micros": 5_000_000}),
    Route("GET", ORG + "/spend_management", READ),
    Route("PUT", ORG + "/spend_management", PRIMARY,
          body=lambda w, a: {"enabled": True, "daily_budget_micros": 40_000_000,
                             "webhook_url": "https://hooks.example.com/billing"}),
    Route("GET", ORG + "/invoice_address", READ),
    Route("PUT", ORG + "/invoice_address", UPDATE,
          body=lambda w, a: {"company_name": "Acme GmbH", "address_1": "Torstraße 1", "city": "Berlin",
                             "postal_code": "10119", "country": "DE"}),
    Route("GET", ORG + "/billing_email", READ),
    Route("PUT", ORG + "/billing_email", UPDATE, body=lambda w, a: {"email": "billing@example.com"}),
    Route("GET", ORG + "/tax_registrations", READ),
    Route("POST", ORG + "/tax_registrations", UPDATE, body=lambda w, a: {"country": "DE", "value": "DE811907980"}),
    Route("DELETE", ORG + "/tax_registrations/{tax}", UPDATE),
    Route("POST", ORG + "/tax_registrations/{tax}/verify", UPDATE),
    Route("GET", ORG + "/low_balance_alert", READ),
    Route("PUT", ORG + "/low_balance_alert", PRIMARY, body=lambda w, a: {"enabled": True, "threshold_micros": 10**7}),
    Route("GET", ORG + "/balance_history", READ),
    Route("GET", ORG + "/usage_feed", READ),
    Route("GET", ORG + "/payments_due", READ),
    # plans, checkout, plan changes, portal
    Route("GET", ORG + "/plans", READ),
    Route("GET", ORG + "/subscription", READ),
    Route("POST", ORG + "/checkout_sessions", PRIMARY, subscribed=False,
          body=lambda w, a: {"plan": "starter", "return_url": "https://app.example.com/billing/plans"}),
    Route("GET", ORG + "/checkout_sessions/{session}", READ),
    Route("POST", ORG + "/checkout_sessions/{session}/complete", PRIMARY),
    Route("GET", ORG + "/checkout_sessions/provider/{provider_session}", READ),
    Route("POST", ORG + "/subscription/change/preview", PRIMARY, body=lambda w, a: {"plan": "scale"}),
    Route("POST", ORG + "/subscription/change", PRIMARY, body=lambda w, a: {"plan": "scale", "preview_at": _now(a)}),
    Route("POST", ORG + "/billing_portal", PRIMARY, body=lambda w, a: {"return_url": "https://app.example.com/b"}),
    # credits and refunds
    Route("GET", ORG + "/credit_packs", READ),
    Route("POST", ORG + "/credit_packs/purchase", PRIMARY, body=lambda w, a: {"pack_dollars": 25}),
    Route("POST", ORG + "/credits", PRIMARY, body=lambda w, a: {"amount": "25.00"}),
    Route("POST", ORG + "/credits", PRIMARY, body=lambda w, a: {"amount": "25.00", "method": "crypto"},
          label="crypto top-up"),
    Route("GET", ORG + "/credits/grants", READ),
    # Granting promotional credits is the platform's (tokens with credits:grant), never a role's.
    Route("POST", ORG + "/credits/grants", frozenset(),
          body=lambda w, a: {"amount_micros": 1_000_000, "description": "Launch promo"}),
    Route("GET", ORG + "/payments", READ),
    Route("GET", ORG + "/refunds", READ),
    Route("POST", ORG + "/refunds", PRIMARY, body=lambda w, a: {"payment_id": str(w.payment_id), "reason": "unused"}),
    # the platform's usage hot path
    Route("POST", ORG + "/usage/authorize", USAGE, body=lambda w, a: {"amount_micros": 40_000}),
    Route("POST", ORG + "/usage/events", USAGE,
          body=lambda w, a: {"event_id": "evt-matrix", "product": "compute", "quantity": 3}),
    Route("POST", ORG + "/usage/events/{event}/refund", USAGE, body=lambda w, a: {"reason": "generation failed"}),
    Route("POST", ORG + "/usage/events/batch", USAGE,
          body=lambda w, a: {"events": [{"event_id": "evt-batch-1", "product": "compute", "quantity": 2}]}),
    Route("GET", ORG + "/usage/events/{event}", READ),
    Route("POST", ORG + "/usage/holds", USAGE, body=lambda w, a: {"product": "compute", "max_quantity": 2}),
    Route("GET", ORG + "/usage/holds/{hold}", USAGE),
    Route("POST", ORG + "/usage/holds/{hold}/settle", USAGE, body=lambda w, a: {"event_id": "evt-hold", "quantity": 1}),
    Route("DELETE", ORG + "/usage/holds/{hold}", USAGE),
    Route("GET", ORG + "/hold_overrun", READ),
    Route("PUT", ORG + "/hold_overrun", PRIMARY, body=lambda w, a: {"hold_overrun": "reject"}),
    # project and token budgets (ADR 0017): managing spend is the primary owner's, reading is billing's
    Route("GET", ORG + "/spend/budgets", READ),
    Route("GET", ORG + "/spend/budgets/project/{project}", READ),
    Route("PUT", ORG + "/spend/budgets/project/{project}", PRIMARY, body=lambda w, a: {"daily_micros": 5_000_000}),
    Route("DELETE", ORG + "/spend/budgets/project/{project}", PRIMARY),
    # who am I, guest-checkout claims, the webhook signing secret
    Route("GET", "/me", ANY_TOKEN, own_org_route=True),
    Route("POST", "/me/claim_guest_checkouts", ANY_TOKEN, own_org_route=True),
    Route("GET", ORG + "/webhook_secret", PRIMARY),
    # the organization's API tokens (what token budgets are named by): reading billing
    Route("GET", ORG + "/api_tokens", READ),
    Route("POST", ORG + "/webhook_secret/rotate", PRIMARY),
]


def _path(route: Route, world: World) -> str:
    return route.path.format(org=world.org, pm=world.payment_method_id, pm2=world.second_payment_method_id,
                             invoice=world.invoice_id, sub=world.product_subscription_id,
                             tax=world.tax_registration_id, session=world.checkout_session_id, event=world.event_id,
                             payment=world.payment_id, provider_session=world.provider_session_id,
                             hold=world.extra.get("hold"), project=world.extra.get("project"))


def expected_status_class(route: Route, caller: str | None) -> int:
    if caller is None:
        return 401
    if caller == "outsider":
        return 200 if route.own_org_route else 404
    return 200 if caller in route.allowed else 403


CASES = [pytest.param(route, caller, id=f"{route.id} as {caller or 'anonymous'}")
         for route in ROUTES for caller in CALLERS]


@pytest.mark.parametrize(("route", "caller"), CASES)
def test_route_role_matrix(shared_api: Api, route: Route, caller: str | None) -> None:
    world = build_world(shared_api, subscribed=route.subscribed)
    body = route.body(world, shared_api) if route.body is not None else None
    response = shared_api.client.request(route.method, _path(route, world), headers=world.headers(caller),
                                         json=body)
    expected = expected_status_class(route, caller)
    if expected == 200:
        assert 200 <= response.status_code < 300, (response.status_code, response.text)
    else:
        assert response.status_code == expected, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == expected
        assert problem["code"] == {401: "unauthenticated", 403: "permission_denied", 404: "not_found"}[expected]


def test_matrix_covers_every_authenticated_route(shared_api: Api) -> None:
    """A route added to the app without a row here fails this test."""
    schema = shared_api.client.get("/openapi.json").json()
    documented = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops
                  if method in ("get", "post", "put", "delete")}
    public = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("POST", "/webhooks/stripe"),
              ("POST", "/guest_checkout_sessions")}
    covered = set()
    for route in ROUTES:
        path = route.path.split("?")[0]
        for name, param in (("{org}", "{organization_id}"), ("{pm2}", "{payment_method_id}"),
                            ("{invoice}", "{invoice_id}"), ("{sub}", "{subscription_id}"),
                            ("{tax}", "{registration_id}"), ("{session}", "{session_id}"), ("{event}", "{event_id}"),
                            ("{provider_session}", "{provider_session_id}"), ("{hold}", "{hold_id}"),
                            ("/spend/budgets/project/{project}", "/spend/budgets/{budget_scope}/{scope_id}")):
            path = path.replace(name, param)
        covered.add((route.method, path))
    assert documented - public == covered


MONEY_ACTIONS = {"subscribe_to_plan", "access_billing_portal", "purchase_credit_packs", "manage_low_balance_alerts",
                 "add_credits", "manage_auto_recharge", "request_refund", "manage_spend_management"}


@pytest.mark.parametrize("caller", ["primary-owner", "owner", "member"])
def test_me_tells_the_console_what_the_role_may_do(shared_api: Api, caller: str) -> None:
    """The console hides or disables what a role cannot do by reading ``GET /me``: every action of
    the matrix, allowed or not, with the message to show (seed: "Only the team creator can purchase
    credit packs" for owners and members)."""
    world = build_world(shared_api)
    me = shared_api.client.get("/me", headers=world.headers(caller)).json()
    actions = {a["key"]: a for a in me["actions"]}
    assert actions["view_billing"]["allowed"] is True
    for key in MONEY_ACTIONS:
        assert actions[key]["allowed"] is (caller == "primary-owner"), key
        assert (actions[key]["message"] is None) is (caller == "primary-owner"), key
    assert actions["update_billing"]["allowed"] is (caller != "member")
    assert actions["report_usage"]["allowed"] is False
    assert actions["grant_credits"]["allowed"] is False
    if caller != "primary-owner":
        assert actions["purchase_credit_packs"]["message"] == "Only the team creator can purchase credit packs"
        assert actions["add_credits"]["message"] == "Only the primary owner can add usage credits"
