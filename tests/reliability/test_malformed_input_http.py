"""A catalogue of malformed input over the HTTP app: every case is a clear 422 (or 413) problem document that
names the field at fault, and nothing is written (wallet, ledger, outbox and settings unchanged).
Unicode and SQL-ish text is accepted and stored verbatim (and on SQLite nothing is dropped)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from sqlalchemy import text

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core import Role, services
from billing_core.billing_settings import InvoiceAddress
from billing_core.catalog import load_catalog
from billing_core.payloads import MAX_JSON_DEPTH
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext
from tests.e2e.conftest import START, Api, World, build_world

PROBLEM_JSON = "application/problem+json"
SQLISH = "'; DROP TABLE wallets; --"
UNICODE = "Müller & Søhne 株式会社 — Ωmega 🚀"
ADDRESS = {"company_name": "Acme", "address_1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115",
           "country": "DE"}

# (name, method, path suffix, role, body or query, expected status, field named)
CASES: list[tuple[str, str, str, str, Any, int, str]] = [
    # The range check names the logical field "amount" whichever of amount / amount_micros was sent.
    ("huge micros", "POST", "/credits", "primary-owner", {"amount_micros": 10**30}, 422, "amount"),
    ("negative micros", "POST", "/credits", "primary-owner", {"amount_micros": -5_000_000}, 422, "amount"),
    ("negative amount", "POST", "/credits", "primary-owner", {"amount": "-5"}, 422, "amount"),
    ("sub-micro amount", "POST", "/credits", "primary-owner", {"amount": "5.1234567"}, 422, "amount"),
    ("float amount", "POST", "/credits", "primary-owner", {"amount": 5.5}, 422, "amount"),
    ("float micros", "POST", "/credits", "primary-owner", {"amount_micros": 5_500_000.5}, 422, "amount_micros"),
    ("money object in another currency", "POST", "/credits", "primary-owner",
     {"amount": {"cents": 2500, "currency_iso": "EUR"}}, 422, "amount"),
    ("huge quantity", "POST", "/usage/events", "service",
     {"event_id": "evt-huge", "product": "compute", "quantity": 10**20}, 422, "quantity"),
    ("fractional quantity", "POST", "/usage/events", "service",
     {"event_id": "evt-frac", "product": "compute", "quantity": 1.5}, 422, "quantity"),
    ("naive occurred_at", "POST", "/usage/events", "service",
     {"event_id": "evt-naive", "product": "compute", "quantity": 1, "occurred_at": "2026-03-10T11:00:00"},
     422, "occurred_at"),
    ("huge budget", "PUT", "/spend_management", "primary-owner", {"enabled": True, "daily_budget_micros": 10**30},
     422, "daily_budget_micros"),
]

USAGE_QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("naive from", {"from": "2026-03-01T00:00:00", "to": "2026-03-02T00:00:00Z"}, "from"),
    ("naive to", {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00"}, "to"),
    ("from after to", {"from": "2026-03-05T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
    ("from equals to", {"from": "2026-03-05T00:00:00Z", "to": "2026-03-05T00:00:00Z"}, "to"),
    ("not a datetime", {"from": "yesterday", "to": "2026-03-05T00:00:00Z"}, "from"),
    ("year 10000", {"from": "2026-03-01T00:00:00Z", "to": "10000-01-01T00:00:00Z"}, "to"),
]


@pytest.fixture(scope="module")
def catalogue_world(shared_api: Api) -> World:
    return build_world(shared_api)


def _snapshot(api: Api, org: uuid.UUID) -> tuple[object, ...]:
    with api.ctx.uow() as uow:
        wallet = uow.wallets.get(org)
        entries = len(uow.ledger.list(org, limit=1000).items)
        outbox = len(uow.outbox.list(organization_id=org, limit=1000))
        payments = len(uow.payments.list(org, limit=200).items)
        settings = uow.settings.get(org)
    return (wallet.wallet_micros, wallet.unbilled_micros, wallet.balance_micros, entries, outbox, payments,
            settings.spend_management, settings.address)


def _assert_problem(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    problem = response.json()
    assert problem["status"] == status and problem["code"], problem
    named = problem.get("field") or " ".join(str(e.get("field")) for e in problem.get("errors") or [])
    assert field in str(named) or field in problem["detail"], problem


@pytest.mark.parametrize(("name", "method", "suffix", "role", "body", "status", "field"), CASES,
                         ids=[c[0] for c in CASES])
def test_malformed_body_is_a_named_4xx_and_writes_nothing(shared_api: Api, catalogue_world: World, name: str,
                                                          method: str, suffix: str, role: str, body: Any,
                                                          status: int, field: str) -> None:
    before = _snapshot(shared_api, catalogue_world.org)
    response = shared_api.client.request(method, f"/organizations/{catalogue_world.org}{suffix}",
                                         content=json.dumps(body), headers=catalogue_world.headers(
                                             role, **{"Content-Type": "application/json"}))
    _assert_problem(response, status, field)
    assert _snapshot(shared_api, catalogue_world.org) == before, name


@pytest.mark.parametrize(("name", "query", "field"), USAGE_QUERIES, ids=[q[0] for q in USAGE_QUERIES])
def test_bad_usage_windows_are_named_4xx(shared_api: Api, catalogue_world: World, name: str,
                                         query: dict[str, str], field: str) -> None:
    response = shared_api.client.get("/billing/usage", params=query, headers=catalogue_world.headers("member"))
    _assert_problem(response, 422, field)


def test_an_offset_datetime_is_read_as_the_same_instant(shared_api: Api, catalogue_world: World) -> None:
    response = shared_api.client.get("/billing/usage", headers=catalogue_world.headers("member"),
                                     params={"from": "2026-03-01T02:00:00+02:00", "to": "2026-03-02T00:00:00Z"})
    assert response.status_code == 200, response.text
    assert response.json()["from"].startswith("2026-03-01T00:00:00")


def test_an_oversized_body_is_413_and_writes_nothing(shared_api: Api, catalogue_world: World) -> None:
    before = _snapshot(shared_api, catalogue_world.org)
    body = json.dumps({**ADDRESS, "company_name": "x" * (1024 * 1024 + 10)})
    response = shared_api.client.put(f"/organizations/{catalogue_world.org}/invoice_address", content=body,
                                     headers=catalogue_world.headers("owner", **{"Content-Type": "application/json"}))
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == PROBLEM_JSON
    assert _snapshot(shared_api, catalogue_world.org) == before


@pytest.mark.parametrize("company", [UNICODE, SQLISH, "Robert'); DELETE FROM ledger_postings;--", "\u202eevil"])
def test_unicode_and_sqlish_names_are_stored_verbatim(api: Api, company: str) -> None:
    world = build_world(api)
    path = f"/organizations/{world.org}/invoice_address"
    response = api.client.put(path, json={**ADDRESS, "company_name": company}, headers=world.headers("owner"))
    if company.startswith("\u202e") and response.status_code != 200:
        # Control and bidi-override characters may be refused, but then as a named 422.
        _assert_problem(response, 422, "company_name")
        return
    assert response.status_code == 200, response.text
    assert response.json()["company_name"] == company
    assert api.client.get(path, headers=world.headers("member")).json()["company_name"] == company
    assert api.client.get(f"/organizations/{world.org}/balance_history",
                          headers=world.headers("member")).status_code == 200


@pytest.fixture
def sqlite_ctx(tmp_path: Path) -> Iterator[tuple[BillingContext, Any]]:
    for engine in migrated_engine("sqlite", tmp_path):
        yield BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(START), catalog=load_catalog(),
                             payments=InMemoryPaymentProvider()), engine


def test_sqlish_text_is_data_on_a_sql_database(sqlite_ctx: tuple[BillingContext, Any]) -> None:
    ctx, engine = sqlite_ctx
    org = services.organizations.create_organization(ctx, name=SQLISH, owner_user_id="ada",
                                                     owner_email="ada@example.com")
    owner = Actor(organization_id=org.id, subject="user:ada", role=Role.PRIMARY_OWNER)
    saved = services.settings.update_address(ctx, owner, organization_id=org.id, address=InvoiceAddress(
        company_name=SQLISH, address_1=UNICODE, city="Berlin", postal_code="10115", country="DE", po_number=SQLISH))
    assert saved.company_name == SQLISH
    with ctx.uow() as uow:
        assert uow.organizations.get(org.id).name == SQLISH
        address = uow.settings.get(org.id).address
        assert address is not None and (address.company_name, address.address_1) == (SQLISH, UNICODE)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM wallets")).scalar_one() == 1


# --------------------------------------------------------------------------- deep JSON on every body route

DEEP = 1000  # decoders recurse per level: this used to end in a RecursionError, a 500
_PATH_PARAM = re.compile(r"\{(\w+):(\w+)\}")


def _concrete(path: str, world: World) -> str:
    def value(match: re.Match[str]) -> str:
        name, kind = match.groups()
        if name == "organization_id":
            return str(world.org)
        return str(uuid.uuid4()) if kind == "uuid" else world.event_id
    return _PATH_PARAM.sub(value, path)


def _mutations(app: Litestar) -> Iterator[tuple[str, str, bool]]:
    """Every mutating route of the app as (method, path, takes a body), from its route list, so that a
    route added later is covered too. A route takes a body when its handler declares ``data`` or,
    like the provider webhook, reads the raw body itself."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods & {"POST", "PUT", "PATCH", "DELETE"}):
                takes_body = "data" in handler.parsed_fn_signature.parameters or route.path.startswith("/webhooks/")
                yield method, route.path, takes_body


