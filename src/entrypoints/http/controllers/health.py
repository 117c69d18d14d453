"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from billing_core.outbox import OutboxDepth
from billing_core.services import background
from entrypoints import metrics as prometheus
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS
from entrypoints.http.runtime import RuntimeDep

READY_ERRORS = {503: ERRORS[503]}


@get("/healthz", sync_to_thread=False, security=[], tags=["health"], summary="Liveness")
def healthz(runtime: RuntimeDep) -> s.Health:
    return s.Health(status="ok", storage=runtime.storage, payments="offline" if runtime.offline_payments else "stripe")


@get("/readyz", sync_to_thread=True, security=[], tags=["health"], responses=READY_ERRORS,
     summary="Readiness: the database answers (503 storage_unavailable when it does not)")
def readyz(runtime: RuntimeDep) -> s.Ready:
    closed = background.last_closed_period(runtime.ctx)
    return s.Ready(status="ready", storage=runtime.storage, last_closed_period=closed,
                   background_worker=runtime.background_worker)


@get("/metrics", sync_to_thread=True, security=[], tags=["health"], responses=READY_ERRORS,
     media_type=prometheus.CONTENT_TYPE,
     summary="Prometheus metrics (text exposition format)",
     response_description="Request latency per route, debits by outcome and reason, outbox depth and age, "
                          "dead letters, period closes")
def metrics(runtime: RuntimeDep) -> Response[bytes]:
    def outbox() -> OutboxDepth:
        return background.outbox_depth(runtime.ctx)

    return Response(prometheus.exposition(outbox), media_type=prometheus.CONTENT_TYPE)


@get("/openapi.json", sync_to_thread=False, include_in_schema=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    document = request.app.openapi_schema.to_schema()
    return Response(msgspec.json.encode(document), media_type="application/json")
