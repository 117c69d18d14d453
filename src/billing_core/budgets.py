"""Nested budgets: daily and monthly caps per project and per API token, under the organization's
(issue 21, ADR 0017).

A :class:`ScopedBudget` keeps its own UTC day/month spend counters and what active holds reserve
in its scope, with the same roll-over as the wallet's (:func:`billing_core.wallet.counters_at`).
The spend guard (:func:`billing_core.spend_guard.decide`) decides the budgets that apply to a call
(the organization's caps, then the project's, then the token's) in the same atomic step as the
organization's, inside the storage's critical section on the wallet; storage only loads and
stores them. The rule is the organization's budget rule, exactly: counting holds, a call is
denied once spent + held already reaches a cap (the call that crosses it runs), and a hold must
fit (spent + held + reserving <= cap).

Pure: stdlib and msgspec only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import msgspec

from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS
from billing_core.wallet import apply_spend, counters_at

if TYPE_CHECKING:  # holds decide with budgets: a runtime import would be circular
    from billing_core.holds import Hold


class BudgetScope(StrEnum):
    """Whose spend a budget counts. ``organization`` is the wallet's own budgets (spend settings);
    the scoped budgets stored as :class:`ScopedBudget` are a project's or an API token's."""

    ORGANIZATION = "organization"
    PROJECT = "project"
    TOKEN = "token"  # noqa: S105  # nosec B105 - a scope name, not a secret


SCOPED = (BudgetScope.PROJECT, BudgetScope.TOKEN)
"""The scopes a :class:`ScopedBudget` may have, in the order the spend guard decides them."""


class BudgetPeriod(StrEnum):
    DAY = "day"
    MONTH = "month"


class ScopedBudget(msgspec.Struct, kw_only=True, gc=False):
    """A project's or a token's caps (micro-dollars, ``None``: no cap of that period) with the
    scope's spend counters per UTC day and month and the credits its active holds reserve.
    Field names of the counters are the wallet's, so :mod:`billing_core.wallet`'s counter
    functions serve both (:class:`billing_core.wallet.SpendCounted`)."""

    organization_id: uuid.UUID
    scope: BudgetScope
    scope_id: uuid.UUID
    daily_micros: int | None = None
    monthly_micros: int | None = None
    spend_day: date | None = None
    spent_today_micros: int = 0
    spent_yesterday_micros: int = 0
    spend_month: str | None = None
    spent_month_micros: int = 0
    spent_previous_month_micros: int = 0
    held_micros: int = 0
    version: int = 0

    @property
    def key(self) -> tuple[BudgetScope, uuid.UUID]:
        return self.scope, self.scope_id


class BudgetBreach(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Which budget a denial (or a notice) is about, as the 402 problem body's ``budget`` shows it."""

    scope: BudgetScope
    scope_id: uuid.UUID
    period: BudgetPeriod
    limit_micros: int
    spent_micros: int
    held_micros: int
    retry_at: datetime


class BudgetUsage(msgspec.Struct, frozen=True, kw_only=True):
    """A scoped budget as people read it: its caps and what counts against them now."""

    budget: ScopedBudget
    spent_today_micros: int
    spent_month_micros: int
    held_micros: int
    reached: BudgetBreach | None = None
    """The cap that spent + held already reaches now (the day's before the month's), by
    :func:`breach_of`: calls in the scope are denied until ``retry_at``. None while both are open."""


def next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)


