"""Usage: the seed's ``GET /billing/usage`` report, and the platform service's hot path
(authorize, report events, refund events) under ``/organizations/{id}/usage``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from billing_core import services
from billing_core.errors import InvalidInput, SpendDenied
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext
from entrypoints.http import presenters
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS, PROBLEM_JSON, QUERY_POST_ERRORS
from entrypoints.http.runtime import (
    AUTHENTICATE_IN_HANDLER,
    ORG,
    Ctx,
    CurrentActor,
    OrganizationId,
    Runtime,
    RuntimeDep,
    authenticated,
    utc,
)

FromParam = Annotated[str | None, QueryParameter(name="from", max_length=64,
                                            description="Window start, ISO 8601 with offset (default: month start).")]
ToParam = Annotated[str | None, QueryParameter(
    name="to", max_length=64, description="Window end, exclusive, ISO 8601 with offset (default: end of this hour).")]


def parse_datetime(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(field, f"{field} must be an ISO 8601 datetime such as 2026-01-01T00:00:00Z",
                           code="invalid_datetime") from None
    return utc(moment, field)


REPLAYED_EVENT = ResponseSpec(data_container=s.UsageOutcomeOut, description="The event_id was recorded before: "
                              "the first answer again (its amount and the balance after it) with `replayed: true`; "
                              "nothing is charged again")
EVENT_CONFLICTS = ResponseSpec(data_container=s.Problem, media_type=PROBLEM_JSON, description=(
    "The event_id was already reported for another product, project, quantity or occurred_at (code "
    "event_id_reused, nothing written), the product is not subscribed (product_not_subscribed), or the "
    "Idempotency-Key was used with another body"))
EVENT_NOT_FOUND = ResponseSpec(data_container=s.Problem, media_type=PROBLEM_JSON, description=(
    "No such usage event in this organization (code usage_event_not_found; denied events are not stored), "
    "or the organization is not the token's (code not_found)"))


def report_usage_event(runtime: Runtime, actor: Actor, organization_id: uuid.UUID,
                       data: s.UsageEventBody) -> Response[s.UsageOutcomeOut]:
    """``POST …/usage/events`` once the token and the body are read: the use case and its answer
    (201, 200 for a replay; a denial raises :class:`SpendDenied`, a 402). Blocking: call it from a
    worker thread. The Litestar route and the fast path in front of it
    (:mod:`entrypoints.http.hot_route`) both answer through this one function."""
    # Concurrent reports of one organization share a unit of work (group commit), answering
    # exactly what report_usage answers for each.
    report = runtime.usage_group.report if runtime.usage_group is not None else partial(
        services.usage.report_usage, runtime.ctx)
    outcome = report(actor, organization_id=organization_id, event_id=data.event_id, product=data.product,
                     quantity=data.quantity, project_id=data.project_id,
                     occurred_at=utc(data.occurred_at, "occurred_at"))
    if not outcome.allowed:
        reason = outcome.reason.value if outcome.reason else "payment_required"
        raise SpendDenied(reason, outcome.message or "the spend guard denied the debit", outcome.retry_at,
                          outcome.budget)
    return Response(presenters.usage_outcome(outcome), status_code=200 if outcome.replayed else 201)


def report_usage_batch_events(ctx: BillingContext, actor: Actor, organization_id: uuid.UUID,
                              data: s.UsageBatchBody) -> s.UsageBatchOut:
    """``POST …/usage/events/batch`` once the token and the body are read: the use case and its
    answer (200; each event allowed or denied on its own). Blocking: call it from a worker thread.
    The Litestar route and the fast path in front of it (:mod:`entrypoints.http.hot_route`) both
    answer through this one function."""
    events = [services.usage.UsageEventInput(
        event_id=e.event_id, product=e.product, quantity=e.quantity, project_id=e.project_id,
        occurred_at=utc(e.occurred_at, f"events[{i}].occurred_at")) for i, e in enumerate(data.events)]
    outcomes = services.usage.report_usage_batch(ctx, actor, organization_id=organization_id, events=events)
    return s.UsageBatchOut(results=[presenters.usage_outcome(o) for o in outcomes])


class UsageReportController(Controller):
    path = "/billing/usage"
    tags = ["usage"]

    @get(sync_to_thread=True, responses=ERRORS,
         summary="Usage by project and product per hour, with totals (seed endpoint)")
    def usage(self, ctx: Ctx, actor: CurrentActor, organization_id: FromQuery[uuid.UUID | None] = None,
              start: FromParam = None, end: ToParam = None) -> s.UsageReportOut:
        now = ctx.clock.now()
        end_at = parse_datetime(end, "to") or now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start_at = parse_datetime(start, "from") or datetime(now.year, now.month, 1, tzinfo=UTC)
        report = services.usage.usage_report(ctx, actor, organization_id=organization_id or actor.organization_id,
                                             start=start_at, end=end_at)
        return presenters.usage_report(report, ctx.catalog)


class PlatformUsageController(Controller):
    """For the platform's services: API tokens with the ``usage:write`` scope."""

    path = ORG + "/usage"
    tags = ["platform usage"]

    @post("/authorize", status_code=200, sync_to_thread=True, responses=QUERY_POST_ERRORS,
          summary="May a billable call of about amount_micros start now? (spend guard)")
    def authorize(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                  data: JSONBody[s.AuthorizeBody]) -> s.DecisionOut:
        decision = services.usage.authorize(ctx, actor, organization_id=organization_id,
                                            amount_micros=data.amount_micros, project_id=data.project_id)
        return presenters.decision(decision)

    # The hot path: the token is checked in this handler's worker thread (one thread-pool hop).
    @post("/events", sync_to_thread=True, opt={AUTHENTICATE_IN_HANDLER: True},
          responses={**MUTATION_ERRORS, 200: REPLAYED_EVENT, 409: EVENT_CONFLICTS},
          summary="Report one billable usage event; a denied debit answers 402 with the reason")
    def report(self, request: Request[Any, Any, Any], runtime: RuntimeDep, organization_id: OrganizationId,
               data: JSONBody[s.UsageEventBody]) -> Response[s.UsageOutcomeOut]:
        return report_usage_event(runtime, authenticated(request.scope, runtime.ctx), organization_id, data)

    @post("/events/batch", status_code=200, sync_to_thread=True, opt={AUTHENTICATE_IN_HANDLER: True},
          responses={**MUTATION_ERRORS, 409: EVENT_CONFLICTS},
          summary="Report up to 1,000 events in one transaction; each is allowed or denied on its own")
    def report_batch(self, request: Request[Any, Any, Any], ctx: Ctx, organization_id: OrganizationId,
                     data: JSONBody[s.UsageBatchBody]) -> s.UsageBatchOut:
        return report_usage_batch_events(ctx, authenticated(request.scope, ctx), organization_id, data)

    @post("/events/{event_id:str}/refund", status_code=200, sync_to_thread=True, responses=MUTATION_ERRORS,
          summary="Automatically refund a failed operation's charge (shows as a green + entry in the feed)")
    def refund(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, event_id: FromPath[str],
               data: JSONBody[s.UsageRefundBody | None] = None) -> s.UsageOutcomeOut:
        reason = data.reason if data is not None and data.reason else services.usage.REFUND_REASON
        outcome = services.usage.refund_usage(ctx, actor, organization_id=organization_id, event_id=event_id,
                                              reason=reason)
        return presenters.usage_outcome(outcome)


class UsageExplainController(Controller):
    """Explaining one recorded usage event, for whoever reads usage (``billing:read``)."""

    path = ORG + "/usage/events"
    tags = ["usage"]

    @get("/{event_id:str}", sync_to_thread=True, responses={**ERRORS, 404: EVENT_NOT_FOUND},
         summary="Explain one usage event: price, debit, hold, invoice line and refunds")
    def explain(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId,
                event_id: FromPath[str]) -> s.UsageExplanationOut:
        explanation = services.usage_explain.explain_usage_event(ctx, actor, organization_id, event_id)
        return presenters.usage_explanation(explanation)
