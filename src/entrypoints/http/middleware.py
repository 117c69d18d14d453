"""ASGI middleware of the authenticated API: Bearer authentication, then ``Idempotency-Key`` replay.

Both run after routing, on the API router only (health, OpenAPI, the Stripe webhook and the console
are outside it), and before the request body is parsed, so a request without a valid token is a
401 whatever its body.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
import weakref
from datetime import timedelta

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send

from billing_core.errors import IdempotencyKeyReused, IdempotencyRequestInProgress, InvalidInput
from billing_core.permissions import Actor
from billing_core.ports import IDEMPOTENCY_IN_PROGRESS, StoredResponse
from billing_core.services import organizations
from entrypoints.http.runtime import AUTHENTICATE_IN_HANDLER, MAX_BODY_BYTES, PendingAuthentication, Runtime

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
# Answers that depend on state which may change before a retry are not kept for replay.
_NOT_STORED = frozenset({401, 402, 409, 429})
STALE_CLAIM = timedelta(seconds=60)
"""A request still claiming its key after this long died with its process (requests take far less)."""


def _runtime(scope: Scope) -> Runtime:
    runtime = Litestar.from_scope(scope).state["runtime"]
    assert isinstance(runtime, Runtime)
    return runtime


def bearer_secret(headers: Headers) -> str | None:
    """The secret of ``Authorization: Bearer <secret>``; None when absent or another scheme."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, secret = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip() or None


