"""The HTTP API's behaviour: idempotency, problem documents, the Stripe webhook, pagination, PDFs,
the spend guard's 402, offline checkout, credits and the seed's shapes."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from adapters.einvoice.xsd import xsd_errors
from billing_core import services
from billing_core.payments import PaymentStatus
from billing_core.plan_subscription import SubscriptionStatus
from tests.e2e.conftest import DOLLAR, Api, World, _org_with_members, build_world

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _org(world: World, suffix: str) -> str:
    return f"/organizations/{world.org}{suffix}"


def _assert_problem(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status and body["code"] == code and body["type"].endswith(code)
    assert body["detail"] and "Traceback" not in body["detail"]
    if field is not None:
        assert body["field"] == field, body
    return body


# --------------------------------------------------------------------------- idempotency


def test_idempotency_key_replays_the_first_answer_and_charges_once(api: Api, world: World) -> None:
    headers = world.headers("primary-owner", **{"Idempotency-Key": "add-25"})
    charges_before = len(api.payments.charge_requests)
    first = api.client.post(_org(world, "/credits"), json={"amount": "25.00"}, headers=headers)
    second = api.client.post(_org(world, "/credits"), json={"amount": "25.00"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert len(api.payments.charge_requests) == charges_before + 1
    assert first.json()["credits"] == {"micros": 25 * DOLLAR, "display": "$25.000"}


def test_idempotency_key_with_another_body_is_a_409(api: Api, world: World) -> None:
    headers = world.headers("owner", **{"Idempotency-Key": "email-1"})
    ok = api.client.put(_org(world, "/billing_email"), json={"email": "a@example.com"}, headers=headers)
    assert ok.status_code == 200
    clash = api.client.put(_org(world, "/billing_email"), json={"email": "b@example.com"}, headers=headers)
    _assert_problem(clash, 409, "idempotency_key_reused")
    current = api.client.get(_org(world, "/billing_email"), headers=world.headers("member"))
    assert current.json() == {"email": "a@example.com"}


def test_idempotency_keys_are_scoped_per_actor_and_route(api: Api, world: World) -> None:
    key = {"Idempotency-Key": "same-key"}
    a = api.client.put(_org(world, "/billing_email"), json={"email": "a@example.com"},
                       headers=world.headers("owner", **key))
    b = api.client.put(_org(world, "/billing_email"), json={"email": "b@example.com"},
                       headers=world.headers("primary-owner", **key))
    c = api.client.post(_org(world, "/payment_methods/payment_intent"), headers=world.headers("owner", **key))
    assert (a.status_code, b.status_code, c.status_code) == (200, 200, 201)
    assert "idempotent-replayed" not in b.headers and "idempotent-replayed" not in c.headers


def test_idempotent_replay_of_a_delete_and_of_a_client_error(api: Api, world: World) -> None:
    key = {"Idempotency-Key": "del-1"}
    path = _org(world, f"/payment_methods/{world.second_payment_method_id}")
    first = api.client.delete(path, headers=world.headers("owner", **key))
    again = api.client.delete(path, headers=world.headers("owner", **key))
    assert first.status_code == again.status_code == 204 and again.headers["idempotent-replayed"] == "true"
    fresh = api.client.delete(path, headers=world.headers("owner"))
    _assert_problem(fresh, 404, "not_found")

    bad = {"Idempotency-Key": "bad-email"}
    one = api.client.put(_org(world, "/billing_email"), json={"email": "nope"}, headers=world.headers("owner", **bad))
    two = api.client.put(_org(world, "/billing_email"), json={"email": "nope"}, headers=world.headers("owner", **bad))
    _assert_problem(one, 422, "invalid_email", "email")
    assert two.json() == one.json() and two.headers["idempotent-replayed"] == "true"


def test_invalid_idempotency_key_is_named(api: Api, world: World) -> None:
    response = api.client.put(_org(world, "/billing_email"), json={"email": "a@example.com"},
                              headers=world.headers("owner", **{"Idempotency-Key": "x" * 300}))
    _assert_problem(response, 422, "invalid_idempotency_key", "Idempotency-Key")


# --------------------------------------------------------------------------- problem documents


def test_problem_documents_name_the_field(api: Api, world: World) -> None:
    owner = world.headers("primary-owner")
    _assert_problem(api.client.put(_org(world, "/invoice_address"), json={"company_name": "Acme"}, headers=owner),
                    422, "required", "address_1")
    _assert_problem(api.client.put(_org(world, "/billing_email"), json={"emial": "a@b.co"}, headers=owner),
                    422, "invalid_input", "emial")
    _assert_problem(api.client.put(_org(world, "/billing_email"), json={}, headers=owner),
                    422, "invalid_input", "email")
    _assert_problem(api.client.put(_org(world, "/auto_recharge"), json={"enabled": "yes"}, headers=owner),
                    422, "invalid_input", "enabled")
    _assert_problem(api.client.put(_org(world, "/spend_management"),
                                   json={"enabled": True, "webhook_url": "https://127.0.0.1/x"}, headers=owner),
                    422, "ssrf_blocked", "webhook_url")
    _assert_problem(api.client.get(_org(world, "/usage_feed?limit=0"), headers=owner), 422, "invalid_input", "limit")
    _assert_problem(api.client.get(_org(world, "/usage_feed?limit=201"), headers=owner),
                    422, "invalid_input", "limit")
    _assert_problem(api.client.get(_org(world, "/usage_feed?cursor=abc"), headers=owner), 422, "invalid_input",
                    "cursor")
    _assert_problem(api.client.get(_org(world, "/payment_methods?cursor=-1"), headers=owner), 422, "invalid_input",
                    "cursor")
    _assert_problem(api.client.put(_org(world, "/billing_email"), content=b"{not json",
                                   headers={**owner, "Content-Type": "application/json"}),
                    400, "malformed_body", "body")


def test_auth_problems(api: Api, world: World) -> None:
    missing = api.client.get(_org(world, "/billing/overview"))
    _assert_problem(missing, 401, "unauthenticated")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    _assert_problem(api.client.get(_org(world, "/billing/overview"), headers={"Authorization": "Bearer nope"}),
                    401, "unauthenticated")
    _assert_problem(api.client.get(_org(world, "/billing/overview"), headers={"Authorization": "Basic eDp5"}),
                    401, "unauthenticated")
    # Authentication comes first: no token and a broken body is still a 401.
    _assert_problem(api.client.post(_org(world, "/credits"), content=b"{"), 401, "unauthenticated")
    denied = _assert_problem(api.client.post(_org(world, "/credit_packs/purchase"), json={"pack_dollars": 25},
                                             headers=world.headers("owner")), 403, "permission_denied")
    assert denied["detail"] == "Only the team creator can purchase credit packs"
    outsider = api.client.get(_org(world, f"/invoices/{world.invoice_id}"), headers=world.headers("outsider"))
    _assert_problem(outsider, 404, "not_found")
    _assert_problem(api.client.get("/subscriptions/" + str(world.product_subscription_id),
                                   headers=world.headers("outsider")), 404, "not_found")
    _assert_problem(api.client.get(f"/billing/usage?organization_id={world.org}", headers=world.headers("outsider")),
                    404, "not_found")


def test_unknown_routes_and_methods_are_problems(api: Api, world: World) -> None:
    _assert_problem(api.client.get("/nowhere"), 404, "not_found")
    _assert_problem(api.client.put(_org(world, "/payment_methods/not-a-uuid/set_default"),
                                   headers=world.headers("owner")), 404, "not_found")
    not_allowed = api.client.patch(_org(world, "/billing_email"), json={}, headers=world.headers("owner"))
    _assert_problem(not_allowed, 405, "method_not_allowed")


def test_bodies_over_one_mebibyte_are_refused(api: Api, world: World) -> None:
    big = json.dumps({"email": "a" * (1024 * 1024 + 10)})
    for extra in ({}, {"Idempotency-Key": "big"}):
        response = api.client.put(_org(world, "/billing_email"), content=big,
                                  headers={**world.headers("owner", **extra), "Content-Type": "application/json"})
        _assert_problem(response, 413, "request_too_large")


def test_unexpected_errors_are_bare_500_problems(api: Api, world: World, caplog: pytest.LogCaptureFixture) -> None:
    from billing_core.errors import ProviderUnavailable

    api.payments.fail_with = RuntimeError("boom: secret detail")  # type: ignore[assignment]
    try:
        response = api.client.post(_org(world, "/payment_methods/payment_intent"), headers=world.headers("owner"))
    finally:
        api.payments.fail_with = None
    body = _assert_problem(response, 500, "internal_error")
    assert "boom" not in body["detail"] and "secret" not in response.text
    assert any("unhandled error" in record.message for record in caplog.records)

    api.payments.fail_with = ProviderUnavailable()
    try:
        unavailable = api.client.post(_org(world, "/payment_methods/payment_intent"), headers=world.headers("owner"))
    finally:
        api.payments.fail_with = None
    _assert_problem(unavailable, 503, "provider_unavailable")
    assert unavailable.headers["retry-after"] == "5"


# --------------------------------------------------------------------------- usage and the spend guard


def test_usage_events_denied_by_the_spend_guard_answer_402(api: Api, world: World) -> None:
    """The daily budget's rule at its boundary: the call that crosses the budget runs and is debited
    in full, later calls are 402 until 00:00 UTC, a refund gives the day's usage back and unblocks
    the same day; exactly at the budget is blocked, one micro under is not."""
    owner, service = world.headers("primary-owner"), world.headers("service")

    def report(event_id: str, quantity: int) -> Any:
        return api.client.post(_org(world, "/usage/events"), headers=service,
                               json={"event_id": event_id, "product": "compute", "quantity": quantity})

    def consumed_today() -> int:
        spend = api.client.get(_org(world, "/spend_management"), headers=world.headers("member")).json()
        return int(spend["consumed_today"]["micros"])

    def set_budget(micros: int) -> None:
        budget = api.client.put(_org(world, "/spend_management"), headers=owner,
                                json={"enabled": True, "daily_budget_micros": micros})
        assert budget.status_code == 200 and budget.json()["daily_budget"]["micros"] == micros

    # The world's hold would count as used (held credits do); this test is about usage alone.
    released = api.client.delete(_org(world, f"/usage/holds/{world.extra['hold']}"), headers=service)
    assert released.status_code == 200, released.text
    # The world's events today used $1.40 (evt-february, reported today, and evt-world).
    set_budget(2 * DOLLAR)
    ok = report("e-1", 5)
    assert ok.status_code == 201 and ok.json()["allowed"] is True
    replay = report("e-1", 5)
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    crossing = report("e-2", 50)  # $1.60 used: $2.00 more crosses the budget, and still runs
    assert crossing.status_code == 201 and crossing.json()["amount_micros"] == 2 * DOLLAR
    assert consumed_today() == 1_600_000 + 2 * DOLLAR
    denied = report("e-3", 1)
    body = _assert_problem(denied, 402, "daily_budget_reached")
    assert body["reason"] == "daily_budget_reached" and body["retry_at"] == "2026-03-11T00:00:00Z"
    assert denied.headers["retry-after"] == "Wed, 11 Mar 2026 00:00:00 GMT"
    decision = api.client.post(_org(world, "/usage/authorize"), json={"amount_micros": 0}, headers=service)
    assert decision.status_code == 200
    assert decision.json() == {"allowed": False, "reason": "daily_budget_reached",
                               "message": decision.json()["message"], "retry_at": "2026-03-11T00:00:00Z",
                               "warning": None, "grace_ends_at": None}
    spend = api.client.get(_org(world, "/spend_management"), headers=world.headers("member")).json()
    assert spend["daily_budget"] == {"micros": 2 * DOLLAR, "display": "$2.000"}

    # The crossing call failed and is refunded: its usage no longer counts, the day is unblocked.
    refund = api.client.post(_org(world, "/usage/events/e-2/refund"), json={}, headers=service)
    assert refund.status_code == 200
    assert consumed_today() == 1_600_000
    assert report("e-4", 1).status_code == 201
    used = consumed_today()
    set_budget(used)  # exactly at the budget: blocked
    _assert_problem(report("e-5", 1), 402, "daily_budget_reached")
    set_budget(used + 1)  # one micro under: the next call runs
    assert report("e-6", 1).status_code == 201
    _assert_problem(report("e-7", 1), 402, "daily_budget_reached")


def test_usage_event_refund_shows_in_the_feed(api: Api, world: World) -> None:
    refund = api.client.post(_org(world, f"/usage/events/{world.event_id}/refund"), json={},
                             headers=world.headers("service"))
    assert refund.status_code == 200 and refund.json()["amount_micros"] == -400_000
    feed = api.client.get(_org(world, "/usage_feed?limit=1"), headers=world.headers("member")).json()
    entry = feed["items"][0]
    assert entry["kind"] == "automatic_refund" and entry["tone"] == "credit" and entry["sign"] == "+"
    assert entry["reason"] == "failed generation reimbursed" and entry["amount_display"] == "+$0.400"
    missing = api.client.post(_org(world, "/usage/events/nope/refund"), headers=world.headers("service"))
    _assert_problem(missing, 404, "not_found")


def test_usage_event_validation(api: Api, world: World) -> None:
    service = world.headers("service")
    _assert_problem(api.client.post(_org(world, "/usage/events"), headers=service,
                                    json={"event_id": "x", "product": "compute", "quantity": "lots"}),
                    422, "invalid_input", "quantity")
    _assert_problem(api.client.post(_org(world, "/usage/events"), headers=service,
                                    json={"event_id": "x", "product": "compute", "quantity": 0}),
                    422, "invalid_quantity", "quantity")
    _assert_problem(api.client.post(_org(world, "/usage/events"), headers=service,
                                    json={"event_id": "x", "product": "teleport", "quantity": 1}),
                    422, "unknown_product", "product")
    _assert_problem(api.client.post(_org(world, "/usage/events"), headers=service,
                                    json={"event_id": "x", "product": "storage", "quantity": 1}),
                    409, "product_not_subscribed", "product")
    _assert_problem(api.client.post(_org(world, "/usage/events"), headers=service,
                                    json={"event_id": "x", "product": "compute", "quantity": 1,
                                          "occurred_at": "2026-03-10T12:00:00"}),
                    422, "invalid_datetime", "occurred_at")


def test_datetimes_without_an_offset_are_refused_and_offsets_become_utc(api: Api, world: World) -> None:
    owner = world.headers("owner")
    _assert_problem(api.client.post(f"/subscriptions/{world.product_subscription_id}/end", headers=owner,
                                    json={"end_date": "2026-03-20T00:00:00"}), 422, "invalid_datetime", "end_date")
    _assert_problem(api.client.post("/subscriptions", headers=owner,
                                    json={"product": "storage", "end_date": "2026-04-01T00:00:00"}),
                    422, "invalid_datetime", "end_date")
    created = api.client.post("/subscriptions", headers=owner,
                              json={"product": "storage", "start_date": "2026-03-10T14:00:00+02:00"})
    assert created.status_code == 201 and created.json()["start_date"] == "2026-03-10T12:00:00Z"
    ended = api.client.post(f"/subscriptions/{created.json()['id']}/end", headers=owner,
                            json={"end_date": "2026-03-11T01:00:00+01:00"})
    assert ended.json()["end_date"] == "2026-03-11T00:00:00Z"


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/usage/events", {"event_id": "evt-year-1", "product": "compute", "quantity": 1,
                               "occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
    ("POST", "/usage/events/batch", {"events": [{"event_id": "evt-year-1", "product": "compute", "quantity": 1,
                                                 "occurred_at": "0001-01-01T00:00:00+01:00"}]},
     "events[0].occurred_at"),
    ("POST", "/subscription/change/preview", {"plan": "scale", "at": "9999-12-31T23:59:59-01:00"}, "at"),
    ("POST", "/subscription/change", {"plan": "scale", "preview_at": "0001-01-01T00:00:00+14:00"}, "preview_at"),
    ("POST", "/subscriptions", {"product": "storage", "start_date": "0001-01-01T00:00:00+01:00"}, "start_date"),
    ("GET", "/billing/usage?from=0001-01-01T00:00:00%2B14:00", None, "from"),
    ("GET", "/billing/usage?to=9999-12-31T23:59:59-14:00", None, "to"),
])
def test_datetimes_with_no_utc_equivalent_are_a_422(api: Api, world: World, method: str, path: str,
                                                     body: dict[str, Any] | None, field: str) -> None:
    """Years 1 and 9999 with an offset fall outside what a UTC datetime can hold (they were a 500)."""
    role = "service" if path.startswith("/usage") else "primary-owner"
    url = path if path.startswith(("/subscriptions", "/billing")) else _org(world, path)
    response = api.client.request(method, url, json=body, headers=world.headers(role))
    problem = _assert_problem(response, 422, "invalid_datetime", field)
    assert "out of range" in problem["detail"]


def test_a_missing_body_is_named(api: Api, world: World) -> None:
    for headers in (world.headers("owner"), world.headers("owner", **{"Content-Type": "application/json"})):
        problem = _assert_problem(api.client.put(_org(world, "/billing_email"), headers=headers),
                                  422, "invalid_input", "body")
        assert problem["detail"] == "body: a JSON request body is required"


def test_usage_report_by_project_and_product_per_hour(api: Api, world: World) -> None:
    response = api.client.get("/billing/usage", headers=world.headers("member"),
                              params={"organization_id": str(world.org), "from": "2026-02-01T00:00:00Z",
                                      "to": "2026-04-01T00:00:00Z"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["from"] == "2026-02-01T00:00:00Z" and report["to"] == "2026-04-01T00:00:00Z"
    assert [line["hour"] for line in report["lines"]] == ["2026-02-15T09:00:00Z", "2026-03-10T12:00:00Z"]
    assert report["total_micros"] == 1_400_000 and report["total"] == {"cents": 140, "currency_iso": "USD"}
    assert report["by_product"][0]["product"] == "compute" and report["by_product"][0]["quantity"] == 35
    assert sum(p["amount_micros"] for p in report["by_project"]) == report["total_micros"]
    default_window = api.client.get("/billing/usage", headers=world.headers("member")).json()
    assert default_window["from"] == "2026-03-01T00:00:00Z" and default_window["total_micros"] == 400_000
    _assert_problem(api.client.get("/billing/usage?from=2026-02-01T00:00:00", headers=world.headers("member")),
                    422, "invalid_datetime", "from")
    _assert_problem(api.client.get("/billing/usage?from=yesterday", headers=world.headers("member")),
                    422, "invalid_datetime", "from")
    _assert_problem(api.client.get("/billing/usage?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z",
                                   headers=world.headers("member")), 422, "invalid_range", "to")


# --------------------------------------------------------------------------- seed shapes


def test_seed_shapes_subscriptions_invoices_payment_methods(api: Api, world: World) -> None:
    member = world.headers("member")
    subs = api.client.get("/subscriptions", headers=member).json()
    assert set(subs) == {"items", "next_cursor"}
    assert set(subs["items"][0]) == {"id", "organization_id", "project_id", "product_id", "start_date", "end_date"}
    assert subs["items"][0]["project_id"] is None and subs["items"][0]["end_date"] is None

    invoice = api.client.get(f"/invoices/{world.invoice_id}", headers=member).json()
    assert invoice["period"] == {"start": "2026-02-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    assert invoice["total"] == {"cents": 100, "currency_iso": "USD"}
    item = invoice["items"][0]
    assert item["product"] == "Compute" and item["quantity"] == 25 and item["unit_price"] == "0.04"
    assert {"project", "unit", "amount"} <= item.keys()

    legal = api.client.get(_org(world, f"/invoices/{world.invoice_id}"), headers=member).json()
    assert legal["number"].startswith("INV-") and legal["pdf_available"] is True
    assert legal["pdf_url"] == f"/organizations/{world.org}/invoices/download?invoice_id={world.invoice_id}"

    methods = api.client.get(_org(world, "/payment_methods"), headers=member).json()["items"]
    assert [m["default"] for m in methods] == [True, False]
    visa, sepa = methods
    assert (visa["brand"], visa["last4"], visa["exp_month"], visa["exp_year"]) == ("visa", "4242", 12, 2034)
    assert visa["iban"] is None and sepa["payment_type"] == "sepa_debit" and sepa["iban"] == "****3000"
    for value in (subs["items"][0]["start_date"], invoice["created_at"], visa["created_at"]):
        assert ISO_Z.match(value), value


def test_pdf_download(api: Api, world: World) -> None:
    response = api.client.get(_org(world, "/invoices/download"), params={"invoice_id": str(world.invoice_id)},
                              headers=world.headers("member"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert re.match(r'attachment; filename="invoice-INV-\d+\.pdf"', response.headers["content-disposition"])
    _assert_problem(api.client.get(_org(world, "/invoices/download"), params={"invoice_id": str(uuid.uuid4())},
                                   headers=world.headers("member")), 404, "not_found")
    _assert_problem(api.client.get(_org(world, "/invoices/download"), headers=world.headers("member")),
                    422, "invalid_input", "invoice_id")


def test_einvoice_xml_download(api: Api, world: World) -> None:
    """Beside the PDF, with its permissions: the issued invoice as XRechnung UBL or CII, XSD-valid."""
    path = _org(world, f"/invoices/{world.invoice_id}/xml")
    for syntax, root, suffix in (("xrechnung-ubl", b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
                                  "xrechnung"),
                                 ("cii", b"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100", "cii")):
        response = api.client.get(path, params={"format": syntax}, headers=world.headers("member"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        assert root in response.content and xsd_errors(response.content) == []
        assert re.match(rf'attachment; filename="invoice-INV-\d+-{suffix}\.xml"',
                        response.headers["content-disposition"])
    assert api.client.get(path, headers=world.headers("member")).content.count(b"xrechnung_3.0") == 1
    _assert_problem(api.client.get(path, params={"format": "pdf"}, headers=world.headers("member")),
                    422, "invalid_format", "format")
    _assert_problem(api.client.get(_org(world, f"/invoices/{uuid.uuid4()}/xml"), headers=world.headers("member")),
                    404, "not_found")


def test_setup_intent_and_attach(api: Api, world: World) -> None:
    owner = world.headers("owner")
    intent = api.client.post(_org(world, "/payment_methods/payment_intent"), headers=owner)
    assert intent.status_code == 201 and re.match(r"^seti_\w+_secret_\w+$", intent.json()["client_secret"])
    attached = api.client.post(_org(world, "/payment_methods/create_and_attach"), headers=owner,
                               json={"payment_method_id": "pm_card_mastercard"})
    assert attached.status_code == 201 and attached.json()["brand"] == "mastercard"
    made_default = api.client.put(_org(world, f"/payment_methods/{attached.json()['id']}/set_default"), headers=owner)
    assert made_default.json()["default"] is True
    _assert_problem(api.client.post(_org(world, "/payment_methods/create_and_attach"), headers=owner,
                                    json={"payment_method_id": "card_123"}), 422, "invalid_payment_method",
                    "payment_method_id")


# --------------------------------------------------------------------------- pagination


def test_pagination_walks_every_item_once_in_a_stable_order(api: Api, world: World) -> None:
    service = world.headers("service")
    for n in range(7):
        assert api.client.post(_org(world, "/usage/events"), headers=service,
                               json={"event_id": f"p-{n}", "product": "compute", "quantity": 1}).status_code == 201
    member = world.headers("member")
    whole = api.client.get(_org(world, "/usage_feed?limit=200"), headers=member).json()
    assert whole["next_cursor"] is None
    walked: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api.client.get(_org(world, "/usage_feed"), params=params, headers=member).json()
        assert len(page["items"]) <= 3
        walked.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == whole["items"] and len(walked) >= 10
    assert len({entry["id"] for entry in walked}) == len(walked)
    first = api.client.get(_org(world, "/payment_methods?limit=1"), headers=member).json()
    second = api.client.get(_org(world, "/payment_methods"), params={"limit": 1, "cursor": first["next_cursor"]},
                            headers=member).json()
    assert first["items"][0]["default"] is True and second["items"][0]["default"] is False
    assert second["next_cursor"] is None


# --------------------------------------------------------------------------- plans, checkout, packs, credits


def test_offline_checkout_trial_then_packs(api: Api) -> None:
    world = build_world(api, subscribed=False)
    po = world.headers("primary-owner")
    plans = api.client.get(_org(world, "/plans"), headers=world.headers("member")).json()["items"]
    assert [p["plan"] for p in plans] == ["starter", "pro", "scale", "enterprise"]
    assert not any(p["enabled"] for p in plans)
    assert plans[0]["disabled_reason"] == "Only the primary owner can subscribe to a plan"
    # The world paid for credits already, so it has billing history: no trial.
    assert {p["action"] for p in plans} == {"proceed_to_payment"}
    packs = api.client.get(_org(world, "/credit_packs"), headers=po).json()
    assert packs["state"] == "no_subscription" and not packs["enabled"]
    assert packs["message"] == "Subscribe to a plan first to purchase credit packs"
    assert [p["price_dollars"] for p in packs["packs"]] == [10, 25, 50, 100, 500, 1000]

    session = api.client.post(_org(world, "/checkout_sessions"), headers=po,
                              json={"plan": "scale", "return_url": "https://app.example.com/pricing?x=1"})
    assert session.status_code == 201 and session.json()["client_secret"]
    session_id = session.json()["id"]
    done = api.client.post(_org(world, f"/checkout_sessions/{session_id}/complete"), headers=po)
    assert done.status_code == 200 and done.json()["status"] == "complete"
    status = api.client.get(_org(world, f"/checkout_sessions/{session_id}"), headers=world.headers("member")).json()
    assert status["return_url"] == ("https://app.example.com/pricing?x=1&checkout_session_id="
                                    f"{session_id}&checkout_status=complete")
    summary = api.client.get(_org(world, "/subscription"), headers=world.headers("member")).json()["subscription"]
    assert (summary["tier"], summary["status"], summary["color"]) == ("Scale", "active", "green")
    assert summary["message"] == "Subscription is current" and summary["features"]

    bought = api.client.post(_org(world, "/credit_packs/purchase"), json={"pack_dollars": 100}, headers=po)
    assert bought.status_code == 201 and bought.json()["status"] == "succeeded"
    assert bought.json()["credits"] == {"micros": 100 * DOLLAR, "display": "$100.000"}
    _assert_problem(api.client.post(_org(world, "/credit_packs/purchase"), json={"pack_dollars": 7}, headers=po),
                    422, "unknown_pack", "pack")
    again = api.client.post(_org(world, "/checkout_sessions"), headers=po,
                            json={"plan": "pro", "return_url": "/billing/plans"})
    _assert_problem(again, 409, "already_subscribed")


def test_subscription_view_without_a_plan(api: Api) -> None:
    world = build_world(api, subscribed=False)
    response = api.client.get(_org(world, "/subscription"), headers=world.headers("member"))
    assert response.json() == {"subscription": None}


def test_plan_change_preview_equals_the_change(api: Api, world: World) -> None:
    po = world.headers("primary-owner")
    api.clock.advance(timedelta(days=3))
    preview = api.client.post(_org(world, "/subscription/change/preview"), json={"plan": "scale"}, headers=po)
    assert preview.status_code == 200, preview.text
    changed = api.client.post(_org(world, "/subscription/change"), headers=po,
                              json={"plan": "scale", "preview_at": preview.json()["at"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["preview"] == preview.json()
    assert changed.json()["hosted_invoice"]["hosted_invoice_url"].startswith("https://")
    stale = api.client.post(_org(world, "/subscription/change"), headers=po,
                            json={"plan": "pro", "preview_at": "2020-01-01T00:00:00Z"})
    _assert_problem(stale, 422, "preview_expired", "at")
    portal = api.client.post(_org(world, "/billing_portal"), json={"return_url": "/billing"}, headers=po)
    assert portal.status_code == 200 and portal.json()["url"].startswith("https://")


def test_add_credits_amounts_methods_and_declines(api: Api, world: World) -> None:
    owner = world.headers("primary-owner")
    micros = api.client.post(_org(world, "/credits"), json={"amount_micros": 5 * DOLLAR}, headers=owner)
    assert micros.status_code == 201 and micros.json()["amount"] == {"cents": 500, "currency_iso": "USD"}
    crypto = api.client.post(_org(world, "/credits"), json={"amount": "10", "method": "crypto"}, headers=owner)
    assert crypto.status_code == 201
    assert crypto.json()["status"] == "pending" and crypto.json()["client_secret"]
    for body, code, field in (({"amount": "4.99"}, "amount_out_of_range", "amount"),
                              ({"amount": "5000.01"}, "amount_out_of_range", "amount"),
                              ({"amount": "1e3"}, "invalid_amount", "amount"),
                              ({"amount": "25", "amount_micros": 25 * DOLLAR}, "invalid_amount", "amount"),
                              ({}, "invalid_amount", "amount"),
                              ({"amount": "25", "method": "barter"}, "invalid_input", "method")):
        _assert_problem(api.client.post(_org(world, "/credits"), json=body, headers=owner), 422, code, field)
    declined_card = api.client.post(_org(world, "/payment_methods/create_and_attach"), headers=owner,
                                    json={"payment_method_id": "pm_card_chargeDeclined"}).json()
    declined = api.client.post(_org(world, "/credits"), headers=owner,
                               json={"amount": "20.00", "payment_method_id": declined_card["id"]})
    body = _assert_problem(declined, 402, "payment_declined")
    assert body["detail"] == "Your card was declined."
    payments = api.client.get(_org(world, "/payments?limit=200"), headers=world.headers("member")).json()["items"]
    assert PaymentStatus.FAILED in {p["status"] for p in payments}


def test_refund_request_and_history(api: Api, world: World) -> None:
    owner = world.headers("primary-owner")
    refund = api.client.post(_org(world, "/refunds"), json={"payment_id": str(world.payment_id)}, headers=owner)
    assert refund.status_code == 201, refund.text
    decision = refund.json()["decision"]
    assert decision["status"] == "approved" and decision["amount"]["cents"] > 0 and decision["expected_by"]
    again = api.client.post(_org(world, "/refunds"), json={"payment_id": str(world.payment_id)}, headers=owner)
    assert again.json()["decision"]["status"] == "denied"
    listed = api.client.get(_org(world, "/refunds"), headers=world.headers("member")).json()["items"]
    assert len(listed) == 2
    history = api.client.get(_org(world, "/balance_history"), headers=world.headers("member")).json()["items"]
    assert history[0]["kind"] == "credit_refund" and history[0]["amount_micros"] < 0


def test_overview_figures_and_settings_round_trip(api: Api, world: World) -> None:
    owner, member = world.headers("primary-owner"), world.headers("member")
    overview = api.client.get(_org(world, "/billing/overview"), headers=member).json()
    assert overview["credit_balance"]["display"] == re.sub(r"\d", "0", overview["credit_balance"]["display"]) or \
        re.match(r"^-?\$[\d,]+\.\d{3}$", overview["credit_balance"]["display"])
    assert set(overview["wallet"]) == {"total_credits", "usage_this_period", "remaining_credits",
                                       "overage_protection", "daily_hard_limit_used", "daily_hard_limit",
                                       "available_to_use", "held"}
    assert overview["production_health"] == "healthy" and overview["grace_window"]["state"] == "none"
    assert overview["auto_recharge"]["state"] == "Disabled" and overview["spend_management"]["state"] == "Disabled"
    address = {"company_name": "Acme GmbH", "address_1": "Torstraße 1", "address_2": None, "city": "Berlin",
               "postal_code": "10119", "region": None, "country": "DE", "po_number": "PO-1"}
    assert api.client.put(_org(world, "/invoice_address"), json=address, headers=owner).json() == address
    assert api.client.get(_org(world, "/invoice_address"), headers=member).json() == address
    recharge = api.client.put(_org(world, "/auto_recharge"), headers=owner,
                              json={"enabled": True, "threshold_micros": 10 * DOLLAR, "amount_micros": 50 * DOLLAR})
    assert recharge.json()["state"] == "Enabled" and recharge.json()["amount"]["display"] == "$50.000"
    # Paused after failed charges: the seed's section still says "Enabled"; paused_at says why.
    with api.ctx.uow() as uow:
        settings = uow.settings.get(world.org)
        paused = msgspec.structs.replace(settings.auto_recharge, paused_at=api.clock.now(), consecutive_failures=3)
        uow.settings.save(msgspec.structs.replace(settings, auto_recharge=paused))
        uow.commit()
    paused_out = api.client.get(_org(world, "/auto_recharge"), headers=member).json()
    assert (paused_out["state"], paused_out["enabled"], paused_out["consecutive_failures"]) == ("Enabled", True, 3)
    assert paused_out["paused_at"] is not None
    assert api.client.get(_org(world, "/billing/overview"), headers=member).json()["auto_recharge"] == paused_out
    api.clock.advance(timedelta(minutes=1))
    tax = api.client.post(_org(world, "/tax_registrations"), json={"country": "FR", "value": "FR40303265045"},
                          headers=owner)
    assert tax.status_code == 201 and tax.json()["status"] == "verified"
    registrations = api.client.get(_org(world, "/tax_registrations"), headers=member).json()["items"]
    assert [r["country"] for r in registrations] == ["DE", "FR"]
    assert api.client.delete(_org(world, f"/tax_registrations/{tax.json()['id']}"), headers=owner).status_code == 204
    alert = api.client.put(_org(world, "/low_balance_alert"), json={"enabled": True, "threshold_micros": 2 * DOLLAR},
                           headers=world.headers("primary-owner"))
    assert alert.json() == {"enabled": True, "threshold": {"micros": 2 * DOLLAR, "display": "$2.000"}}
    overview = api.client.get(_org(world, "/billing/overview"), headers=member).json()
    assert overview["address"]["company_name"] == "Acme GmbH" and overview["auto_recharge"]["enabled"] is True


def test_payments_due_and_recovery_banners(api: Api, world: World) -> None:
    services.plan_subscriptions.set_status(api.ctx, organization_id=world.org, status=SubscriptionStatus.PAST_DUE)
    overview = api.client.get(_org(world, "/billing/overview"), headers=world.headers("member")).json()
    assert "past_due" in {b["kind"] for b in overview["banners"]}
    assert overview["production_health"] == "grace_active" and overview["grace_window"]["ends_at"]
    due = api.client.get(_org(world, "/payments_due"), headers=world.headers("member")).json()
    assert due == {"items": [], "next_cursor": None}  # the February invoice was paid from credits


# --------------------------------------------------------------------------- the Stripe webhook


def test_stripe_webhook_verifies_the_signature(api: Api) -> None:
    world = build_world(api, subscribed=False)
    po = world.headers("primary-owner")
    session = api.client.post(_org(world, "/checkout_sessions"), headers=po,
                              json={"plan": "pro", "return_url": "/billing/plans"}).json()
    checkout = services.checkout.checkout_status(
   api.ctx, services.organizations.authenticate(api.ctx, world.tokens["primary-owner"]),
   organization_id=world.org, session_id=uuid.UUID(session["id"]))[0]
    payload, signature = api.payments.event("checkout.session.completed", {
        "id": checkout.provider_session_id, "object": "checkout.session", "mode": "subscription",
        "subscription": "sub_from_webhook"})

    forged = api.client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature + "0"})
    _assert_problem(forged, 400, "invalid_signature")
    _assert_problem(api.client.post("/webhooks/stripe", content=payload), 400, "invalid_signature")
    tampered = payload.replace(b"sub_from_webhook", b"sub_evil_webhook")
    _assert_problem(api.client.post("/webhooks/stripe", content=tampered, headers={"Stripe-Signature": signature}),
                    400, "invalid_signature")
    assert api.client.get(_org(world, "/subscription"), headers=po).json() == {"subscription": None}

    accepted = api.client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
    assert accepted.status_code == 200 and accepted.json()["outcome"] == "processed"
    assert api.client.get(_org(world, "/subscription"), headers=po).json()["subscription"]["status"] == "active"
    duplicate = api.client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
    assert duplicate.status_code == 200 and duplicate.json()["outcome"] == "duplicate"
    other, other_signature = api.payments.event("customer.created", {"id": "cus_1"})
    ignored = api.client.post("/webhooks/stripe", content=other, headers={"Stripe-Signature": other_signature})
    assert ignored.json()["outcome"] == "ignored"


# --------------------------------------------------------------------------- public routes


def test_health_and_openapi(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "storage": "memory", "payments": "offline"}
    schema = api.client.get("/openapi.json")
    assert schema.status_code == 200 and schema.headers["content-type"].startswith("application/json")
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert "/organizations/{organization_id}/payment_methods/create_and_attach" in document["paths"]
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


def test_usage_report_totals_match_the_invoice_to_the_cent(api: Api, world: World) -> None:
    """Issue 19, item 8: the console's usage report ("to build cost forecasts and chargeback reports")
    shows totals that match the invoice to the cent: the invoice rounds once per product and project,
    so rounding the window's total once can differ; ``invoice_total`` is the invoice's own sum."""
    from datetime import UTC, datetime

    ctx = api.container.billing_context()
    bob = services.organizations.authenticate(ctx, world.tokens["owner"])
    platform = services.organizations.authenticate(ctx, world.tokens["service"])
    services.product_subscriptions.subscribe_product(ctx, bob, organization_id=world.org, product="storage",
                                                     project_id=None,
                                                     start_date=datetime(2026, 1, 1, tzinfo=UTC))
    # Two projects, 40 GB-hours each at $0.000150: $0.006 each, one cent each on the invoice; $0.012 in all.
    for n in range(2):
        services.usage.report_usage(ctx, platform, organization_id=world.org, event_id=f"evt-jan-{n}",
                                    product="storage", quantity=40, project_id=uuid.uuid4(),
                                    occurred_at=datetime(2026, 1, 10 + n, 8, tzinfo=UTC))
    closed = services.invoicing.close_period(ctx, period="2026-01", organization_id=world.org)
    member = world.headers("member")
    invoice = api.client.get(f"/invoices/{closed.invoice_ids[0]}", headers=member).json()
    report = api.client.get("/billing/usage", headers=member, params={
        "organization_id": str(world.org), "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}).json()
    assert report["total_micros"] == 12_000 and report["total"]["cents"] == 1  # the whole rounded once
    assert report["invoice_total"] == {"cents": 2, "currency_iso": "USD"}
    assert sum(item["amount"]["cents"] for item in invoice["items"]) == report["invoice_total"]["cents"]
    assert sorted(i["amount"]["cents"] for i in report["items"]) == sorted(
        i["amount"]["cents"] for i in invoice["items"])


def test_total_credits_is_gross_a_100_top_up_then_30_invoiced_shows_100(api: Api) -> None:
    """The seed: "the total number of usage credits (gross) you've purchased or have been granted"."""
    ctx = api.ctx
    org, tokens = _org_with_members(ctx, "Gross")
    owner = {"Authorization": f"Bearer {tokens['primary-owner']}"}
    ada = services.organizations.authenticate(ctx, tokens["primary-owner"])
    platform = services.organizations.authenticate(ctx, tokens["service"])
    services.payment_methods.attach(ctx, ada, organization_id=org, provider_payment_method_id="pm_card_visa")
    topped = api.client.post(f"/organizations/{org}/credits", json={"amount": "100.00"}, headers=owner)
    assert topped.status_code in (200, 201) and topped.json()["status"] == "succeeded"
    services.product_subscriptions.subscribe_product(ctx, ada, organization_id=org, product="compute",
                                                     project_id=None, start_date=datetime(2026, 2, 1, tzinfo=UTC))
    services.usage.report_usage(ctx, platform, organization_id=org, event_id="thirty", product="compute",
                                quantity=750, occurred_at=datetime(2026, 2, 15, 9, tzinfo=UTC))  # $30
    closed = services.invoicing.close_period(ctx, period="2026-02", organization_id=org)
    invoice = services.invoicing.get_invoice(ctx, ada, organization_id=org, invoice_id=closed.invoice_ids[0])
    assert invoice.credit_applied_cents == 3_000
    wallet = api.client.get(f"/organizations/{org}/billing/overview", headers=owner).json()["wallet"]
    assert wallet["total_credits"] == {"micros": 100 * DOLLAR, "display": "$100.000"}
    assert wallet["remaining_credits"] == {"micros": 70 * DOLLAR, "display": "$70.000"}
    assert wallet["usage_this_period"]["micros"] == 0
