"""The offline completion route and the Stripe webhook complete a checkout once, through the same
path; a second checkout of a subscribed workspace is a 409, never a second subscription or a 500."""

from __future__ import annotations

import uuid

from billing_core import services
from tests.e2e.conftest import Api, build_world


def test_the_offline_route_and_the_webhook_complete_a_checkout_once(api: Api) -> None:
    world = build_world(api, subscribed=False)
    po = world.headers("primary-owner")
    base = f"/organizations/{world.org}/checkout_sessions"
    first, second = (api.client.post(base, headers=po, json={"plan": "pro", "return_url": "/billing"}).json()
                     for _ in range(2))
    done = api.client.post(f"{base}/{first['id']}/complete", headers=po)
    assert done.status_code == 200 and done.json()["status"] == "complete"
    again = api.client.post(f"{base}/{first['id']}/complete", headers=po)
    assert again.status_code == 200 and again.json()["status"] == "complete"

    with api.ctx.uow() as uow:
        session = uow.checkouts.get(uuid.UUID(first["id"]))
        other = uow.checkouts.get(uuid.UUID(second["id"]))
    assert session.provider_subscription_id == services.checkout.offline_subscription_id(session)
    body, signature = api.payments.event("checkout.session.completed", {
        "id": session.provider_session_id, "object": "checkout.session", "mode": "subscription",
        "subscription": session.provider_subscription_id}, event_id="evt_first")
    hook = api.client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": signature})
    assert hook.status_code == 200 and hook.json()["outcome"] == "processed"  # nothing left to do

    refused = api.client.post(f"{base}/{second['id']}/complete", headers=po)
    assert refused.status_code == 409 and refused.json()["code"] == "already_subscribed"
    body, signature = api.payments.event("checkout.session.completed", {
        "id": other.provider_session_id, "object": "checkout.session", "mode": "subscription",
        "subscription": "sub_second"}, event_id="evt_second")
    hook = api.client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": signature})
    assert hook.status_code == 409 and hook.json()["code"] == "already_subscribed"

    with api.ctx.uow() as uow:
        assert len(uow.plan_subscriptions.list(world.org)) == 1
        assert not uow.inbox.seen("payment_provider", "evt_second")
    assert services.reconcile.reconcile(api.ctx, organization_id=world.org).clean
