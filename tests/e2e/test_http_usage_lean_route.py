"""The fast path in front of Litestar for ``POST …/usage/events`` (``entrypoints.http.hot_route``,
ADR 0018) answers exactly what the Litestar route answers.

Two apps over one container (the same storage and clock): one with the fast path, one without
(``BILLING_HTTP_FAST_PATH=false``). Each gets its own organization, seeded alike, and every request
is sent to both; status, headers and body must be byte for byte the same (the organization's own
id swapped where it appears). Counters on the fast path tell which requests it answered itself and
which it passed on to Litestar.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from billing_core.payloads import nesting_bound
from billing_core.services import organizations
from entrypoints.http.app import create_app
from entrypoints.http.hot_route import BATCH_ROUTE_TEMPLATE, ROUTE_TEMPLATE, UsageEventsFastPath
from entrypoints.http.schemas import UsageBatchBody, UsageEventBody
from tests.e2e.conftest import Api, World, build_world

EVENT = {"event_id": "evt-lean", "product": "compute", "quantity": 2}


@dataclass
class Side:
    client: TestClient[Litestar]
    world: World

    def post(self, body: Any = None, *, role: str | None = "service", content: bytes | None = None,
             headers: dict[str, str] | None = None, org: str | None = None, suffix: str = "") -> Any:
        url = f"/organizations/{org or self.world.org}/usage/events{suffix}"
        sent = {**self.world.headers(role), **(headers or {})}
        if content is not None:
            return self.client.post(url, content=content, headers={"Content-Type": "application/json", **sent})
        return self.client.post(url, json=body, headers=sent)


@dataclass
class Pair:
    fast: Side
    lean: UsageEventsFastPath
    litestar: Side

    def same(self, body: Any = None, **options: Any) -> Any:
        """Send one request to both apps; assert identical answers; return the fast path's."""
        fast, slow = self.fast.post(body, **options), self.litestar.post(body, **options)
        assert fast.status_code == slow.status_code, (fast.text, slow.text)
        assert _headers(fast) == _headers(slow)
        own, other = str(self.fast.world.org).encode(), str(self.litestar.world.org).encode()
        assert fast.content.replace(own, other) == slow.content
        return fast


def _headers(response: Any) -> list[tuple[str, str]]:
    return sorted((name.lower(), value) for name, value in response.headers.multi_items())


@pytest.fixture
def pair(api: Api) -> Iterator[Pair]:
    app = api.client.app
    lean = app.asgi_handler
    assert isinstance(lean, UsageEventsFastPath)  # on by default
    with TestClient(create_app(api.container, fast_path=False)) as slow_client:
        assert not isinstance(slow_client.app.asgi_handler, UsageEventsFastPath)
        yield Pair(fast=Side(api.client, build_world(api)), lean=lean,
                   litestar=Side(slow_client, build_world(api)))


def _served(pair: Pair) -> tuple[int, int]:
    return pair.lean.served, pair.lean.passed_on


def test_success_and_replay_are_byte_identical(pair: Pair) -> None:
    before = _served(pair)
    first = pair.same(EVENT)
    assert first.status_code == 201
    assert first.headers["content-type"] == "application/json"
    assert first.json()["replayed"] is False and first.json()["amount_micros"] > 0
    replay = pair.same(EVENT)
    assert replay.status_code == 200
    assert replay.content == first.content.replace(b'"replayed":false', b'"replayed":true')
    assert pair.same({**EVENT, "event_id": "evt-lean-2", "occurred_at": "2026-03-10T11:00:00+01:00"}).status_code == 201
    assert _served(pair) == (before[0] + 3, before[1])  # the fast path answered all three itself


def test_a_denied_debit_is_the_same_402(pair: Pair) -> None:
    denied = pair.same({**EVENT, "event_id": "evt-huge", "quantity": 10**9})
    assert denied.status_code == 402
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.json()["code"] == "insufficient_credit"
    assert pair.lean.served >= 1
    # A denial wrote nothing: the same id can be reported again at an affordable quantity.
    assert pair.same({**EVENT, "event_id": "evt-huge"}).status_code == 201


@pytest.mark.parametrize(("role", "status"), [("member", 403), ("outsider-service", 404), ("outsider", 404)])
def test_permission_and_organization_errors(pair: Pair, role: str, status: int) -> None:
    served = pair.lean.served
    answer = pair.same(EVENT, role=role)
    assert answer.status_code == status, answer.text
    assert pair.lean.served == served + 1