@pytest.mark.parametrize("body", [b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP,
                                  b"[" * 200_000], ids=["arrays", "objects", "unclosed"])
def test_deeply_nested_json_is_a_400_on_every_route_that_takes_a_body(shared_api: Api, catalogue_world: World,
                                                                       body: bytes) -> None:
    before = _snapshot(shared_api, catalogue_world.org)
    failures: list[str] = []
    with_body = 0
    for method, path, takes_body in _mutations(shared_api.client.app):
        with_body += takes_body
        response = shared_api.client.request(method, _concrete(path, catalogue_world), content=body,
                                             headers=catalogue_world.headers("primary-owner", **{
                                                 "Content-Type": "application/json", "Stripe-Signature": "t=1,v1=x"}))
        problem = response.json() if response.headers.get("content-type") == PROBLEM_JSON else {}
        if response.status_code >= 500 or "Traceback" in response.text:
            failures.append(f"{method} {path}: {response.status_code} {response.text[:120]}")
        elif takes_body and (response.status_code, problem.get("code")) != (400, "malformed_body"):
            failures.append(f"{method} {path}: {response.status_code} {problem.get('code')}")
    assert with_body >= 20
    assert not failures, failures
    assert _snapshot(shared_api, catalogue_world.org) == before


def test_deep_json_is_refused_before_authentication_is_needed_only_where_no_token_is(shared_api: Api) -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    guest = shared_api.client.post("/guest_checkout_sessions", content=deep,
                                   headers={"Content-Type": "application/json"})
    assert (guest.status_code, guest.json()["code"]) == (400, "malformed_body"), guest.text
    assert guest.headers["content-type"] == PROBLEM_JSON
    # Behind the API router the token is checked first: no token is a 401 whatever the body.
    anonymous = shared_api.client.post(f"/organizations/{uuid.uuid4()}/usage/events", content=deep,
                                       headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401


def test_a_signed_deeply_nested_provider_event_is_a_400_and_changes_nothing(shared_api: Api,
                                                                              catalogue_world: World) -> None:
    before = _snapshot(shared_api, catalogue_world.org)
    payload = (b'{"id": "evt_deep", "object": "event", "type": "payment_intent.succeeded", "created": 1773144000, '
               b'"data": {"object": {"object": "payment_intent", "metadata": ' + b"[" * DEEP + b"]" * DEEP + b"}}}")
    signature = shared_api.payments.sign(payload)
    response = shared_api.client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
    assert (response.status_code, response.json()["code"]) == (400, "malformed_body"), response.text
    assert _snapshot(shared_api, catalogue_world.org) == before


def test_a_body_nested_as_deep_as_allowed_still_reaches_the_schema(shared_api: Api, catalogue_world: World) -> None:
    # At the limit the body is read and judged by its schema (422), not refused as unreadable (400).
    body = b'{"email": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    response = shared_api.client.put(f"/organizations/{catalogue_world.org}/billing_email", content=body,
                                     headers=catalogue_world.headers("owner", **{"Content-Type": "application/json"}))
    _assert_problem(response, 422, "email")


