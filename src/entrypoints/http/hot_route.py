"""A fast path for ``POST /organizations/{id}/usage/events`` (and ``…/events/batch``) in front of
Litestar (issue 16, ADR 0018).

The live usage route is the one platforms put in front of every billable call. Litestar's pipeline
around it (routing, the middleware stack, dependency injection, parameter parsing, the response
machinery) cost more server CPU than the use case itself. :class:`UsageEventsFastPath` is an ASGI
wrapper around the Litestar app that recognises exactly that method and path, with a plain request
(``Content-Type: application/json``, a ``Bearer`` token, no ``Idempotency-Key``, no query string),
reads and strictly decodes the body, and then, in one worker-thread hop (on the fast path's own
thread pool, as many threads as the database pool has connections: ``loop.run_in_executor`` costs the
event loop about half of what ``anyio.to_thread`` does per request), checks the token and runs
:func:`~entrypoints.http.controllers.usage.report_usage_event` — the function the Litestar route
runs (the same token reader and permission check, the same use case with its group commit, the same
presenter), mapping core errors with the same :func:`~entrypoints.http.problems.billing_error_response`.
The batch route is served the same way through
:func:`~entrypoints.http.controllers.usage.report_usage_batch_events` (the Litestar handler's own
function), its answer encoded by msgspec straight from the response struct.
Only HTTP framing, parsing and authentication plumbing are specialised here; no business rule.

Anything else goes to Litestar untouched, and so does anything unusual after the body was read: a
body that does not decode (Litestar answers the 400/413/422, after checking the token, as it always
does) or an error that is not a core error. The body read so far is replayed to Litestar message by
message. An unexpected error is only possible before anything was committed (the use case is one
unit of work, and an event id is applied once), so letting Litestar run the request again is safe.

``BILLING_HTTP_FAST_PATH=false`` turns it off (``tests/e2e/test_http_usage_lean_route.py`` compares
both byte for byte).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from litestar import Response
from litestar._asgi.utils import is_valid_host  # Litestar's own Host check: the same 400 for a bad Host
from litestar.serialization import encode_json
from litestar.types import ASGIApp, Receive, Send

from billing_core.errors import BillingError
from billing_core.payloads import MAX_JSON_DEPTH, check_json_depth, nesting_bound
from entrypoints.http import schemas as s
from entrypoints.http.controllers.usage import report_usage_batch_events, report_usage_event
from entrypoints.http.problems import billing_error_response
from entrypoints.http.runtime import MAX_BODY_BYTES, PendingAuthentication, Runtime, authenticated
from entrypoints.metrics import REQUEST_SECONDS

logger = logging.getLogger("entrypoints.http")

ROUTE_TEMPLATE = "/organizations/{organization_id}/usage/events"
"""The route's label in ``billing_http_request_duration_seconds``, as Litestar's routing names it."""
BATCH_ROUTE_TEMPLATE = ROUTE_TEMPLATE + "/batch"
_PATH = re.compile(
    r"/organizations/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/usage/events(/batch)?")
# Only the canonical spelling of the organization's UUID; any other (upper case, braces) goes to Litestar.
_DECODER = msgspec.json.Decoder(s.UsageEventBody, strict=True)
"""The route's body type, decoded as strictly as :class:`~entrypoints.http.bodies.BodyRequest` does."""
_BATCH_DECODER = msgspec.json.Decoder(s.UsageBatchBody, strict=True)
_MEASURE_DEPTH = any((bound := nesting_bound(decoder.type)) is None or bound > MAX_JSON_DEPTH
                     for decoder in (_DECODER, _BATCH_DECODER))
"""Whether the fast path measures a body's nesting before decoding it. The route's body types bound
it (at most 3 levels), so their decoders refuse a deeper body at once, without recursing, and it goes to
Litestar, which measures it and answers 400 as for any route; measuring first would cost a scan of
every string of a 1,000-event batch."""
_ENCODER = msgspec.json.Encoder()
"""The batch answer holds only types msgspec encodes itself: the bytes Litestar's encoder gives."""
_JSON = b"application/json"
DEFAULT_THREADS = 40
"""Worker threads of the fast path when the storage has no connection pool to size them by (anyio's default)."""


class _PassOn(Exception):
    """Inside the fast path: let Litestar answer this request instead."""


