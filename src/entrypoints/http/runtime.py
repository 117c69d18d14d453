"""What the HTTP layer needs at run time, built once from the container by ``create_app``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, overload

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from billing_core.errors import InvalidInput, Unauthenticated
from billing_core.permissions import Actor
from billing_core.services import organizations
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import Deliverers
from billing_core.services.usage_group import UsageGroupCommit
from entrypoints.http.schemas import Page

T = TypeVar("T")

MAX_BODY_BYTES = 1024 * 1024
ORG = "/organizations/{organization_id:uuid}"

Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size, 1 to 200.")]
OrganizationId = Annotated[uuid.UUID, PathParameter(description="The organization; must be the token's.")]
Cursor = Annotated[str | None, QueryParameter(max_length=64, description="`next_cursor` of the previous page.")]


@dataclass(frozen=True, kw_only=True)
class Runtime:
    ctx: BillingContext
    deliverers: Deliverers
    offline_payments: bool
    storage: str
    background_worker: bool = False
    usage_group: UsageGroupCommit | None = None
    """Group commit of concurrent usage reports per organization (``billing serve``); None: one by one."""


def provide_runtime(state: State) -> Runtime:
    runtime = state["runtime"]
    assert isinstance(runtime, Runtime)
    return runtime


def provide_ctx(state: State) -> BillingContext:
    return provide_runtime(state).ctx


AUTHENTICATE_IN_HANDLER = "authenticate_in_handler"
"""Route ``opt`` of the hot routes (usage events): the authentication middleware leaves the token to
the handler, which checks it first thing in its own worker thread (:func:`authenticated`), so the
request takes one thread-pool hop instead of two. Only without an ``Idempotency-Key`` (the replay
store needs the actor before the route runs)."""


@dataclass(frozen=True, slots=True)
class PendingAuthentication:
    """What the authentication middleware puts in ``scope["user"]`` on an ``AUTHENTICATE_IN_HANDLER``
    route: the bearer secret, not yet checked."""

    secret: str | None


def authenticated(scope: Any, ctx: BillingContext) -> Actor:
    """The request's actor, checking a pending token now (blocking: call from a worker thread).
    Unauthenticated when the token is not usable, exactly as the middleware would have answered."""
    user = scope.get("user")
    if isinstance(user, PendingAuthentication):
        user = scope["user"] = organizations.authenticate(ctx, user.secret)
    if not isinstance(user, Actor):
        raise Unauthenticated()
    return user


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    """The actor the authentication middleware put on the request."""
    actor = request.scope.get("user")
    if not isinstance(actor, Actor):
        raise Unauthenticated()
    return actor


@overload
def utc(moment: datetime, field: str) -> datetime: ...


@overload
def utc(moment: None, field: str) -> None: ...


def utc(moment: datetime | None, field: str) -> datetime | None:
    """A datetime a client sent, in UTC (answers then show it with ``Z``). One without an offset is
    ambiguous and refused, naming the field; so is one whose UTC time is outside years 1-9999
    (``0001-01-01T00:00:00+01:00``), which has no UTC datetime."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(field, f"{field} must be an ISO 8601 datetime with an offset, such as "
                           "2026-01-01T00:00:00Z", code="invalid_datetime")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(field, f"{field} is out of range: in UTC it falls outside the years 1 to 9999",
                           code="invalid_datetime") from None


def paginate(items: Sequence[T], limit: int, cursor: str | None) -> Page[T]:
    """Offset pages over a list the core returns whole, with the storage adapters' cursor rules."""
    try:
        start = int(cursor) if cursor else 0
    except ValueError:
        raise InvalidInput("cursor", "cursor is not valid") from None
    if start < 0 or start > len(items):
        raise InvalidInput("cursor", "cursor is not valid")
    end = start + limit
    return Page(items=list(items[start:end]), next_cursor=str(end) if end < len(items) else None)


Ctx = NamedDependency[BillingContext]
CurrentActor = NamedDependency[Actor]
RuntimeDep = NamedDependency[Runtime]