def authentication(app: ASGIApp) -> ASGIApp:
    """Authenticate the bearer token (401 problem otherwise) and put the Actor in ``scope["user"]``.

    On a route marked ``AUTHENTICATE_IN_HANDLER`` (and a request without ``Idempotency-Key``) the
    check moves into the handler's worker thread: ``scope["user"]`` is a
    :class:`~entrypoints.http.runtime.PendingAuthentication` that the handler resolves before
    anything else, and a body the route cannot read is answered only after the token was checked
    (:class:`~entrypoints.http.bodies.BodyRequest`), so a bad token is still a 401 whatever the body."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            headers = Headers.from_scope(scope)
            secret = bearer_secret(headers)
            handler = scope.get("route_handler")
            if (handler is not None and handler.opt.get(AUTHENTICATE_IN_HANDLER)
                    and IDEMPOTENCY_HEADER.lower() not in headers):
                scope["user"] = PendingAuthentication(secret)
            else:
                ctx = _runtime(scope).ctx
                scope["user"] = await anyio.to_thread.run_sync(organizations.authenticate, ctx, secret)
        await app(scope, receive, send)

    return middleware


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        assert isinstance(chunk, bytes)
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail="the request body is larger than 1 MiB")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def request_hash(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


_REQUEST_ID_NAMESPACE = uuid.UUID("5b0e6a43-3f8e-4c55-9a52-0d7c1f2e9b61")


def idempotent_request_id(scope: Scope) -> uuid.UUID | None:
    """The id of the operation an ``Idempotency-Key`` names, derived from the key in the same scope
    the replay store uses (organization, method and path, actor), or None without a key.

    A use case that records its intent under this id (a refund request, say) recognises a retry of
    a request whose answer was not stored (a 503 while the provider was down) and finishes the
    recorded operation instead of starting a second one.
    """
    key = Headers.from_scope(scope).get(IDEMPOTENCY_HEADER.lower())
    actor = scope.get("user")
    if key is None or not KEY_PATTERN.match(key) or not isinstance(actor, Actor):
        return None
    return uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{_scope_key(actor, scope)}\n{key}")


def _scope_key(actor: Actor, scope: Scope) -> str:
    method = scope.get("method", "")
    return f"{actor.organization_id}:{method} {scope['path']}:{actor.subject}"


def idempotency(app: ASGIApp) -> ASGIApp:
    """Store the first answer to a mutation sent with an ``Idempotency-Key`` and replay it.

    The key is scoped to the organization, the method and path, and the actor; the request hash
    covers method, path, query and body. The same key with a different request is a 409
    ``idempotency_key_reused``. The key is claimed in the database before the request runs, so
    one key runs one request at a time across every web process: a concurrent request with the
    key in this process waits and replays the first answer; one in another process is a 409
    ``idempotency_request_in_progress`` with ``Retry-After: 1``. Answers of 5xx and of
    401/402/409/429 are not stored (the claim is released): a retry runs again. A claim left by a
    process that died mid-request is released after ``STALE_CLAIM``.
    """
    locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    def lock_for(scope_key: str, key: str) -> asyncio.Lock:
        lock = locks.get((scope_key, key))
        if lock is None:
            lock = locks[(scope_key, key)] = asyncio.Lock()
        return lock

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] not in MUTATING_METHODS:
            await app(scope, receive, send)
            return
        method = scope["method"]
        key = Headers.from_scope(scope).get(IDEMPOTENCY_HEADER.lower())
        if key is None:
            await app(scope, receive, send)
            return
        if not KEY_PATTERN.match(key):
            raise InvalidInput(IDEMPOTENCY_HEADER, "Idempotency-Key must be 1-255 visible ASCII characters",
                               code="invalid_idempotency_key")
        actor = scope.get("user")
        assert isinstance(actor, Actor)
        body = await read_body(receive)
        fingerprint = request_hash(method, scope["path"], scope.get("query_string", b""), body)
        scope_key = _scope_key(actor, scope)
        ctx = _runtime(scope).ctx

        def claim() -> tuple[StoredResponse | None, StoredResponse | None]:
            """(our claim, None) when this request got the key; (None, the row found) otherwise.
            A claim older than ``STALE_CLAIM`` belonged to a request whose process died: it is
            released and the key claimed afresh."""
            for _ in range(3):
                now = ctx.clock.now()
                mine = StoredResponse(scope=scope_key, key=key, request_hash=fingerprint,
                                      status_code=IDEMPOTENCY_IN_PROGRESS, body=b"", content_type="",
                                      created_at=now)
                with ctx.uow() as uow:
                    if uow.idempotency.put(mine):
                        uow.commit()
                        return mine, None
                    found = uow.idempotency.get(scope_key, key)
                    if found is None:  # released between our insert and our read: try again
                        continue
                    if not (found.in_progress and found.request_hash == fingerprint
                            and found.created_at < now - STALE_CLAIM):
                        return None, found
                    uow.idempotency.release(scope_key, key, claimed_at=found.created_at)
                    uow.commit()
            raise IdempotencyRequestInProgress(key)

        def settle(mine: StoredResponse, response: StoredResponse | None) -> None:
            with ctx.uow() as uow:
                if response is None:
                    uow.idempotency.release(scope_key, key, claimed_at=mine.created_at)
                else:
                    uow.idempotency.complete(response, claimed_at=mine.created_at)
                uow.commit()

        async with lock_for(scope_key, key):
            mine, stored = await anyio.to_thread.run_sync(claim)
            if stored is not None:
                if stored.request_hash != fingerprint:
                    raise IdempotencyKeyReused(key)
                if stored.in_progress:
                    raise IdempotencyRequestInProgress(key)
                await _replay(stored, send)
                return
            assert mine is not None
            response: StoredResponse | None = None
            try:
                captured = await _forward(app, scope, body, receive, send)
                status = captured.status
                if status is not None and status < 500 and status not in _NOT_STORED:
                    response = StoredResponse(scope=scope_key, key=key, request_hash=fingerprint,
                                              status_code=status, body=b"".join(captured.chunks),
                                              content_type=captured.content_type, created_at=ctx.clock.now())
            finally:
                # Shielded: a client that hangs up must not leave the key claimed until it is stale.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(settle, mine, response)

    return middleware


class _Captured:
    def __init__(self) -> None:
        self.status: int | None = None
        self.content_type = "application/json"
        self.chunks: list[bytes] = []


async def _forward(app: ASGIApp, scope: Scope, body: bytes, receive: Receive, send: Send) -> _Captured:
    """Run the route with the buffered body, passing its answer through and keeping a copy."""
    captured = _Captured()
    delivered = False

    async def replay_receive() -> ReceiveMessage:
        nonlocal delivered
        if delivered:
            return await receive()  # later reads see the client's own messages (disconnect)
        delivered = True
        return HTTPRequestEvent(type="http.request", body=body, more_body=False)

    async def capture_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            captured.status = int(message["status"])
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    captured.content_type = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            captured.chunks.append(message.get("body", b""))
        await send(message)

    await app(scope, replay_receive, capture_send)
    return captured


async def _replay(stored: StoredResponse, send: Send) -> None:
    headers = [(REPLAY_HEADER.lower().encode(), b"true")]
    if stored.status_code != 204:
        headers += [(b"content-type", stored.content_type.encode("latin-1")),
                    (b"content-length", str(len(stored.body)).encode())]
    await send({"type": "http.response.start", "status": stored.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})
