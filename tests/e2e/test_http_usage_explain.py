"""``GET /organizations/{id}/usage/events/{event_id}`` (issue 21, Explain): the chain of one recorded
usage event, for whoever reads usage; an unknown or denied event is a 404 problem document."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.conftest import Api, World

PRICE = 40_000  # compute, per vCPU-hour


def test_an_invoiced_event_explained_over_http(api: Api, world: World) -> None:
    response = api.client.get(f"/organizations/{world.org}/usage/events/evt-february",
                              headers=world.headers("member"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event"]["event_id"] == "evt-february" and body["event"]["quantity"] == 25
    assert (body["event"]["product"], body["event"]["product_name"]) == ("compute", "Compute")
    assert body["event"]["occurred_at"] == "2026-02-15T09:00:00Z"
    assert body["price"]["unit_price"] == {"micros": PRICE, "display": "$0.040"}
    assert body["price"]["amount"]["micros"] == 25 * PRICE and body["price"]["unit"] == "vCPU-hour"
    assert body["debit"]["idempotency_key"] == "usage:evt-february"
    assert body["debit"]["amount"]["micros"] == 25 * PRICE
    line = body["invoice_line"]
    assert line["invoice_id"] == str(world.invoice_id) and line["number"] is not None
    assert line["period_start"] == "2026-02-01T00:00:00Z" and line["period_end"] == "2026-03-01T00:00:00Z"
    assert (line["quantity"], line["usage"]["micros"], line["amount"]) == (
        25, 25 * PRICE, {"cents": 25 * PRICE // 10_000, "currency_iso": "USD"})
    assert body["hold"] is None and body["refunds"] == []


def test_a_settled_and_refunded_hold_event_over_http(api: Api, world: World) -> None:
    service, base = world.headers("service"), f"/organizations/{world.org}/usage"
    settled = api.client.post(f"{base}/holds/{world.extra['hold']}/settle", headers=service,
                              json={"event_id": "gen-explained", "quantity": 3})
    assert settled.status_code == 200, settled.text
    api.clock.advance(timedelta(minutes=1))
    refunded = api.client.post(f"{base}/events/gen-explained/refund", headers=service,
                               json={"reason": "generation failed"})
    assert refunded.status_code == 200, refunded.text
    body = api.client.get(f"{base}/events/gen-explained", headers=world.headers("owner")).json()
    assert body["hold"]["hold_id"] == world.extra["hold"] and body["hold"]["status"] == "settled"
    assert body["hold"]["held"]["micros"] == 5 * PRICE and body["hold"]["charged"]["micros"] == 3 * PRICE
    assert body["hold"]["overrun_rule"] is None, "settled within the hold"
    assert body["debit"]["balance_after"] == settled.json()["balance"]
    assert [(r["reason"], r["amount"]["micros"]) for r in body["refunds"]] == [("generation failed", 3 * PRICE)]
    assert body["refunds"][0]["balance_after"]["micros"] == refunded.json()["balance"]["micros"]
    row = api.client.get(f"{base}/events/gen-explained:refund", headers=world.headers("owner")).json()
    assert row["event"]["refund_of"] == "gen-explained" and row["debit"] is None


def test_unknown_and_other_organizations_events_are_404_problems(api: Api, world: World) -> None:
    unknown = api.client.get(f"/organizations/{world.org}/usage/events/nope", headers=world.headers("member"))
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    problem = unknown.json()
    assert problem["code"] == "usage_event_not_found" and problem["status"] == 404
    assert "denied events are not stored" in problem["detail"]
    # The other organization's own event, asked through its own route with this org's token: 404.
    outsider = api.client.get(f"/organizations/{world.outsider_org}/usage/events/evt-world",
                              headers=world.headers("member"))
    assert outsider.status_code == 404 and outsider.json()["code"] == "not_found"
    # This organization's event asked by the other organization about itself: not stored there.
    elsewhere = api.client.get(f"/organizations/{world.outsider_org}/usage/events/evt-world",
                               headers=world.headers("outsider"))
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "usage_event_not_found"
    bad = api.client.get(f"/organizations/{world.org}/usage/events/{'x' * 129}", headers=world.headers("member"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_event_id"
    denied = api.client.get(f"/organizations/{world.org}/usage/events/evt-world", headers=world.headers("service"))
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
