"""/me, guest checkout claimed on a verified login, and the webhook signing secret over HTTP."""

from __future__ import annotations

import uuid

from adapters.webhooks.signature import sign, verify
from billing_core import services
from tests.e2e.conftest import Api, build_world


def test_me_tells_organization_role_and_permissions(api: Api) -> None:
    world = build_world(api)
    member = api.client.get("/me", headers=world.headers("member")).json()
    assert member["organization_id"] == str(world.org)
    assert member["role"] == "member"
    assert member["permissions"] == ["billing:read"]
    service = api.client.get("/me", headers=world.headers("service")).json()
    assert service["role"] is None
    assert "usage:write" in service["permissions"]
    assert api.client.get("/me").status_code == 401


def test_guest_checkout_is_claimed_by_the_verified_login_with_that_email(api: Api) -> None:
    world = build_world(api, subscribed=False)
    po = world.headers("primary-owner")
    email = api.client.get("/me", headers=po).json()["email"]
    started = api.client.post("/guest_checkout_sessions",
                              json={"email": email.upper(), "plan": "starter", "return_url": "/pricing"})
    assert started.status_code == 201, started.text
    bad = api.client.post("/guest_checkout_sessions", json={"email": "nope", "plan": "starter", "return_url": "/p"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "email"

    session_id = uuid.UUID(started.json()["id"])
    with api.ctx.uow() as uow:
        provider_session = uow.checkouts.get(session_id).provider_session_id
    payload, signature = api.payments.event("checkout.session.completed", {
        "id": provider_session, "object": "checkout.session", "mode": "subscription", "subscription": "sub_guest"})
    assert api.client.post("/webhooks/stripe", content=payload,
                           headers={"Stripe-Signature": signature}).json()["outcome"] == "processed"

    member_claim = api.client.post("/me/claim_guest_checkouts", headers=world.headers("member")).json()
    assert member_claim == {"claimed": []}
    claimed = api.client.post("/me/claim_guest_checkouts", headers=po).json()["claimed"]
    assert [c["id"] for c in claimed] == [str(session_id)]
    subscription = api.client.get(f"/organizations/{world.org}/subscription", headers=po).json()["subscription"]
    assert subscription["plan"] == "starter"
    assert api.client.post("/me/claim_guest_checkouts", headers=po).json() == {"claimed": []}


def test_webhook_secret_verifies_signatures_and_rotates(api: Api) -> None:
    world = build_world(api)
    path = f"/organizations/{world.org}/webhook_secret"
    secret = api.client.get(path, headers=world.headers("primary-owner")).json()["secret"]
    assert api.client.get(path, headers=world.headers("member")).status_code == 403
    body = b'{"type":"spend.daily_budget_reached"}'
    assert verify(secret, "v1=" + sign(secret, 1_700_000_000, body), 1_700_000_000, body, now=1_700_000_000)
    rotated = api.client.post(path + "/rotate", headers=world.headers("primary-owner")).json()["secret"]
    assert rotated != secret
    assert services.organizations.webhook_secret(
        api.ctx, services.organizations.authenticate(api.ctx, world.tokens["primary-owner"]),
        organization_id=world.org) == rotated
