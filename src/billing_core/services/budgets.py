"""Managing project and token budgets (ADR 0017): list, read, set and remove.

Setting or removing a budget is managing spend, the primary owner's (the permission matrix);
reading them is reading billing, as the spend settings are. Every write takes the organization's
wallet lock first (ADR 0009), so a budget changes between two debits, never during one.
"""

from __future__ import annotations

import uuid

from billing_core import budgets as core
from billing_core.budgets import BudgetScope, BudgetUsage
from billing_core.errors import NotFound
from billing_core.permissions import Action, Actor, require
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext


def list_budgets(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[BudgetUsage]:
    """The organization's project and token budgets with what counts against them now."""
    require(actor, Action.VIEW_BILLING, organization_id)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        return [core.usage_of(b, now) for b in uow.budgets.list(organization_id)]


def get_budget(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, scope: str,
               scope_id: uuid.UUID) -> BudgetUsage:
    """One budget; ``NotFound`` when the scope has none."""
    require(actor, Action.VIEW_BILLING, organization_id)
    chosen = core.check_scope(scope)
    with ctx.uow() as uow:
        budget = uow.budgets.find(organization_id, chosen, scope_id)
    if budget is None:
        raise NotFound("budget", f"{chosen.value}/{scope_id}")
    return core.usage_of(budget, ctx.clock.now())


def _check_token(uow: UnitOfWork, organization_id: uuid.UUID, token_id: uuid.UUID) -> None:
    if uow.organizations.find_token(organization_id, token_id) is None:
        raise NotFound("api token", token_id)


def put_budget(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, scope: str, scope_id: uuid.UUID,
               daily_micros: object = None, monthly_micros: object = None) -> tuple[BudgetUsage, bool]:
    """Set the caps of a project's or a token's budget; (the budget, whether it was created). A token
    budget names one of the organization's API tokens (``NotFound`` otherwise); a project is any id
    usage events name. An existing budget keeps its counters: a new cap applies to what was
    already spent today and this month."""
    require(actor, Action.MANAGE_SPEND_MANAGEMENT, organization_id)
    chosen = core.check_scope(scope)
    daily, monthly = core.check_limits(daily_micros, monthly_micros)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        if chosen == BudgetScope.TOKEN:
            _check_token(uow, organization_id, scope_id)
        existing = uow.budgets.find(organization_id, chosen, scope_id)
        budget = core.with_limits(existing, organization_id=organization_id, scope=chosen, scope_id=scope_id,
                                  daily_micros=daily, monthly_micros=monthly,
                                  active_holds=uow.holds.active(organization_id) if existing is None else ())
        if existing is None:
            uow.budgets.add(budget)
        else:
            uow.budgets.save([budget])
        uow.commit()
    return core.usage_of(budget, ctx.clock.now()), existing is None


def remove_budget(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, scope: str,
                  scope_id: uuid.UUID) -> None:
    """Remove a budget: the scope is then capped by the organization's budgets alone. ``NotFound``
    when it has none (a repeated DELETE answers 404; nothing changes)."""
    require(actor, Action.MANAGE_SPEND_MANAGEMENT, organization_id)
    chosen = core.check_scope(scope)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        if not uow.budgets.remove(organization_id, chosen, scope_id):
            raise NotFound("budget", f"{chosen.value}/{scope_id}")
        uow.commit()