# --------------------------------------------------------------------------- money fields: integers or canonical text

# (name, method, path suffix, role, raw JSON body, field named). Every money field takes a JSON integer (or,
# for ``amount``, a canonical decimal dollar string) and nothing that merely converts to one.
MONEY_CASES: list[tuple[str, str, str, str, str, str]] = [
    ("micros as exponent", "POST", "/credits", "primary-owner", '{"amount_micros": 2.5e7}', "amount_micros"),
    ("micros as integral float", "POST", "/credits", "primary-owner", '{"amount_micros": 25000000.0}', "amount_micros"),
    ("micros as string", "POST", "/credits", "primary-owner", '{"amount_micros": "25000000"}', "amount_micros"),
    ("micros as boolean", "POST", "/credits", "primary-owner", '{"amount_micros": true}', "amount_micros"),
    ("amount as number", "POST", "/credits", "primary-owner", '{"amount": 25}', "amount"),
    ("amount with exponent", "POST", "/credits", "primary-owner", '{"amount": "2.5e1"}', "amount"),
    ("amount with leading space", "POST", "/credits", "primary-owner", '{"amount": " 25"}', "amount"),
    ("amount with trailing space", "POST", "/credits", "primary-owner", '{"amount": "25 "}', "amount"),
    ("amount with trailing newline", "POST", "/credits", "primary-owner", '{"amount": "25\\n"}', "amount"),
    ("amount in full-width digits", "POST", "/credits", "primary-owner", '{"amount": "\uff12\uff15"}', "amount"),
    ("amount in Arabic-Indic digits", "POST", "/credits", "primary-owner", '{"amount": "\u0662\u0665"}', "amount"),
    ("amount with leading zeros", "POST", "/credits", "primary-owner", '{"amount": "025.00"}', "amount"),
    ("amount with a plus sign", "POST", "/credits", "primary-owner", '{"amount": "+25"}', "amount"),
    ("pack as string", "POST", "/credit_packs/purchase", "primary-owner", '{"pack_dollars": "25"}', "pack_dollars"),
    ("pack as float", "POST", "/credit_packs/purchase", "primary-owner", '{"pack_dollars": 25.0}', "pack_dollars"),
    ("threshold as exponent", "PUT", "/auto_recharge", "primary-owner",
     '{"enabled": true, "threshold_micros": 5e6, "amount_micros": 25000000}', "threshold_micros"),
    ("recharge as string", "PUT", "/auto_recharge", "primary-owner",
     '{"enabled": true, "threshold_micros": 5000000, "amount_micros": "25000000"}', "amount_micros"),
    ("enabled as string", "PUT", "/auto_recharge", "primary-owner", '{"enabled": "true"}', "enabled"),
    ("budget as exponent", "PUT", "/spend_management", "primary-owner",
     '{"enabled": true, "daily_budget_micros": 4e7}', "daily_budget_micros"),
    ("budget as string", "PUT", "/spend_management", "primary-owner",
     '{"enabled": true, "daily_budget_micros": "40000000"}', "daily_budget_micros"),
    ("email threshold as float", "PUT", "/spend_management", "primary-owner",
     '{"enabled": true, "daily_email_threshold_micros": 1000000.0}', "daily_email_threshold_micros"),
    ("monthly cap as string", "PUT", "/spend_management", "primary-owner",
     '{"enabled": true, "monthly_cap_micros": " 90000000"}', "monthly_cap_micros"),
    ("alert threshold as string", "PUT", "/low_balance_alert", "primary-owner",
     '{"enabled": true, "threshold_micros": "10000000"}', "threshold_micros"),
    ("authorize as string", "POST", "/usage/authorize", "service", '{"amount_micros": "1"}', "amount_micros"),
    ("authorize as float", "POST", "/usage/authorize", "service", '{"amount_micros": 1.0}', "amount_micros"),
    ("quantity as string", "POST", "/usage/events", "service",
     '{"event_id": "evt-str", "product": "compute", "quantity": "3"}', "quantity"),
    ("quantity as exponent", "POST", "/usage/events", "service",
     '{"event_id": "evt-exp", "product": "compute", "quantity": 3e0}', "quantity"),
    ("batch quantity as string", "POST", "/usage/events/batch", "service",
     '{"events": [{"event_id": "evt-batch-str", "product": "compute", "quantity": "3"}]}', "events[0].quantity"),
]


