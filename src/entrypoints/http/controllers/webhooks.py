"""The payment provider's webhook receiver: the raw body and ``Stripe-Signature``, verified by the adapter."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, post

from billing_core.services import provider_events
from entrypoints.http import schemas as s
from entrypoints.http.problems import WEBHOOK_ERRORS
from entrypoints.http.runtime import RuntimeDep


@post("/webhooks/stripe", status_code=200, security=[], tags=["webhooks"], responses=WEBHOOK_ERRORS,
      summary="Stripe events (signature verified; a bad or missing signature is a 400 and changes nothing)")
async def stripe_webhook(request: Request[Any, Any, Any], runtime: RuntimeDep) -> s.WebhookEventOut:
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    result = await anyio.to_thread.run_sync(provider_events.handle_event, runtime.ctx, payload, signature)
    return s.WebhookEventOut(event_id=result.event_id, type=result.type, outcome=result.outcome)
