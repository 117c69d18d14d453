"""A catalogue of malformed input over the HTTP app: every case is a clear 422 (or 413) problem document that
names the field at fault, and nothing is written (wallet, ledger, outbox and settings unchanged).
Unicode and SQL-ish text is accepted and stored verbatim (and on SQLite nothing is dropped)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import sqlalchemy_uow_factory
from billing_core import Role, services
from billing_core.billing_settings import InvoiceAddress
from billing_core.catalog import load_catalog
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext
from tests.e2e.conftest import START, Api, World, build_world
from tests.storage_support import migrated_engine

PROBLEM_JSON = "application/problem+json"
SQLISH = "'; DROP TABLE wallets; --"
UNICODE = "Müller & Søhne 株式会社 — Ωmega 🚀"
ADDRESS = {"company_name": "Acme", "address_1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115",
           "country": "DE"}

# (name, method, path suffix, role, body or query, expected status, field named)
CASES: list[tuple[str, str, str, str, Any, int, str]] = [
    # The range check names the logical field "amount" whichever of amount / amount_micros was sent.
    ("huge micros", "POST", "/credits", "owner", {"amount_micros": 10**30}, 422, "amount"),
    ("negative micros", "POST", "/credits", "owner", {"amount_micros": -5_000_000}, 422, "amount"),
    ("negative amount", "POST", "/credits", "owner", {"amount": "-5"}, 422, "amount"),
    ("sub-micro amount", "POST", "/credits", "owner", {"amount": "5.1234567"}, 422, "amount"),
    ("float amount", "POST", "/credits", "owner", {"amount": 5.5}, 422, "amount"),
    ("float micros", "POST", "/credits", "owner", {"amount_micros": 5_500_000.5}, 422, "amount_micros"),
    ("money object in another currency", "POST", "/credits", "owner",
     {"amount": {"cents": 2500, "currency_iso": "EUR"}}, 422, "amount"),
    ("huge quantity", "POST", "/usage/events", "service",
     {"event_id": "evt-huge", "product": "compute", "quantity": 10**20}, 422, "quantity"),
    ("fractional quantity", "POST", "/usage/events", "service",
     {"event_id": "evt-frac", "product": "compute", "quantity": 1.5}, 422, "quantity"),
    ("naive occurred_at", "POST", "/usage/events", "service",
     {"event_id": "evt-naive", "product": "compute", "quantity": 1, "occurred_at": "2026-03-10T11:00:00"},
     422, "occurred_at"),
    ("huge budget", "PUT", "/spend_management", "owner", {"enabled": True, "daily_budget_micros": 10**30},
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
