"""Hypothesis-driven fuzzing of the mutation bodies and list queries: whatever a client sends, the
answer is never a 5xx, and every error is a problem document."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Api, World, build_world

ROUTES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "credits": ("POST", "/credits", ("amount", "amount_micros", "payment_method_id", "method", "return_url")),
    "packs": ("POST", "/credit_packs/purchase", ("pack_dollars", "payment_method_id")),
    "checkout": ("POST", "/checkout_sessions", ("plan", "return_url")),
    "preview": ("POST", "/subscription/change/preview", ("plan", "at")),
    "change": ("POST", "/subscription/change", ("plan", "preview_at")),
    "portal": ("POST", "/billing_portal", ("return_url",)),
    "refunds": ("POST", "/refunds", ("payment_id", "reason")),
    "attach": ("POST", "/payment_methods/create_and_attach", ("payment_method_id",)),
    "tax": ("POST", "/tax_registrations", ("country", "value", "description")),
    "spend": ("PUT", "/spend_management", ("enabled", "daily_budget_micros", "daily_email_threshold_micros",
                                           "monthly_cap_micros", "webhook_url")),
    "recharge": ("PUT", "/auto_recharge", ("enabled", "threshold_micros", "amount_micros", "payment_method_id")),
    "address": ("PUT", "/invoice_address", ("company_name", "address_1", "address_2", "city", "postal_code",
                                            "region", "country", "po_number")),
    "email": ("PUT", "/billing_email", ("email",)),
    "alert": ("PUT", "/low_balance_alert", ("enabled", "threshold_micros")),
    "events": ("POST", "/usage/events", ("event_id", "product", "quantity", "project_id", "occurred_at")),
    "authorize": ("POST", "/usage/authorize", ("amount_micros",)),
    "refund_usage": ("POST", "/usage/events/evt-world/refund", ("reason",)),
    "product_subscribe": ("POST", "/subscriptions", ("product", "project_id", "start_date", "end_date")),
    "product_end": ("POST", "/subscriptions/{sub}/end", ("end_date",)),
}
SERVICE_ROUTES = frozenset({"events", "authorize", "refund_usage"})
OWN_ORG_ROUTES = frozenset({"product_subscribe", "product_end"})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=40), st.sampled_from(["25.00", "5", "0.000001", "1e3", "-5", "pro", "scale", "compute",
                                           "pm_card_visa", "https://example.com/x", "http://10.0.0.1/x", "DE",
                                           "DE136695976", "2026-03-10T12:00:00Z", "2026-03-10T12:00:00",
                                           "00000000-0000-4000-8000-000000000000", "crypto", "\x00", "é" * 3]),
)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=6)


def bodies(fields: tuple[str, ...]) -> st.SearchStrategy[Any]:
    known = st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields))
    return st.one_of(known, known.flatmap(lambda d: st.dictionaries(st.text(max_size=6), json_values, max_size=2)
                                          .map(lambda extra: {**extra, **d})), json_values)


@pytest.fixture(scope="module")
def fuzz_world(shared_api: Api) -> World:
    return build_world(shared_api)


def _assert_client_safe(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text
        problem = response.json()
        assert problem["status"] == response.status_code and problem["code"]


@pytest.mark.parametrize("name", sorted(ROUTES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(data=st.data())
def test_no_body_makes_a_5xx(shared_api: Api, fuzz_world: World, name: str, data: st.DataObject) -> None:
    method, suffix, fields = ROUTES[name]
    body = data.draw(bodies(fields), label="body")
    role = "service" if name in SERVICE_ROUTES else "primary-owner"
    path = suffix if name in OWN_ORG_ROUTES else f"/organizations/{fuzz_world.org}{suffix}"
    response = shared_api.client.request(method, path.format(sub=fuzz_world.product_subscription_id),
                                         content=json.dumps(body), headers=fuzz_world.headers(
                                             role, **{"Content-Type": "application/json"}))
    _assert_client_safe(response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64), name=st.sampled_from(sorted(ROUTES)), key=st.one_of(st.none(), st.text(max_size=8)))
def test_no_raw_bytes_make_a_5xx(shared_api: Api, fuzz_world: World, raw: bytes, name: str, key: str | None) -> None:
    method, suffix, _ = ROUTES[name]
    path = suffix if name in OWN_ORG_ROUTES else f"/organizations/{fuzz_world.org}{suffix}"
    headers = fuzz_world.headers("primary-owner", **{"Content-Type": "application/json"})
    if key is not None and key.isascii() and key.isprintable():
        headers["Idempotency-Key"] = key
    response = shared_api.client.request(method, path.format(sub=fuzz_world.product_subscription_id),
                                         content=raw, headers=headers)
    _assert_client_safe(response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["limit", "cursor", "from", "to", "organization_id", "invoice_id"]),
                              st.text(max_size=30), max_size=4),
       path=st.sampled_from(["/billing/usage", "/subscriptions", "/invoices", "/organizations/{org}/usage_feed",
                             "/organizations/{org}/payment_methods", "/organizations/{org}/invoices/download",
                             "/organizations/{org}/balance_history", "/organizations/{org}/refunds"]))
def test_no_query_makes_a_5xx(shared_api: Api, fuzz_world: World, params: dict[str, str], path: str) -> None:
    response = shared_api.client.get(path.format(org=fuzz_world.org), params=params,
                                     headers=fuzz_world.headers("member"))
    _assert_client_safe(response)
