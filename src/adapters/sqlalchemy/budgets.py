"""Project and token budgets (ADR 0017): the ``spend_budgets`` table and the wallet's
``scoped_budgets`` count of its rows.

Storage only loads and stores: the spend guard decides (:func:`billing_core.spend_guard.decide`).
Every write and every read a decision is made on runs under the wallet lock the use case took
first (ADR 0009), so plain reads and updates are enough. An organization without budgets never
reaches this module on the usage path: the count on the wallet row says there is nothing to read.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, bindparam, delete, or_, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import SqlAlchemyRepository
from adapters.sqlalchemy.tables import spend_budgets, wallets
from billing_core.budgets import SCOPED, BudgetScope, ScopedBudget
from billing_core.errors import NotFound

_b, _w = spend_budgets.c, wallets.c

_COUNTERS = ("daily_micros", "monthly_micros", "spend_day", "spent_today_micros", "spent_yesterday_micros",
             "spend_month", "spent_month_micros", "spent_previous_month_micros", "held_micros", "version")
# One statement for any number of budgets: executed with a list of parameter sets (psycopg
# pipelines it into one round trip).
_SAVE = (update(spend_budgets)
         .where(_b.organization_id == bindparam("k_org"), _b.scope == bindparam("k_scope"),
                _b.scope_id == bindparam("k_id"))
         .values({name: bindparam(name) for name in _COUNTERS}))


class SqlAlchemyBudgetRepository(SqlAlchemyRepository):
    def list(self, organization_id: uuid.UUID) -> list[ScopedBudget]:
        found = [rows.budget_from_row(row) for row in
                 self._execute(select(spend_budgets).where(_b.organization_id == organization_id))]
        found.sort(key=lambda b: (SCOPED.index(b.scope), str(b.scope_id)))
        return found

    def find(self, organization_id: uuid.UUID, scope: BudgetScope, scope_id: uuid.UUID) -> ScopedBudget | None:
        row = self._execute(select(spend_budgets).where(
            _b.organization_id == organization_id, _b.scope == scope.value, _b.scope_id == scope_id)).first()
        return None if row is None else rows.budget_from_row(row)

    def for_call(self, organization_id: uuid.UUID, project_id: uuid.UUID | None,
                 token_id: uuid.UUID | None) -> builtins.list[ScopedBudget]:
        wanted = [(scope, scope_id) for scope, scope_id in ((BudgetScope.PROJECT, project_id),
                                                            (BudgetScope.TOKEN, token_id)) if scope_id is not None]
        if not wanted:
            return []
        query = select(spend_budgets).where(_b.organization_id == organization_id, or_(*(
            and_(_b.scope == scope.value, _b.scope_id == scope_id) for scope, scope_id in wanted)))
        found = [rows.budget_from_row(row) for row in self._execute(query)]
        found.sort(key=lambda b: SCOPED.index(b.scope))
        return found

    def add(self, budget: ScopedBudget) -> bool:
        with self._guarded():
            inserted = self._execute(
                self._insert(spend_budgets).on_conflict_do_nothing(
                    index_elements=["organization_id", "scope", "scope_id"]),
                rows.budget_values(budget)).rowcount
        if not inserted:
            return False
        if self._count(budget.organization_id, 1) != 1:
            raise NotFound("wallet", budget.organization_id)
        return True

    def save(self, budgets: Sequence[ScopedBudget]) -> None:
        if not budgets:
            return
        params = []
        for budget in budgets:
            values = rows.budget_values(budget)
            params.append({"k_org": budget.organization_id, "k_scope": budget.scope.value,
                           "k_id": budget.scope_id, **{name: values[name] for name in _COUNTERS}})
        self._execute(_SAVE, params)

    def remove(self, organization_id: uuid.UUID, scope: BudgetScope, scope_id: uuid.UUID) -> bool:
        deleted = self._execute(delete(spend_budgets).where(
            _b.organization_id == organization_id, _b.scope == scope.value, _b.scope_id == scope_id)).rowcount
        if not deleted:
            return False
        self._count(organization_id, -1)
        return True

    def _count(self, organization_id: uuid.UUID, delta: int) -> int:
        return int(self._execute(update(wallets).where(_w.organization_id == organization_id)
                                 .values(scoped_budgets=_w.scoped_budgets + delta)).rowcount)