@pytest.mark.parametrize(("name", "method", "suffix", "role", "raw", "field"), MONEY_CASES,
                         ids=[c[0] for c in MONEY_CASES])
def test_money_fields_take_integers_or_canonical_decimal_text_only(shared_api: Api, catalogue_world: World,
                                                                   name: str, method: str, suffix: str, role: str,
                                                                   raw: str, field: str) -> None:
    before = _snapshot(shared_api, catalogue_world.org)
    response = shared_api.client.request(method, f"/organizations/{catalogue_world.org}{suffix}",
                                         content=raw.encode(), headers=catalogue_world.headers(
                                             role, **{"Content-Type": "application/json"}))
    _assert_problem(response, 422, field)
    # A JSON value of the wrong type does not fit the schema; text that is not canonical dollars breaks the rule.
    assert response.json()["code"] == ("invalid_amount" if raw.startswith('{"amount": "') else "invalid_input"), \
        response.text
    assert response.json()["field"] == field, response.text
    assert _snapshot(shared_api, catalogue_world.org) == before, name


def test_canonical_money_still_works(shared_api: Api, catalogue_world: World) -> None:
    headers = catalogue_world.headers("primary-owner")
    for body in ({"amount": "25.00"}, {"amount": "25"}, {"amount_micros": 25_000_000}, {"amount": "5.5"}):
        response = shared_api.client.post(f"/organizations/{catalogue_world.org}/credits", json=body, headers=headers)
        assert response.status_code == 201, (body, response.text)


