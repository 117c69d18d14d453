"""Project and token budgets over HTTP (ADR 0017): the routes and their permissions, 422 codes,
404 for an unknown token, and the 402 problem body naming the budget reached."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import Api, World

PRICE = 40_000  # compute, per vCPU-hour


def test_budget_routes_permissions_and_the_402_body(api: Api, world: World) -> None:
    org, service, owner = world.org, world.headers("service"), world.headers("primary-owner")
    base = f"/organizations/{org}/spend/budgets"
    token_id = api.client.get("/me", headers=service).json()["subject"].removeprefix("token:")
    seeded = api.client.get(base, headers=world.headers("member")).json()["items"]
    assert [b["scope"] for b in seeded] == ["project"], "members read (the world has one project budget)"
    assert api.client.put(f"{base}/token/{token_id}", headers=world.headers("owner"),
                          json={"daily_micros": PRICE}).status_code == 403, "managing spend is the primary owner's"
    assert api.client.put(f"{base}/token/{uuid.uuid4()}", headers=owner,
                          json={"daily_micros": PRICE}).status_code == 404, "unknown token"
    bad_scope = api.client.put(f"{base}/team/{uuid.uuid4()}", headers=owner, json={"daily_micros": PRICE})
    assert bad_scope.status_code == 422 and bad_scope.json()["code"] == "invalid_budget_scope"
    bad_limit = api.client.put(f"{base}/project/{uuid.uuid4()}", headers=owner, json={"daily_micros": 0})
    assert bad_limit.status_code == 422 and bad_limit.json()["code"] == "invalid_budget_limit"
    assert bad_limit.headers["content-type"].startswith("application/problem+json")

    # The world's hold was placed with this token: a new budget would count it as held (ADR 0017, 8).
    # Release it, so that this budget counts only the events below.
    assert api.client.delete(f"/organizations/{org}/usage/holds/{world.extra['hold']}",
                             headers=service).status_code == 200
    made = api.client.put(f"{base}/token/{token_id}", headers=owner, json={"daily_micros": 2 * PRICE})
    assert made.status_code == 201, made.text
    assert made.json()["daily_micros"] == 2 * PRICE and made.json()["monthly_micros"] is None
    assert made.json()["reached"] is None, "a new budget is open"
    assert api.client.put(f"{base}/token/{token_id}", headers=owner,
                          json={"daily_micros": 2 * PRICE}).status_code == 200

    events = f"/organizations/{org}/usage/events"
    assert api.client.post(events, headers=service, json={"event_id": "b-1", "product": "compute",
                                                          "quantity": 3}).status_code == 201, "crossing call runs"
    denied = api.client.post(events, headers=service, json={"event_id": "b-2", "product": "compute", "quantity": 1})
    assert denied.status_code == 402, denied.text
    problem = denied.json()
    assert problem["code"] == "token_daily_budget_reached"
    assert problem["budget"]["scope"] == "token" and problem["budget"]["scope_id"] == token_id
    assert problem["budget"]["period"] == "day"
    assert (problem["budget"]["limit_micros"], problem["budget"]["spent_micros"],
            problem["budget"]["held_micros"]) == (2 * PRICE, 3 * PRICE, 0)
    assert problem["budget"]["retry_at"] == problem["retry_at"]
    listed = api.client.get(base, headers=owner).json()["items"]
    assert [(b["scope"], b["spent_today_micros"]) for b in listed if b["scope"] == "token"] == [("token", 3 * PRICE)]
    reached = next(b["reached"] for b in listed if b["scope"] == "token")
    assert reached == problem["budget"], "the list names the reached cap as the 402 did"
    one = api.client.get(f"{base}/token/{token_id}", headers=world.headers("member"))
    assert one.status_code == 200 and one.json()["spent_today_micros"] == 3 * PRICE

    assert api.client.delete(f"{base}/token/{token_id}", headers=world.headers("member")).status_code == 403
    assert api.client.delete(f"{base}/token/{token_id}", headers=owner).status_code == 204
    assert api.client.delete(f"{base}/token/{token_id}", headers=owner).status_code == 404
    assert api.client.post(events, headers=service, json={"event_id": "b-3", "product": "compute",
                                                          "quantity": 1}).status_code == 201


def test_authorize_asks_the_project_budget(api: Api, world: World) -> None:
    org, service, owner = world.org, world.headers("service"), world.headers("primary-owner")
    project = uuid.uuid4()
    assert api.client.put(f"/organizations/{org}/spend/budgets/project/{project}", headers=owner,
                          json={"daily_micros": PRICE}).status_code == 201
    asked = f"/organizations/{org}/usage/authorize"
    assert api.client.post(asked, headers=service, json={"amount_micros": PRICE, "project_id": str(project)}
                           ).json()["allowed"]
    assert api.client.post(f"/organizations/{org}/usage/events", headers=service,
                           json={"event_id": "p-1", "product": "compute", "quantity": 1,
                                 "project_id": str(project)}).status_code == 201
    denied = api.client.post(asked, headers=service, json={"amount_micros": 0, "project_id": str(project)}).json()
    assert not denied["allowed"] and denied["reason"] == "project_daily_budget_reached"
    assert api.client.post(asked, headers=service, json={"amount_micros": 0}).json()["allowed"]
