"""Holds over HTTP (ADR 0011): the Idempotency-Key names the hold, a denial is a 402 with the
spend guard's reason, settle and release are idempotent, and the overview shows what is held."""

from __future__ import annotations

from tests.e2e.conftest import Api, World


def test_hold_settle_release_over_http(api: Api, world: World) -> None:
    org, service = world.org, world.headers("service")
    base = f"/organizations/{org}/usage/holds"
    before = api.client.get(f"/organizations/{org}/billing/overview", headers=world.headers("primary-owner")).json()
    first = api.client.post(base, headers={**service, "Idempotency-Key": "call-1"},
                            json={"product": "compute", "max_quantity": 100, "ttl_seconds": 600})
    assert first.status_code == 201, first.text
    hold = first.json()
    assert hold["status"] == "active" and hold["held"]["micros"] == 100 * 40_000
    again = api.client.post(base, headers={**service, "Idempotency-Key": "call-1"},
                            json={"product": "compute", "max_quantity": 100, "ttl_seconds": 600})
    assert again.json()["id"] == hold["id"]
    after = api.client.get(f"/organizations/{org}/billing/overview", headers=world.headers("primary-owner")).json()
    assert after["wallet"]["held"]["micros"] == before["wallet"]["held"]["micros"] + 4_000_000
    assert after["wallet"]["available_to_use"]["micros"] == before["wallet"]["available_to_use"]["micros"] - 4_000_000

    too_big = api.client.post(base, headers=service, json={"product": "compute", "amount_micros": 10**12})
    assert too_big.status_code == 402 and too_big.json()["code"] == "insufficient_credit"

    settle = f"{base}/{hold['id']}/settle"
    settled = api.client.post(settle, headers=service, json={"event_id": "gen-http-1", "quantity": 130})
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert body["status"] == "settled" and body["overrun_rule"] == "cap_at_hold"
    assert (body["charged"]["micros"], body["uncharged"]["micros"]) == (4_000_000, 30 * 40_000)
    replay = api.client.post(settle, headers=service, json={"event_id": "gen-http-1", "quantity": 130}).json()
    assert replay["replayed"] and replay["balance"] == body["balance"]
    assert api.client.delete(f"{base}/{hold['id']}", headers=service).json()["code"] == "hold_settled"

    other = api.client.post(base, headers=service, json={"product": "compute", "max_quantity": 5}).json()
    released = api.client.delete(f"{base}/{other['id']}", headers=service)
    assert released.status_code == 200 and released.json()["status"] == "released"
    assert api.client.delete(f"{base}/{other['id']}", headers=service).json()["replayed"]
    assert api.client.get(f"{base}/{other['id']}", headers=service).json()["status"] == "released"
    late = api.client.post(f"{base}/{other['id']}/settle", headers=service, json={"event_id": "late", "quantity": 1})
    assert late.status_code == 409 and late.json()["code"] == "hold_released"

    owner = world.headers("primary-owner")
    assert api.client.put(f"/organizations/{org}/hold_overrun", headers=owner,
                          json={"hold_overrun": "nope"}).status_code == 422
    assert api.client.put(f"/organizations/{org}/hold_overrun", headers=owner,
                          json={"hold_overrun": "reject"}).json() == {"hold_overrun": "reject"}
