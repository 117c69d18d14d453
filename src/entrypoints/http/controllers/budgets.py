"""Project and token budgets (ADR 0017) under ``/organizations/{id}/spend/budgets``: list, read,
set (PUT, primary owner) and remove."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import FromPath, JSONBody

from billing_core import services
from billing_core.budgets import BudgetUsage
from entrypoints.http import schemas as s
from entrypoints.http.problems import ERRORS, MUTATION_ERRORS
from entrypoints.http.runtime import ORG, Ctx, CurrentActor, OrganizationId


class BudgetBody(s.Body):
    daily_micros: int | None = None
    """The UTC day's cap in micro-dollars, or null for none."""
    monthly_micros: int | None = None
    """The UTC month's cap in micro-dollars, or null for none (at least one of the two)."""


class BudgetOut(msgspec.Struct):
    scope: str
    scope_id: uuid.UUID
    daily_micros: int | None
    monthly_micros: int | None
    spent_today_micros: int
    spent_month_micros: int
    held_micros: int
    reached: s.BudgetProblem | None
    """The cap spent + held already reaches (the day's first), shaped as a 402's ``budget``; null while open."""


class BudgetListOut(msgspec.Struct):
    items: list[BudgetOut]


def _out(usage: BudgetUsage) -> BudgetOut:
    b = usage.budget
    reached = None if usage.reached is None else s.BudgetProblem.of(usage.reached)
    return BudgetOut(scope=b.scope.value, scope_id=b.scope_id, daily_micros=b.daily_micros,
                     monthly_micros=b.monthly_micros, spent_today_micros=usage.spent_today_micros,
                     spent_month_micros=usage.spent_month_micros, held_micros=usage.held_micros, reached=reached)


class BudgetsController(Controller):
    path = ORG + "/spend/budgets"
    tags = ["billing settings"]

    @get(sync_to_thread=True, responses=ERRORS, summary="The project and token budgets, with what counts now")
    def list(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId) -> BudgetListOut:
        return BudgetListOut(items=[_out(u) for u in
                                    services.budgets.list_budgets(ctx, actor, organization_id=organization_id)])

    @get("/{budget_scope:str}/{scope_id:uuid}", sync_to_thread=True, responses=ERRORS, summary="One budget")
    def read(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, budget_scope: FromPath[str],
             scope_id: FromPath[uuid.UUID]) -> BudgetOut:
        return _out(services.budgets.get_budget(ctx, actor, organization_id=organization_id, scope=budget_scope,
                                                scope_id=scope_id))

    @put("/{budget_scope:str}/{scope_id:uuid}", sync_to_thread=True, responses=MUTATION_ERRORS,
         summary="Set a project's or an API token's daily and monthly budget (primary owner)")
    def put(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, budget_scope: FromPath[str],
            scope_id: FromPath[uuid.UUID], data: JSONBody[BudgetBody]) -> Response[BudgetOut]:
        usage, created = services.budgets.put_budget(ctx, actor, organization_id=organization_id, scope=budget_scope,
                                                     scope_id=scope_id, daily_micros=data.daily_micros,
                                                     monthly_micros=data.monthly_micros)
        return Response(_out(usage), status_code=201 if created else 200)

    @delete("/{budget_scope:str}/{scope_id:uuid}", status_code=204, sync_to_thread=True, responses=MUTATION_ERRORS,
            summary="Remove a budget (primary owner)")
    def remove(self, ctx: Ctx, actor: CurrentActor, organization_id: OrganizationId, budget_scope: FromPath[str],
               scope_id: FromPath[uuid.UUID]) -> None:
        services.budgets.remove_budget(ctx, actor, organization_id=organization_id, scope=budget_scope,
                                       scope_id=scope_id)