# --------------------------------------------------------------------------- return URLs

BAD_RETURN_URLS = [
    "javascript:alert(document.cookie)", "JavaScript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "//evil.example.com/billing",
    "/\\evil.example.com", "\\\\evil.example.com", "https:\\\\evil.example.com", "https://app.example.com/a\\b",
    "https://app.example.com/\x00", "https://app.example.com/\r\nSet-Cookie: a=b", "/billing\u202e",
    "https://", "http:///billing", "ftp://example.com/", "billing/credits", "", "https://app.example.com/ x",
]
RETURN_URL_ROUTES = [("checkout", "/checkout_sessions", {"plan": "pro"}),
                     ("portal", "/billing_portal", {}),
                     ("crypto top-up", "/credits", {"amount": "10", "method": "crypto"})]


@pytest.mark.parametrize("url", BAD_RETURN_URLS)
def test_every_return_url_is_an_http_url_or_an_absolute_path(api: Api, url: str) -> None:
    world = build_world(api, subscribed=False)
    before, calls = _snapshot(api, world.org), list(api.payments.calls)
    for name, suffix, body in RETURN_URL_ROUTES:
        response = api.client.post(f"/organizations/{world.org}{suffix}", json={**body, "return_url": url},
                                   headers=world.headers("primary-owner"))
        _assert_problem(response, 422, "return_url")
        assert response.json()["code"] == "invalid_url", (name, response.text)
    guest = api.client.post("/guest_checkout_sessions", json={"email": "guest@example.com", "plan": "pro",
                                                              "return_url": url})
    _assert_problem(guest, 422, "return_url")
    assert guest.json()["code"] == "invalid_url", guest.text
    assert _snapshot(api, world.org) == before
    assert api.payments.calls == calls  # refused before the provider is asked for anything


def test_good_return_urls_are_kept(api: Api) -> None:
    world = build_world(api, subscribed=False)
    for url in ("https://app.example.com/billing?tab=credits#top", "http://localhost:8000/b", "/billing/credits"):
        response = api.client.post(f"/organizations/{world.org}/credits",
                                   json={"amount": "10", "method": "crypto", "return_url": url},
                                   headers=world.headers("primary-owner"))
        assert response.status_code == 201, (url, response.text)
