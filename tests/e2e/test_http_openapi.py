"""The OpenAPI document (``GET /openapi.json``) says what the app really answers: every error status is
declared as the problem document it is, and every request body is declared closed, as it is parsed.

(``tests/reliability/test_openapi_schemathesis.py`` fuzzes every operation against the document.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from billing_core.errors import ProviderUnavailable
from tests.e2e.conftest import Api, World

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _document(api: Api) -> dict[str, Any]:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch"}:
                yield f"{method.upper()} {path}", operation


def _refs(schema: dict[str, Any]) -> Iterator[str]:
    if "$ref" in schema:
        yield schema["$ref"].rsplit("/", 1)[-1]
    for option in schema.get("oneOf", []):
        yield from _refs(option)


def test_every_error_status_is_declared_as_a_problem_document(api: Api, world: World) -> None:
    document = _document(api)
    declared_400 = 0
    for label, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response.get("content") == PROBLEM, (label, status, response)
        declared_400 += "400" in operation["responses"]
    # Litestar declares a 400 `{status_code, detail}` JSON body of its own on routes with parameters; the
    # app answers a malformed body with a 400 problem document instead, and that is what is declared.
    assert declared_400 > 40
    malformed = api.client.put(f"/organizations/{world.org}/billing_email", content=b"{not json",
                               headers=world.headers("owner", **{"Content-Type": "application/json"}))
    assert malformed.status_code == 400 and malformed.headers["content-type"] == "application/problem+json"
    assert malformed.json()["code"] == "malformed_body"


def test_request_bodies_are_declared_closed_as_they_are_parsed(api: Api, world: World) -> None:
    document = _document(api)
    schemas = document["components"]["schemas"]
    bodies = {name for _, operation in _operations(document) if "requestBody" in operation
              for name in _refs(operation["requestBody"]["content"]["application/json"]["schema"])}
    assert {"BillingEmailBody", "UsageEventBody", "UsageBatchBody", "EndProductSubscriptionBody"} <= bodies
    for name in bodies:
        assert schemas[name]["additionalProperties"] is False, name
    # Nested bodies too: a batch's events are closed like a single event.
    assert schemas["UsageBatchBody"]["properties"]["events"]["items"] == {"$ref": "#/components/schemas/UsageEventBody"}
    # Response bodies stay open: a client must accept fields added later.
    assert "additionalProperties" not in schemas["PaymentOut"]
    extra = api.client.put(f"/organizations/{world.org}/billing_email", json={"email": "a@example.com", "cc": "x"},
                           headers=world.headers("owner"))
    assert extra.status_code == 422 and extra.json()["field"] == "cc"


def test_every_authenticated_mutation_declares_the_idempotency_key_and_its_answers(api: Api, world: World) -> None:
    document = _document(api)
    mutations = 0
    for label, operation in _operations(document):
        method = label.split(" ", 1)[0]
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        if method == "GET" or operation.get("security") == []:
            # Reads, the Stripe webhook and the public guest checkout are not behind the middleware.
            assert not [p for p in headers if p["name"] == "Idempotency-Key"], label
            continue
        mutations += 1
        (key,) = [p for p in headers if p["name"] == "Idempotency-Key"]
        assert key["required"] is False and key["schema"]["maxLength"] == 255, label
        assert {"409", "413", "422"} <= operation["responses"].keys(), label
    assert mutations >= 25
    # The spend guard's question is a POST too: a key reused with another body is the declared 409.
    url = f"/organizations/{world.org}/usage/authorize"
    service = world.headers("service", **{"Idempotency-Key": "ask-once"})
    assert api.client.post(url, json={"amount_micros": 1}, headers=service).status_code == 200
    reused = api.client.post(url, json={"amount_micros": 2}, headers=service)
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert reused.headers["content-type"] == "application/problem+json"


def test_routes_that_take_no_token_say_so(api: Api) -> None:
    document = _document(api)
    assert document["security"] == [{"BearerToken": []}]
    public = {label for label, operation in _operations(document) if operation.get("security") == []}
    assert public == {"GET /healthz", "GET /readyz", "GET /metrics", "POST /webhooks/stripe",
                      "POST /guest_checkout_sessions"}
    assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/readyz").status_code == 200
    assert api.client.get("/metrics").status_code == 200


def test_a_remote_outage_is_a_declared_503(api: Api, world: World) -> None:
    document = _document(api)
    for label, operation in _operations(document):
        calls_out = label.split(" ", 1)[0] != "GET" or label.endswith("/invoices/download")
        if calls_out and label != "POST /organizations/{organization_id}/usage/authorize":
            assert operation["responses"].get("503", {}).get("content") == PROBLEM, label
    api.payments.fail_with = ProviderUnavailable("the payment provider is down")
    try:
        for method, path in (("POST", "/payment_methods/payment_intent"),
                             ("PUT", f"/payment_methods/{world.second_payment_method_id}/set_default")):
            response = api.client.request(method, f"/organizations/{world.org}{path}", headers=world.headers("owner"))
            assert response.status_code == 503 and response.json()["code"] == "provider_unavailable", response.text
            assert response.headers["content-type"] == "application/problem+json"
    finally:
        api.payments.fail_with = None


def test_a_replayed_usage_event_is_the_declared_200(api: Api, world: World) -> None:
    responses = _document(api)["paths"]["/organizations/{organization_id}/usage/events"]["post"]["responses"]
    outcome = {"application/json": {"schema": {"$ref": "#/components/schemas/UsageOutcomeOut"}}}
    assert responses["201"]["content"] == responses["200"]["content"] == outcome
    url, event = f"/organizations/{world.org}/usage/events", {"event_id": "evt-twice", "product": "compute",
                                                             "quantity": 1}
    first = api.client.post(url, json=event, headers=world.headers("service"))
    again = api.client.post(url, json=event, headers=world.headers("service"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True and again.headers["content-type"] == "application/json"


def test_the_stripe_webhook_declares_what_a_signed_event_can_answer(api: Api) -> None:
    responses = _document(api)["paths"]["/webhooks/stripe"]["post"]["responses"]
    payload, signature = api.payments.event("checkout.session.completed", {"object": "checkout.session"})
    incomplete = api.client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
    assert incomplete.status_code == 422 and incomplete.json()["field"] == "data.object.id"
    assert responses["422"]["content"] == PROBLEM
    unsigned = api.client.post("/webhooks/stripe", content=payload)
    assert unsigned.status_code == 400 and responses["400"]["content"] == PROBLEM