def next_month_start(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def breach_of(*, scope: BudgetScope, scope_id: uuid.UUID, daily: int | None, monthly: int | None,
              spent_today: int, spent_month: int, held: int, reserving_micros: int,
              now: datetime) -> BudgetBreach | None:
    """The budget rule, for any scope: the day is decided before the month. Used is what was spent
    in the UTC day (month) plus ``held``. Denied once used already reaches the cap (the call's
    own amount plays no part: the call that crosses a cap runs and is debited in full), or, for a
    reservation, once used + ``reserving_micros`` would pass it (a hold must fit)."""
    if daily is not None and (spent_today + held >= daily or spent_today + held + reserving_micros > daily):
        return BudgetBreach(scope=scope, scope_id=scope_id, period=BudgetPeriod.DAY, limit_micros=daily,
                            spent_micros=spent_today, held_micros=held, retry_at=next_utc_midnight(now))
    if monthly is not None and (spent_month + held >= monthly or spent_month + held + reserving_micros > monthly):
        return BudgetBreach(scope=scope, scope_id=scope_id, period=BudgetPeriod.MONTH, limit_micros=monthly,
                            spent_micros=spent_month, held_micros=held, retry_at=next_month_start(now))
    return None


def scoped_breach(budget: ScopedBudget, now: datetime, *, reserving_micros: int = 0) -> BudgetBreach | None:
    """:func:`breach_of` for a project's or a token's budget."""
    counters = counters_at(budget, now)
    return breach_of(scope=budget.scope, scope_id=budget.scope_id, daily=budget.daily_micros,
                     monthly=budget.monthly_micros, spent_today=counters.today, spent_month=counters.month,
                     held=budget.held_micros, reserving_micros=reserving_micros, now=now)


def reached(budget: ScopedBudget, now: datetime) -> BudgetBreach | None:
    """The cap a budget has reached after a debit (spent + held >= cap), for the notice that names it."""
    return scoped_breach(budget, now)


def apply_to(budgets: Iterable[ScopedBudget], amount_micros: int, now: datetime) -> None:
    """Count an allowed debit of ``amount_micros`` on every budget of the call, as the wallet counts it."""
    for budget in budgets:
        apply_spend(budget, amount_micros, now)
        budget.version += 1


def reserve(budgets: Iterable[ScopedBudget], amount_micros: int) -> None:
    """A hold placed in these scopes: its amount counts as held on each."""
    for budget in budgets:
        budget.held_micros += amount_micros
        budget.version += 1


def release(budgets: Iterable[ScopedBudget], amount_micros: int) -> None:
    """A hold of these scopes closed: its amount is no longer held. A budget counts the holds
    active when it was created (:func:`with_limits`), so this is exact; the floor at zero only keeps
    a budget stored before that rule from going negative (reconcile reports the difference)."""
    for budget in budgets:
        budget.held_micros = max(budget.held_micros - amount_micros, 0)
        budget.version += 1


def in_scope(budget: ScopedBudget, hold: Hold) -> bool:
    """Whether ``hold`` counts in ``budget`` (it names the budget's project or token)."""
    return budget.scope_id == (hold.project_id if budget.scope == BudgetScope.PROJECT else hold.token_id)


def applying(budgets: Sequence[ScopedBudget], project_id: uuid.UUID | None,
             token_id: uuid.UUID | None) -> list[ScopedBudget]:
    """Among ``budgets``, those of this call's project and token, in the order the guard decides
    them (project, then token)."""
    wanted = [(BudgetScope.PROJECT, project_id), (BudgetScope.TOKEN, token_id)]
    by_key = {b.key: b for b in budgets}
    return [by_key[(scope, scope_id)] for scope, scope_id in wanted
            if scope_id is not None and (scope, scope_id) in by_key]


def check_scope(scope: object) -> BudgetScope:
    """A scope named in a request: ``project`` or ``token``."""
    if scope not in (BudgetScope.PROJECT.value, BudgetScope.TOKEN.value):
        raise InvalidInput("scope", "scope must be project or token", code="invalid_budget_scope")
    return BudgetScope(str(scope))


def check_limits(daily_micros: object, monthly_micros: object) -> tuple[int | None, int | None]:
    """Budgets as requested: each a positive whole number of micro-dollars within range, or null;
    at least one of them set."""
    for field, value in (("daily_micros", daily_micros), ("monthly_micros", monthly_micros)):
        if value is not None and (type(value) is not int or not 1 <= value <= MAX_MICROS):
            raise InvalidInput(field, f"{field} must be a positive whole number of micro-dollars within range, "
                                      "or null", code="invalid_budget_limit")
    if daily_micros is None and monthly_micros is None:
        raise InvalidInput("daily_micros", "set daily_micros, monthly_micros or both", code="invalid_budget_limit")
    return daily_micros, monthly_micros  # type: ignore[return-value]


def with_limits(existing: ScopedBudget | None, *, organization_id: uuid.UUID, scope: BudgetScope,
                scope_id: uuid.UUID, daily_micros: int | None, monthly_micros: int | None,
                active_holds: Iterable[Hold] = ()) -> ScopedBudget:
    """A budget with new caps; an existing one keeps its counters (changing a cap never forgets
    what was spent), a new one counts spend from now and holds what the scope's ``active_holds``
    reserve already (each of them releases its amount when it closes, so a new budget that did not
    count them would later count too little for the holds placed after it)."""
    if existing is None:
        budget = ScopedBudget(organization_id=organization_id, scope=scope, scope_id=scope_id,
                              daily_micros=daily_micros, monthly_micros=monthly_micros)
        budget.held_micros = sum(h.amount_micros for h in active_holds if in_scope(budget, h))
        return budget
    return msgspec.structs.replace(existing, daily_micros=daily_micros, monthly_micros=monthly_micros,
                                   version=existing.version + 1)


def usage_of(budget: ScopedBudget, now: datetime) -> BudgetUsage:
    counters = counters_at(budget, now)
    return BudgetUsage(budget=budget, spent_today_micros=counters.today, spent_month_micros=counters.month,
                       held_micros=budget.held_micros, reached=reached(budget, now))
