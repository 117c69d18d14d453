"""ASGI middleware that times every routed request into ``billing_http_request_duration_seconds``.

Labelled by the route's template (``/organizations/{organization_id}/usage/events``), never the raw
path, so an organization id or event id cannot blow up the number of series.
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.metrics import REQUEST_SECONDS


def request_metrics(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            route = scope.get("path_template") or "unmatched"
            REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)

    return middleware
