"""Credit grants over HTTP (ADR 0016): a token with ``credits:grant`` grants promotional credits
(the Idempotency-Key names the grant), no role may, every member reads the grants with their
source, remaining and expiry, and an outsider gets 404."""

from __future__ import annotations

from datetime import timedelta

from billing_core import Permission, services
from tests.e2e.conftest import Api, World


def test_grant_and_list_over_http(api: Api, world: World) -> None:
    org = world.org
    base = f"/organizations/{org}/credits/grants"
    _, secret = services.organizations.issue_token(api.ctx, organization_id=org, name="back office",
                                                   scopes=frozenset({Permission.CREDITS_GRANT}))
    granter = {"Authorization": f"Bearer {secret}"}
    expires = api.clock.now() + timedelta(days=30)
    body = {"amount_micros": 7_000_000, "description": "Launch week", "expires_at": expires.isoformat(),
            "priority": 1}
    first = api.client.post(base, headers={**granter, "Idempotency-Key": "launch-week"}, json=body)
    assert first.status_code == 201, first.text
    made = first.json()
    grant = made["grant"]
    assert grant["source"] == "promotion" and grant["status"] == "active" and grant["priority"] == 1
    assert grant["amount"]["micros"] == grant["remaining"]["micros"] == 7_000_000
    assert made["paid_uncovered"]["micros"] == 0
    again = api.client.post(base, headers={**granter, "Idempotency-Key": "launch-week"}, json=body)
    assert again.status_code in (200, 201) and again.json()["grant"]["id"] == grant["id"]

    for role in ("primary-owner", "owner", "member", "service"):
        denied = api.client.post(base, headers=world.headers(role), json=body)
        assert denied.status_code == 403, (role, denied.text)
    bad = api.client.post(base, headers=granter, json={**body, "expires_at": "2020-01-01T00:00:00Z"})
    assert bad.status_code == 422 and bad.json()["field"] == "expires_at"

    for role in ("primary-owner", "owner", "member"):
        listed = api.client.get(base, headers=world.headers(role))
        assert listed.status_code == 200, listed.text
        items = {g["id"]: g for g in listed.json()["items"]}
        assert items[grant["id"]]["remaining"]["micros"] == 7_000_000
        assert {g["source"] for g in items.values()} >= {"promotion", "purchase", "trial"}
    assert api.client.get(base, headers=world.headers("outsider")).status_code == 404
    report = services.reconcile.reconcile(api.ctx, organization_id=org)
    assert report.clean, report
