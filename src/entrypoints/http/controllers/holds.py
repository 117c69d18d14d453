"""Holds for calls of unknown cost (ADR 0011) under ``/organizations/{id}/usage/holds``: place,
settle, release, read; and the organization's rule for settling above a hold."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import FromPath, JSONBody

from billing_core import services
from billing_core.errors import SpendDenied
from billing_core.holds import Hold, HoldOverrun, HoldStatus
from billing_core.services.holds import HoldOutcome
from billing_core.spend_guard import DenialReason
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.middleware import idempotent_request_id
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, OrganizationId


class HoldBody(s.Body):
    product: s.Identifier
    """Product code (``compute``) or product UUID: what the settle will charge."""
    max_quantity: int | None = None
    """Hold the price of this many units; or give ``amount_micros``."""
    amount_micros: int | None = None
    project_id: uuid.UUID | None = None
    ttl_seconds: int | None = None
    """1 to 86,400; default 900. The worker releases the hold after it."""


class SettleBody(s.Body):
    event_id: s.Identifier
    """The usage event the settle records (the ledger key ``usage:<event_id>``)."""
    quantity: Annotated[int, msgspec.Meta(ge=1)]


class HoldOverrunBody(s.Body):
    hold_overrun: str
    """``reject``, ``cap_at_hold`` (default) or ``allow_within_credit_line``."""


class HoldOut(msgspec.Struct):
    id: uuid.UUID
    status: HoldStatus
    product_id: uuid.UUID
    project_id: uuid.UUID | None
    max_quantity: int | None
    held: s.Credits
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    event_id: str | None
    settled_quantity: int | None
    charged: s.Credits
    uncharged: s.Credits
    """What the settle asked for above what it charged (``cap_at_hold``, or a denied overrun)."""
    overrun_rule: HoldOverrun | None
    """The organization's rule, when the settle asked for more than the hold."""
    overrun_denied_reason: DenialReason | None
    replayed: bool
    balance: s.Credits
    held_total: s.Credits
    """Everything the organization's active holds reserve, after this request."""


class HoldOverrunOut(msgspec.Struct):
    hold_overrun: HoldOverrun


def _out(outcome: HoldOutcome, hold: Hold) -> HoldOut:
    return HoldOut(id=hold.id, status=hold.status, product_id=hold.product_id, project_id=hold.project_id,
                   max_quantity=hold.max_quantity, held=presenters.credits(hold.amount_micros),
                   created_at=hold.created_at, expires_at=hold.expires_at, closed_at=hold.closed_at,
                   event_id=hold.event_id, settled_quantity=hold.settled_quantity,
                   charged=presenters.credits(hold.charged_micros), uncharged=presenters.credits(hold.uncharged_micros),
                   overrun_rule=hold.overrun, overrun_denied_reason=hold.overrun_denial,
                   replayed=outcome.replayed, balance=presenters.credits(outcome.balance_micros),
                   held_total=presenters.credits(outcome.held_micros))


class HoldsController(Controller):
    """For the platform's services: API tokens with the ``usage:write`` scope (as usage reports)."""

    path = ORG + "/usage/holds"
    tags = ["platform usage"]

    @post(sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Reserve credits for a call of unknown cost within every cap; 402 with the reason if denied")
    def place(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, data: JSONBody[HoldBody],
              request: Request[Any, Any, Any]) -> Response[HoldOut]:
        outcome = services.holds.place_hold(ctx, actor, organization_id=organization_id, product=data.product,
                                            max_quantity=data.max_quantity, amount_micros=data.amount_micros,
                                            project_id=data.project_id, ttl_seconds=data.ttl_seconds,
                                            hold_id=idempotent_request_id(request.scope))
        if outcome.hold is None:
            decision = outcome.decision
            raise SpendDenied(decision.reason.value if decision.reason else "payment_required",
                              decision.message or "the spend guard denied the hold", decision.retry_at,
                              decision.budget)
        return Response(_out(outcome, outcome.hold), status_code=200 if outcome.replayed else 201)

    @get("/{hold_id:uuid}", sync_to_thread=True, responses=ERRORS, summary="One hold and its status")
    def read(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
             hold_id: FromPath[uuid.UUID]) -> HoldOut:
        outcome = services.holds.get_hold(ctx, actor, organization_id=organization_id, hold_id=hold_id)
        assert outcome.hold is not None
        return _out(outcome, outcome.hold)

    @post("/{hold_id:uuid}/settle", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Debit the actual quantity and release the rest of the hold, once")
    def settle(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, hold_id: FromPath[uuid.UUID],
               data: JSONBody[SettleBody]) -> HoldOut:
        outcome = services.holds.settle_hold(ctx, actor, organization_id=organization_id, hold_id=hold_id,
                                             event_id=data.event_id, quantity=data.quantity)
        assert outcome.hold is not None
        return _out(outcome, outcome.hold)

    @delete("/{hold_id:uuid}", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
            summary="Release the whole hold (idempotent)")
    def release(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                hold_id: FromPath[uuid.UUID]) -> HoldOut:
        outcome = services.holds.release_hold(ctx, actor, organization_id=organization_id, hold_id=hold_id)
        assert outcome.hold is not None
        return _out(outcome, outcome.hold)


class HoldSettingsController(Controller):
    path = ORG + "/hold_overrun"
    tags = ["billing settings"]

    @get(sync_to_thread=True, responses=ERRORS, summary="What settling above a hold does")
    def read(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> HoldOverrunOut:
        return HoldOverrunOut(hold_overrun=services.holds.hold_overrun(ctx, actor, organization_id=organization_id))

    @put(sync_to_thread=True, responses=MUTATION_ERRORS,
         summary="Choose reject, cap_at_hold or allow_within_credit_line (primary owner)")
    def update(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
               data: JSONBody[HoldOverrunBody]) -> HoldOverrunOut:
        return HoldOverrunOut(hold_overrun=services.holds.set_hold_overrun(
            ctx, actor, organization_id=organization_id, rule=data.hold_overrun))
