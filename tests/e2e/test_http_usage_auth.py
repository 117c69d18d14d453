"""The usage routes check their token in the handler's worker thread (one thread-pool hop): the
answers stay exactly those of the authentication middleware. A bad token is a 401 whatever the body
(broken, mistyped, too large, valid), a revoked token is refused by the very next request, and
nothing is written for a refused request."""

from __future__ import annotations

from typing import Any

import pytest

from billing_core.services import organizations
from tests.e2e.conftest import Api, World

EVENT = {"event_id": "evt-auth", "product": "compute", "quantity": 2}
BODIES: dict[str, tuple[str, bytes | None, Any]] = {
    "valid event": ("/usage/events", None, EVENT),
    "valid batch": ("/usage/events/batch", None, {"events": [EVENT]}),
    "broken json": ("/usage/events", b"{", None),
    "wrong type": ("/usage/events", None, {**EVENT, "quantity": "lots"}),
    "broken batch": ("/usage/events/batch", b"[[[", None),
    "too large": ("/usage/events", b"{" + b" " * (1024 * 1024 + 10) + b"}", None),
    "empty": ("/usage/events", b"", None),
}


def _post(api: Api, world: World, suffix: str, headers: dict[str, str], content: bytes | None, body: Any) -> Any:
    url = f"/organizations/{world.org}{suffix}"
    if content is not None:
        return api.client.post(url, content=content, headers={**headers, "Content-Type": "application/json"})
    return api.client.post(url, json=body, headers=headers)


def _assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


def _wallet(api: Api, world: World) -> tuple[int, int, int]:
    """(balance, unbilled usage, version): every debit changes the version."""
    with api.ctx.uow() as uow:
        wallet = uow.wallets.get(world.org)
        return wallet.wallet_micros, wallet.unbilled_micros, wallet.version


@pytest.mark.parametrize("case", sorted(BODIES))
@pytest.mark.parametrize("auth", ["none", "unknown", "basic", "revoked"])
def test_a_bad_token_is_a_401_whatever_the_body(api: Api, world: World, case: str, auth: str) -> None:
    if auth == "revoked":
        organizations.revoke_token(api.ctx, secret=world.tokens["service"])
    headers = {"none": {}, "unknown": {"Authorization": "Bearer nope"}, "basic": {"Authorization": "Basic eDp5"},
               "revoked": world.headers("service")}[auth]
    before = _wallet(api, world)
    suffix, content, body = BODIES[case]
    _assert_401(_post(api, world, suffix, headers, content, body))
    # Still a 401 with an Idempotency-Key (the middleware then checks the token itself).
    _assert_401(_post(api, world, suffix, {**headers, "Idempotency-Key": f"k-{case}-{auth}"}, content, body))
    assert _wallet(api, world) == before  # nothing was charged


def test_a_revoked_token_is_refused_by_the_next_request(api: Api, world: World) -> None:
    service = world.headers("service")
    before = _wallet(api, world)
    first = _post(api, world, "/usage/events", service, None, EVENT)
    assert first.status_code == 201, first.text
    organizations.revoke_token(api.ctx, secret=world.tokens["service"])
    _assert_401(_post(api, world, "/usage/events", service, None, {**EVENT, "event_id": "evt-after"}))
    _assert_401(_post(api, world, "/usage/events/batch", service, None, {"events": [{**EVENT, "event_id": "e-b"}]}))
    version = _wallet(api, world)[2]
    assert first.json()["amount_micros"] > 0
    assert version == before[2] + 1  # only the first event was charged


def test_a_good_token_reports_with_and_without_an_idempotency_key(api: Api, world: World) -> None:
    service = world.headers("service")
    plain = _post(api, world, "/usage/events", service, None, EVENT)
    assert plain.status_code == 201, plain.text
    assert plain.json()["replayed"] is False
    keyed = {**service, "Idempotency-Key": "evt-keyed"}
    event = {**EVENT, "event_id": "evt-keyed"}
    stored = _post(api, world, "/usage/events", keyed, None, event)
    again = _post(api, world, "/usage/events", keyed, None, event)
    assert stored.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true" and again.content == stored.content
    batch = _post(api, world, "/usage/events/batch", service, None, {"events": [{**EVENT, "event_id": "evt-b1"}]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["results"][0]["allowed"] is True
    # A good token with a bad body gets the body's own problem, as before.
    assert _post(api, world, "/usage/events", service, b"{", None).status_code == 400
    assert _post(api, world, "/usage/events", service, None, {**EVENT, "quantity": "x"}).status_code == 422
