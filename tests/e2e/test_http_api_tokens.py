"""``GET /organizations/{id}/api_tokens`` over HTTP: every member lists the organization's tokens
(oldest first, paged) with kind, user or scopes and status; no secret and no hash appears anywhere
in a body; 401 without a token, 403 for a token that does not read billing, 404 for another
organization's caller (or an unknown organization)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from billing_core import Permission, services
from billing_core.organization import hash_token
from tests.e2e.conftest import Api, World

FIELDS = {"id", "name", "kind", "user_id", "scopes", "created_at", "expires_at", "revoked_at", "status"}


def _url(world: World, org: uuid.UUID | None = None) -> str:
    return f"/organizations/{org or world.org}/api_tokens"


def test_every_member_lists_the_tokens_without_any_secret_or_hash(api: Api, world: World) -> None:
    ctx = api.ctx
    _, expiring = services.organizations.issue_token(ctx, organization_id=world.org, name="nightly job",
                                                     scopes=frozenset({Permission.USAGE_WRITE,
                                                                       Permission.BILLING_READ}),
                                                     expires_at=api.clock.now() + timedelta(hours=1))
    _, revoked = services.organizations.issue_token(ctx, organization_id=world.org, name="old key",
                                                    scopes=frozenset({Permission.USAGE_WRITE}))
    services.organizations.revoke_token(ctx, secret=revoked)
    api.clock.advance(timedelta(hours=1))
    secrets = [*world.tokens.values(), expiring, revoked]

    bodies = {}
    for role in ("primary-owner", "owner", "member"):
        response = api.client.get(_url(world), headers=world.headers(role))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        for secret in secrets:
            assert secret not in response.text and hash_token(secret) not in response.text, role
        bodies[role] = response.json()
    assert bodies["primary-owner"] == bodies["owner"] == bodies["member"]

    body = bodies["member"]
    assert body["next_cursor"] is None
    items = body["items"]
    assert all(set(item) == FIELDS for item in items)
    # The world's tokens share one created_at: the id breaks the tie.
    assert sorted(i["name"] for i in items) == sorted(["primary-owner", "owner", "member", "platform",
                                                       "nightly job", "old key"])
    assert [(i["created_at"], i["id"]) for i in items] == sorted((i["created_at"], i["id"]) for i in items)
    named = {i["name"]: i for i in items}
    me = api.client.get("/me", headers=world.headers("member")).json()
    assert named["member"]["kind"] == "member" and named["member"]["scopes"] == []
    assert f"user:{named['member']['user_id']}" == me["subject"]
    assert named["platform"] == {**named["platform"], "kind": "service", "user_id": None, "scopes": ["usage:write"],
                                 "expires_at": None, "revoked_at": None, "status": "active"}
    assert (named["nightly job"]["scopes"], named["nightly job"]["status"]) == (["billing:read", "usage:write"],
                                                                                "expired")
    assert named["old key"]["status"] == "revoked" and named["old key"]["revoked_at"] is not None
    service = api.client.get("/me", headers=world.headers("service")).json()
    assert named["platform"]["id"] == service["subject"].removeprefix("token:")

    # The other organization's tokens are never among them.
    theirs = api.client.get(_url(world, world.outsider_org), headers=world.headers("outsider")).json()["items"]
    assert theirs and not {i["id"] for i in theirs} & {i["id"] for i in items}

    # Pages follow the cursor.
    first = api.client.get(_url(world), params={"limit": 4}, headers=world.headers("member")).json()
    rest = api.client.get(_url(world), params={"limit": 4, "cursor": first["next_cursor"]},
                          headers=world.headers("member")).json()
    assert first["items"] + rest["items"] == items and rest["next_cursor"] is None


def test_a_service_token_that_reads_billing_lists_them_too(api: Api, world: World) -> None:
    _, reader = services.organizations.issue_token(api.ctx, organization_id=world.org, name="dashboard",
                                                   scopes=frozenset({Permission.BILLING_READ}))
    response = api.client.get(_url(world), headers={"Authorization": f"Bearer {reader}"})
    assert response.status_code == 200, response.text
    assert "dashboard" in [i["name"] for i in response.json()["items"]]


def test_refusals_are_problem_documents(api: Api, world: World) -> None:
    cases = [
        (None, _url(world), 401, "unauthenticated"),
        ("service", _url(world), 403, "permission_denied"),
        ("outsider", _url(world), 404, "not_found"),
        ("primary-owner", _url(world, uuid.uuid4()), 404, "not_found"),
    ]
    for role, url, status, code in cases:
        response = api.client.get(url, headers=world.headers(role))
        assert response.status_code == status, (role, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert (response.json()["status"], response.json()["code"]) == (status, code)
    bad_token = api.client.get(_url(world), headers={"Authorization": "Bearer bc_nope"})
    assert bad_token.status_code == 401
    for params in ({"limit": 0}, {"limit": 201}, {"cursor": "x"}):
        refused = api.client.get(_url(world), params=params, headers=world.headers("member"))
        assert refused.status_code in (400, 422), (params, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
