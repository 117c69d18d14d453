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

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send

from billing_core.errors import IdempotencyKeyReused, InvalidInput
from billing_core.permissions import Actor
from billing_core.ports import StoredResponse
from billing_core.services import organizations
from entrypoints.http.runtime import MAX_BODY_BYTES, Runtime

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
# Answers that depend on state which may change before a retry are not kept for replay.
_NOT_STORED = frozenset({401, 402, 409, 429})


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
    """Authenticate the bearer token (401 problem otherwise) and put the Actor in ``scope["user"]``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            secret = bearer_secret(Headers.from_scope(scope))
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
    ``idempotency_key_reused``. Concurrent requests with one key run one after the other in this
    process, so the second replays the first. Answers of 5xx and of 401/402/409/429 are not stored:
    a retry runs again.
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

        def lookup() -> StoredResponse | None:
            with ctx.uow() as uow:
                return uow.idempotency.get(scope_key, key)

        async with lock_for(scope_key, key):
            stored = await anyio.to_thread.run_sync(lookup)
            if stored is not None:
                if stored.request_hash != fingerprint:
                    raise IdempotencyKeyReused(key)
                await _replay(stored, send)
                return
            captured = await _forward(app, scope, body, receive, send)
            status = captured.status
            if status is None or status >= 500 or status in _NOT_STORED:
                return
            response = StoredResponse(scope=scope_key, key=key, request_hash=fingerprint, status_code=status,
                                      body=b"".join(captured.chunks), content_type=captured.content_type,
                                      created_at=ctx.clock.now())

            def store() -> None:
                with ctx.uow() as uow:
                    uow.idempotency.put(response)
                    uow.commit()

            await anyio.to_thread.run_sync(store)

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
