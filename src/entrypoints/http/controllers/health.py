"""Liveness and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from entrypoints.http import schemas as s
from entrypoints.http.runtime import RuntimeDep


@get("/healthz", sync_to_thread=False, security=[], tags=["health"], summary="Liveness")
def healthz(runtime: RuntimeDep) -> s.Health:
    return s.Health(status="ok", storage=runtime.storage, payments="offline" if runtime.offline_payments else "stripe")


@get("/openapi.json", sync_to_thread=False, include_in_schema=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    document = request.app.openapi_schema.to_schema()
    return Response(msgspec.json.encode(document), media_type="application/json")