class UsageEventsFastPath:
    """The ASGI app that answers plain ``POST …/usage/events`` requests itself and passes every other
    request to ``app`` (Litestar's own handler, behind the scope Litestar set up). ``served`` and
    ``passed_on`` count what it did with the requests of its route (for tests and debugging)."""

    def __init__(self, app: ASGIApp, runtime: Runtime, *, threads: int = DEFAULT_THREADS) -> None:
        self.app = app
        self.runtime = runtime
        self.served = 0
        self.passed_on = 0
        # Its own threads, started on first use: a bare executor hop costs the event loop a fraction
        # of anyio's (capacity limiter, cancel scope, run-vars, a Condition-based queue) per request.
        self._threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:  # Any: an HTTP scope, read as such
        if (scope["type"] != "http" or scope["method"] != "POST" or scope.get("query_string")
                or scope.get("root_path") or (match := _PATH.fullmatch(scope["path"])) is None):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        secret = _plain_request(scope["headers"])
        if secret is None:
            self.passed_on += 1
            await self.app(scope, receive, send)
            return
        batch = match.group(2) is not None
        received: list[Any] = []
        body = await _read_body(receive, received)
        data = _decoded(body, _BATCH_DECODER if batch else _DECODER)
        if data is None:
            await self._pass_on(scope, receive, send, received)
            return
        try:
            if self._executor is None:  # the event loop's thread only: no race
                self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="usage-events")
            status, headers, content = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._answer, scope, secret, uuid.UUID(match.group(1)), data)
        except _PassOn:
            await self._pass_on(scope, receive, send, received)
            return
        self.served += 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})
        REQUEST_SECONDS.labels("POST", BATCH_ROUTE_TEMPLATE if batch else ROUTE_TEMPLATE,
                               str(status)).observe(time.perf_counter() - started)

    def _answer(self, scope: Any, secret: str, organization_id: uuid.UUID,
                data: s.UsageEventBody | s.UsageBatchBody) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The route's answer, framed (blocking: runs in a worker thread)."""
        scope["user"] = PendingAuthentication(secret)
        try:
            actor = authenticated(scope, self.runtime.ctx)
            if isinstance(data, s.UsageBatchBody):
                # The batch route's answer is its struct with Litestar's defaults (200, JSON).
                return _framed(200, [], _ENCODER.encode(report_usage_batch_events(
                    self.runtime.ctx, actor, organization_id, data)), None)
            response: Response[Any] = report_usage_event(self.runtime, actor, organization_id, data)
        except BillingError as exc:
            response = billing_error_response(exc)
        except Exception as exc:
            logger.debug("usage fast path: %r passed on to Litestar", exc)
            raise _PassOn from exc
        content = response.content if isinstance(response.content, bytes) else encode_json(response.content)
        headers = [(name.lower().encode("latin-1"), str(value).encode("latin-1"))
                   for name, value in response.headers.items()]
        return _framed(int(response.status_code or 200), headers, content, response.media_type)

    def close(self) -> None:
        """Let the fast path's threads end once idle (at the app's shutdown; a later startup of the
        same app starts new ones)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def _pass_on(self, scope: Any, receive: Receive, send: Send, received: list[Any]) -> None:
        """Litestar answers, reading first the messages the fast path already received."""
        self.passed_on += 1
        scope.pop("user", None)
        pending = list(received)

        async def replay() -> Any:
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def _framed(status: int, headers: list[tuple[bytes, bytes]], content: bytes,
            media_type: object) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    # The routes' own answers carry no media type: Litestar then uses the route's, JSON.
    headers += [(b"content-type", str(media_type or "application/json").encode("latin-1")),
                (b"content-length", str(len(content)).encode("latin-1"))]
    return status, headers, content


def _plain_request(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The bearer secret of a request the fast path takes; None for anything else (another content
    type, no bearer token, an ``Idempotency-Key``, a body said to be too large, a repeated header)."""
    content_type = authorization = host = None
    for name, value in headers:
        if name == b"content-type":
            if content_type is not None:
                return None
            content_type = value
        elif name == b"authorization":
            if authorization is not None:
                return None
            authorization = value
        elif name == b"host":
            host = value
        elif name == b"idempotency-key" or (name == b"content-length"
                                            and (not value.isdigit() or int(value) > MAX_BODY_BYTES)):
            return None
    if content_type != _JSON or authorization is None or (host is not None and not is_valid_host(host)):
        return None
    scheme, _, secret = authorization.decode("latin-1").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return None
    return secret


async def _read_body(receive: Receive, received: list[Any]) -> bytes | None:
    """The whole body, keeping every message in ``received``; None when the client hung up or the
    body is larger than the route takes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decoded(body: bytes | None, decoder: msgspec.json.Decoder[Any]) -> s.UsageEventBody | s.UsageBatchBody | None:
    """The body as the route's type; None for anything Litestar must answer (empty, too deep,
    malformed, of the wrong shape)."""
    if not body:
        return None
    try:
        if _MEASURE_DEPTH:
            check_json_depth(body)
        return decoder.decode(body)  # type: ignore[no-any-return]
    except (BillingError, msgspec.DecodeError, RecursionError):
        return None
