"""Batched usage ingestion over HTTP: validated whole, debited one by one, replays recognised."""

from __future__ import annotations

from tests.e2e.conftest import Api, build_world


def test_batch_bills_what_the_wallet_allows_and_names_bad_events(api: Api) -> None:
    world = build_world(api)
    svc = world.headers("service")
    path = f"/organizations/{world.org}/usage/events/batch"
    overview = f"/organizations/{world.org}/billing/overview"
    before = api.client.get(overview, headers=world.headers("member")).json()["credit_balance"]["micros"]

    bad = api.client.post(path, headers=svc, json={"events": [
        {"event_id": "b-1", "product": "compute", "quantity": 1},
        {"event_id": "b-2", "product": "compute", "quantity": -3}]})
    assert bad.status_code == 422
    assert bad.json()["field"] == "events[1].quantity"
    twice = api.client.post(path, headers=svc, json={"events": [
        {"event_id": "b-1", "product": "compute", "quantity": 1},
        {"event_id": "b-1", "product": "compute", "quantity": 1}]})
    assert twice.status_code == 422
    assert twice.json()["field"] == "events[1].event_id"
    assert api.client.get(overview, headers=world.headers("member")).json()["credit_balance"]["micros"] == before

    events = [{"event_id": f"b-{n}", "product": "compute", "quantity": 5} for n in range(10)]
    first = api.client.post(path, headers=svc, json={"events": events})
    assert first.status_code == 200, first.text
    results = first.json()["results"]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in events]
    billed = sum(r["amount_micros"] for r in results if r["allowed"])
    after = api.client.get(overview, headers=world.headers("member")).json()["credit_balance"]["micros"]
    assert before - after == billed
    denied = [r for r in results if not r["allowed"]]
    assert all(r["reason"] for r in denied)

    replay = api.client.post(path, headers=svc, json={"events": events[:3]}).json()["results"]
    assert [r["replayed"] for r in replay] == [r["allowed"] for r in results[:3]]
    assert api.client.get(overview, headers=world.headers("member")).json()["credit_balance"]["micros"] == after
