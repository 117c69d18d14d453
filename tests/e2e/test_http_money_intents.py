"""Over HTTP, the Idempotency-Key names the money operation (ADR 0009): a refund answered 503
while the provider was down is finished, not repeated, by the retry with the same key; a plan
change replayed answers with its one invoice and a stale one is a 409."""

from __future__ import annotations

from datetime import timedelta

from billing_core.errors import ProviderUnavailable
from tests.e2e.conftest import Api, World
from tests.e2e.test_http_api import _assert_problem, _org


def test_a_refund_retried_with_its_key_after_an_outage_is_finished_once(api: Api, world: World) -> None:
    owner = {**world.headers("primary-owner"), "Idempotency-Key": "refund-1"}
    body = {"payment_id": str(world.payment_id), "reason": "unused"}
    api.payments.fail_with = ProviderUnavailable()
    down = api.client.post(_org(world, "/refunds"), json=body, headers=owner)
    _assert_problem(down, 503, "provider_unavailable")
    listed = api.client.get(_org(world, "/refunds"), headers=world.headers("member")).json()["items"]
    assert [r["status"] for r in listed] == ["pending"]
    api.payments.fail_with = None
    again = api.client.post(_org(world, "/refunds"), json=body, headers=owner)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == listed[0]["id"]
    assert again.json()["status"] == "succeeded" and again.json()["provider_refund_id"]
    assert len(api.payments.refunds) == 1
    replay = api.client.post(_org(world, "/refunds"), json=body, headers=owner)
    assert replay.json() == again.json() and replay.headers["Idempotent-Replayed"] == "true"
    listed = api.client.get(_org(world, "/refunds"), headers=world.headers("member")).json()["items"]
    assert [r["status"] for r in listed] == ["succeeded"]
    other_key = api.client.post(_org(world, "/refunds"), json=body,
                                headers={**world.headers("primary-owner"), "Idempotency-Key": "refund-2"})
    assert other_key.json()["status"] == "denied" and len(api.payments.refunds) == 1


def test_a_plan_change_replayed_keeps_its_invoice_and_a_stale_one_conflicts(api: Api, world: World) -> None:
    po = world.headers("primary-owner")
    api.clock.advance(timedelta(days=3))
    at = api.client.post(_org(world, "/subscription/change/preview"), json={"plan": "scale"},
                         headers=po).json()["at"]
    first = api.client.post(_org(world, "/subscription/change"), json={"plan": "scale", "preview_at": at},
                            headers=po)
    again = api.client.post(_org(world, "/subscription/change"), json={"plan": "scale", "preview_at": at},
                            headers=po)
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert len(api.payments.plan_swaps) == 1
    stale = api.client.post(_org(world, "/subscription/change"), json={"plan": "enterprise", "preview_at": at},
                            headers=po)
    _assert_problem(stale, 409, "plan_changed")
    assert len(api.payments.plan_swaps) == 1


def test_credits_retried_with_their_key_after_an_outage_are_one_payment_charged_once(api: Api,
                                                                                    world: World) -> None:
    owner = {**world.headers("primary-owner"), "Idempotency-Key": "credits-1"}
    before = api.client.get(_org(world, "/payments?limit=200"), headers=world.headers("member")).json()["items"]
    api.payments.fail_with = ProviderUnavailable()
    down = api.client.post(_org(world, "/credits"), json={"amount": "20.00"}, headers=owner)
    _assert_problem(down, 503, "provider_unavailable")
    api.payments.fail_with = None
    charges = len(api.payments.charge_requests)
    again = api.client.post(_org(world, "/credits"), json={"amount": "20.00"}, headers=owner)
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "succeeded"
    assert len(api.payments.charge_requests) == charges + 1
    after = api.client.get(_org(world, "/payments?limit=200"), headers=world.headers("member")).json()["items"]
    assert {p["id"] for p in after} - {p["id"] for p in before} == {again.json()["id"]}
    assert len(after) == len(before) + 1
    other = api.client.post(_org(world, "/credits"), json={"amount": "25.00"}, headers=owner)
    _assert_problem(other, 409, "idempotency_key_reused")
