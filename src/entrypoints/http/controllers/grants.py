"""Credit grants (ADR 0016) under ``/organizations/{id}/credits/grants``: every credit as a grant
with its source, expiry and what is left; granting promotional credits (``credits:grant`` tokens)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody

from billing_core import services
from billing_core.grants import GrantSource
from billing_core.services.grants import GrantView
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.middleware import idempotent_request_id
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, OrganizationId


class GrantBody(s.Body):
    amount_micros: Annotated[int, msgspec.Meta(ge=1)]
    description: str
    """Shown in the balance history (1 to 200 characters)."""
    expires_at: datetime | None = None
    """When what is left expires (an entry in the balance history); null: never."""
    priority: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    """Among grants of equal expiry, the lower number is drawn first."""
    source: GrantSource = GrantSource.PROMOTION
    """``promotion`` (default) or ``trial``."""
    reason: str | None = None


class GrantOut(msgspec.Struct):
    id: uuid.UUID
    source: GrantSource
    amount: s.Credits
    remaining: s.Credits
    expires_at: datetime | None
    priority: int
    created_at: datetime
    status: str
    """``active`` (something left), ``used`` (nothing left), ``expired``, or ``expired_pending`` (past its
    expiry with credit its expiry entries have not taken yet: active holds reserve it, ADR 0016)."""


class GrantListOut(msgspec.Struct):
    items: list[GrantOut]


class GrantCreatedOut(msgspec.Struct):
    grant: GrantOut | None
    """Null when the whole amount paid usage no grant covered."""
    paid_uncovered: s.Credits
    """What of the amount paid usage on the credit line first."""
    replayed: bool


def _out(view: GrantView) -> GrantOut:
    g = view.grant
    return GrantOut(id=g.id, source=g.source, amount=presenters.credits(g.amount_micros),
                    remaining=presenters.credits(g.remaining_micros), expires_at=g.expires_at, priority=g.priority,
                    created_at=g.created_at, status=view.status)


class GrantsController(Controller):
    path = ORG + "/credits/grants"
    tags = ["credits"]

    @get(sync_to_thread=True, responses=ERRORS,
         summary="Every credit as a grant: source, amount, what is left, expiry, priority (newest first)")
    def list_grants(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> GrantListOut:
        views = services.grants.list_grants(ctx, actor, organization_id=organization_id)
        return GrantListOut(items=[_out(v) for v in views])

    @post(sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Grant promotional credits with an optional expiry and priority (tokens with credits:grant)")
    def create(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, data: JSONBody[GrantBody],
               request: Request[Any, Any, Any]) -> Response[GrantCreatedOut]:
        made = services.wallet.create_grant(
            ctx, actor, organization_id=organization_id, amount_micros=data.amount_micros,
            description=data.description, request_id=idempotent_request_id(request.scope), source=data.source,
            expires_at=data.expires_at, priority=data.priority, reason=data.reason)
        out = GrantCreatedOut(grant=None if made.grant is None else _out(made.grant),
                              paid_uncovered=presenters.credits(made.paid_uncovered_micros), replayed=made.replayed)
        return Response(out, status_code=200 if made.replayed else 201)