def test_an_unknown_or_revoked_token_is_the_same_401(pair: Pair) -> None:
    assert pair.same(EVENT, role=None, headers={"Authorization": "Bearer nope"}).status_code == 401
    for side in (pair.fast, pair.litestar):
        organizations.revoke_token(side.client.app.state["runtime"].ctx, secret=side.world.tokens["service"])
    revoked = pair.same(EVENT)
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"].startswith("Bearer")
    # Whatever the body: a broken one is passed on, and Litestar checks the token first.
    assert pair.same(role=None, content=b"{", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.parametrize(("name", "body", "content", "status"), [
    ("negative quantity", {**EVENT, "quantity": -1}, None, 422),
    ("unknown product", {**EVENT, "product": "nope"}, None, 422),
    ("datetime without offset", {**EVENT, "occurred_at": "2026-03-10T11:00:00"}, None, 422),
    ("quantity as a string", {**EVENT, "quantity": "2"}, None, 422),
    ("quantity as a float", None, b'{"event_id":"e","product":"compute","quantity":2.0}', 422),
    ("missing field", {"event_id": "e", "product": "compute"}, None, 422),
    ("unknown field", {**EVENT, "colour": "red"}, None, 422),
    ("not an object", [EVENT], None, 422),
    ("broken json", None, b'{"event_id":', 400),
    ("too deep", None, b"[" * 100 + b"]" * 100, 400),
    ("empty", None, b"", 422),
    ("too large", None, b"{" + b" " * (1024 * 1024 + 10) + b"}", 413),
])
def test_bad_bodies_are_the_same_problem(pair: Pair, name: str, body: Any, content: bytes | None,
                                         status: int) -> None:
    answer = pair.same(body, content=content)
    assert answer.status_code == status, (name, answer.text)
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("name", "options"), [
    ("no token", {"role": None}),
    ("basic auth", {"role": None, "headers": {"Authorization": "Basic eDp5"}}),
    ("idempotency key", {"headers": {"Idempotency-Key": "k-lean"}}),
    ("form content type", {"content": b"event_id=e", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("json with charset", {"content": b'{"event_id":"evt-cs","product":"compute","quantity":1}',
                           "headers": {"Content-Type": "application/json; charset=utf-8"}}),
    ("query string", {"suffix": "?x=1"}),
    ("trailing slash", {"suffix": "/"}),
])
def test_unusual_requests_go_to_litestar(pair: Pair, name: str, options: dict[str, Any]) -> None:
    served, passed = _served(pair)
    answer = pair.same(EVENT, **options)
    assert answer.status_code in (201, 400, 401, 404, 405, 415, 422), (name, answer.text)
    assert pair.lean.served == served
    assert pair.lean.passed_on >= passed  # a path it does not recognise is not even counted


def test_an_upper_case_organization_id_goes_to_litestar(pair: Pair) -> None:
    served = pair.lean.served
    upper = str(pair.fast.world.org).upper()
    answer = pair.fast.post(EVENT, org=upper)
    assert answer.status_code == 201, answer.text
    assert pair.lean.served == served


def test_the_fast_path_is_timed_under_the_routes_label(pair: Pair) -> None:
    pair.same(EVENT)
    pair.same({**EVENT, "event_id": "evt-huge", "quantity": 10**9})
    scrape = pair.fast.client.get("/metrics").text
    for status in ("201", "402"):
        label = f'method="POST",route="{ROUTE_TEMPLATE}",status="{status}"'
        assert f"billing_http_request_duration_seconds_count{{{label}}}" in scrape


# --------------------------------------------------------------------------- the batch route

BATCH = "/batch"


def _batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def _events(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"event_id": f"{prefix}-{n}", "product": "compute", "quantity": 1 + n % 3}
            for n in range(count)]


def test_a_batch_and_its_replay_are_byte_identical(pair: Pair) -> None:
    before = _served(pair)
    events = _events("b", 30)
    events[4] = {**events[4], "occurred_at": "2026-03-10T11:00:00+01:00"}
    first = pair.same(_batch(*events), suffix=BATCH)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    results = first.json()["results"]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in events]
    assert all(r["allowed"] and not r["replayed"] for r in results)
    replay = pair.same(_batch(*events[:10], *_events("b-new", 3)), suffix=BATCH)
    assert [r["replayed"] for r in replay.json()["results"]] == [True] * 10 + [False] * 3
    assert _served(pair) == (before[0] + 2, before[1])  # the fast path answered both itself


def test_a_batch_with_denied_events_is_the_same_200(pair: Pair) -> None:
    served = pair.lean.served
    answer = pair.same(_batch(*_events("d", 2), {"event_id": "d-huge", "product": "compute", "quantity": 10**9},
                              *_events("d-after", 2)), suffix=BATCH)
    assert answer.status_code == 200
    assert [(r["allowed"], r["reason"]) for r in answer.json()["results"]] == [
        (True, None), (True, None), (False, "insufficient_credit"), (True, None), (True, None)]
    assert pair.lean.served == served + 1


@pytest.mark.parametrize(("name", "events", "status", "field"), [
    ("unknown product", [*_events("u", 2), {"event_id": "u-x", "product": "nope", "quantity": 1}], 422,
     "events[2].product"),
    ("negative quantity", [{"event_id": "n", "product": "compute", "quantity": -1}], 422, None),
    ("an id twice", [*_events("t", 2), _events("t", 1)[0]], None, "events[2].event_id"),
    ("datetime without offset", [*_events("o", 1), {"event_id": "o-x", "product": "compute", "quantity": 1,
                                                    "occurred_at": "2026-03-10T11:00:00"}], 422, None),
])
def test_a_refused_batch_is_the_same_problem(pair: Pair, name: str, events: list[dict[str, Any]],
                                             status: int | None, field: str | None) -> None:
    answer = pair.same(_batch(*events), suffix=BATCH)
    assert answer.status_code >= 400 and answer.status_code == (status or answer.status_code), (name, answer.text)
    assert answer.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert answer.json()["field"] == field, answer.text


