"""The organization's API tokens under ``/organizations/{id}/api_tokens``: listed for every member
(reading billing) so that a token budget (ADR 0017) can be named by the token's name. Never the
secret, nor its hash."""

from __future__ import annotations

from litestar import Controller, get

from billing_core import services
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, Cursor, Limit, OrganizationId


class ApiTokensController(Controller):
    path = ORG + "/api_tokens"
    tags = ["account"]

    @get(sync_to_thread=True, responses=ERRORS,
         summary="The organization's API tokens, oldest first, with their status (never the secret)")
    def list(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, limit: Limit = 50,
             cursor: Cursor = None) -> s.Page[s.ApiTokenOut]:
        page = services.organizations.list_tokens(ctx, actor, organization_id=organization_id, limit=limit,
                                                  cursor=cursor)
        return s.Page(items=[presenters.api_token(t) for t in page.items], next_cursor=page.next_cursor)