def test_a_reused_event_id_refuses_the_batch_and_writes_nothing(pair: Pair) -> None:
    assert pair.same(_batch(*_events("r", 3)), suffix=BATCH).status_code == 200
    reused = pair.same(_batch(*_events("r-new", 2), {**_events("r", 1)[0], "quantity": 7}), suffix=BATCH)
    assert reused.status_code == 409
    assert reused.json()["code"] == "event_id_reused"
    # Nothing of the refused batch was written: its new ids are new again.
    again = pair.same(_batch(*_events("r-new", 2)), suffix=BATCH)
    assert [r["replayed"] for r in again.json()["results"]] == [False, False]


@pytest.mark.parametrize(("role", "status"), [("member", 403), ("outsider-service", 404), ("outsider", 404)])
def test_batch_permission_and_organization_errors(pair: Pair, role: str, status: int) -> None:
    served = pair.lean.served
    answer = pair.same(_batch(*_events("p", 2)), role=role, suffix=BATCH)
    assert answer.status_code == status, answer.text
    assert pair.lean.served == served + 1


@pytest.mark.parametrize(("name", "body", "content", "status"), [
    ("no events", {"events": []}, None, 400),
    ("too many events", _batch(*_events("m", 1_001)), None, 400),
    ("an event with an unknown field", _batch({**EVENT, "colour": "red"}), None, 400),
    ("not an object", [EVENT], None, 400),
    ("broken json", None, b'{"events": [', 400),
    ("empty", None, b"", 400),
])
def test_bad_batch_bodies_are_the_same_problem(pair: Pair, name: str, body: Any, content: bytes | None,
                                               status: int) -> None:
    served = pair.lean.served
    answer = pair.same(body, content=content, suffix=BATCH)
    assert 400 <= answer.status_code < 500, (name, answer.text)
    assert answer.headers["content-type"] == "application/problem+json"
    assert pair.lean.served == served  # Litestar answered


DEEP = 10_000
"""Deep enough that decoding it recursively would exhaust the interpreter's stack."""


@pytest.mark.parametrize(("suffix", "prefix", "suffix_bytes"), [
    ("", b'{"event_id":"e","product":"compute","quantity":', b"}"),
    ("", b'{"event_id":"e","product":"compute","quantity":1,"project_id":', b"}"),
    ("", b'{"colour":', b"}"),
    (BATCH, b'{"events":', b"}"),
    (BATCH, b'{"events":[{"event_id":"e","product":"compute","quantity":1,"occurred_at":', b"}]}"),
    (BATCH, b'{"events":[{"event_id":"e","product":"compute","quantity":1},{"colour":', b"}]}"),
])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_a_body_nested_deep_inside_a_field_is_the_same_400(pair: Pair, suffix: str, prefix: bytes,
                                                           suffix_bytes: bytes, opener: bytes) -> None:
    # The fast path does not measure the nesting (its body types bound it): its decoder refuses the
    # body at the first bracket too many and Litestar answers, measuring it as on every route.
    closer = b"]" if opener == b"[" else b"}"
    served = pair.lean.served
    content = prefix + opener * DEEP + b"1" + closer * DEEP + suffix_bytes
    answer = pair.same(content=content, suffix=suffix)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "malformed_body"
    assert pair.lean.served == served  # Litestar answered


def test_the_routes_body_types_bound_their_nesting() -> None:
    # The premise of the fast path not measuring depth (ADR 0018, thirteenth-pass addendum): a field
    # that admits any JSON (a dict of Any, say) would make the bound None and the scan come back.
    assert (nesting_bound(UsageEventBody), nesting_bound(UsageBatchBody)) == (1, 3)


def test_batch_unknown_token_and_unusual_requests(pair: Pair) -> None:
    served = pair.lean.served
    assert pair.same(_batch(EVENT), role=None, headers={"Authorization": "Bearer nope"},
                     suffix=BATCH).status_code == 401
    assert pair.lean.served == served + 1
    assert pair.same(_batch(EVENT), headers={"Idempotency-Key": "k-batch"}, suffix=BATCH).status_code == 200
    assert pair.same(_batch(EVENT), suffix=BATCH + "?x=1").status_code == 200
    assert pair.lean.served == served + 1  # both passed on


def test_the_batch_fast_path_is_timed_under_its_label(pair: Pair) -> None:
    pair.same(_batch(*_events("l", 2)), suffix=BATCH)
    scrape = pair.fast.client.get("/metrics").text
    label = f'method="POST",route="{BATCH_ROUTE_TEMPLATE}",status="200"'
    assert f"billing_http_request_duration_seconds_count{{{label}}}" in scrape
