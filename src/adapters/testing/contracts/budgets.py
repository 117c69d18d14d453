"""Contract of :class:`~billing_core.ports.BudgetRepository` (ADR 0017): budgets and the wallet's
``scoped_budgets`` count move together, the debit paths decide the call's project and token
budgets with the organization's and store their counters in the same step, on every backend."""

from __future__ import annotations

import uuid

from adapters.testing.builders import NOW, grant, new_org, usage_tx
from adapters.testing.storage import StorageBackend
from billing_core.budgets import BudgetScope, ScopedBudget
from billing_core.ports import DebitRequest
from billing_core.spend_guard import DenialReason
from billing_core.wallet import counters_at


def _funded(storage: StorageBackend, amount: int = 1_000_000) -> uuid.UUID:
    org = new_org(storage)
    with storage.uow() as uow:
        uow.wallets.post(grant(org.id, amount))
        uow.commit()
    return org.id


def _budget(org: uuid.UUID, scope: BudgetScope, scope_id: uuid.UUID, daily: int | None = None,
            monthly: int | None = None) -> ScopedBudget:
    return ScopedBudget(organization_id=org, scope=scope, scope_id=scope_id, daily_micros=daily,
                        monthly_micros=monthly)


class BudgetRepositoryContract:
    def test_add_find_list_remove_and_the_wallet_count(self, storage: StorageBackend) -> None:
        org = _funded(storage)
        project, token = uuid.uuid4(), uuid.uuid4()
        with storage.uow() as uow:
            uow.wallets.lock(org)
            assert uow.budgets.add(_budget(org, BudgetScope.TOKEN, token, daily=5))
            assert uow.budgets.add(_budget(org, BudgetScope.PROJECT, project, monthly=9))
            assert not uow.budgets.add(_budget(org, BudgetScope.TOKEN, token, daily=6)), "one budget per scope"
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org).scoped_budgets == 2
            assert [b.key for b in uow.budgets.list(org)] == [(BudgetScope.PROJECT, project),
                                                              (BudgetScope.TOKEN, token)]
            found = uow.budgets.find(org, BudgetScope.TOKEN, token)
            assert found == _budget(org, BudgetScope.TOKEN, token, daily=5)
            assert uow.budgets.find(org, BudgetScope.PROJECT, token) is None
            assert [b.scope for b in uow.budgets.for_call(org, project, token)] == [BudgetScope.PROJECT,
                                                                                    BudgetScope.TOKEN]
            assert uow.budgets.for_call(org, None, None) == []
            assert uow.budgets.for_call(uuid.uuid4(), project, token) == [], "scoped by organization"
        with storage.uow() as uow:
            uow.wallets.lock(org)
            assert uow.budgets.remove(org, BudgetScope.TOKEN, token)
            assert not uow.budgets.remove(org, BudgetScope.TOKEN, token)
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org).scoped_budgets == 1
            assert [b.scope_id for b in uow.budgets.list(org)] == [project]

    def test_save_stores_counters_and_a_rollback_keeps_nothing(self, storage: StorageBackend) -> None:
        org, token = _funded(storage), uuid.uuid4()
        with storage.uow() as uow:
            uow.wallets.lock(org)
            uow.budgets.add(_budget(org, BudgetScope.TOKEN, token, daily=5))
            uow.commit()
        with storage.uow() as uow:
            budget = uow.budgets.list(org)[0]
            budget.spend_day, budget.spent_today_micros, budget.held_micros, budget.version = NOW.date(), 4, 2, 7
            uow.budgets.save([budget])
        with storage.uow() as uow:
            assert uow.budgets.list(org)[0].spent_today_micros == 0, "not committed: nothing kept"
            uow.budgets.save([budget])
            uow.commit()
        with storage.uow() as uow:
            assert uow.budgets.list(org) == [budget]

    def test_debit_decides_the_token_budget_and_counts_on_it(self, storage: StorageBackend) -> None:
        org, token, other = _funded(storage), uuid.uuid4(), uuid.uuid4()
        with storage.uow() as uow:
            uow.wallets.lock(org)
            uow.budgets.add(_budget(org, BudgetScope.TOKEN, token, daily=300))
            uow.commit()
        with storage.uow() as uow:
            first = uow.wallets.debit(org, 200, NOW, usage_tx(org, 200, "usage:a"), token_id=token)
            crossing = uow.wallets.debit(org, 200, NOW, usage_tx(org, 200, "usage:b"), token_id=token)
            denied = uow.wallets.debit(org, 1, NOW, usage_tx(org, 1, "usage:c"), token_id=token)
            free = uow.wallets.debit(org, 50, NOW, usage_tx(org, 50, "usage:d"), token_id=other)
            uow.commit()
        assert first.decision.allowed and crossing.decision.allowed and free.decision.allowed
        assert denied.decision.reason == DenialReason.TOKEN_DAILY_BUDGET_REACHED
        assert denied.decision.budget is not None and denied.decision.budget.spent_micros == 400
        with storage.uow() as uow:
            assert counters_at(uow.budgets.list(org)[0], NOW).today == 400
            assert counters_at(uow.wallets.get(org), NOW).today == 450

    def test_debit_many_decides_each_debit_on_its_scopes(self, storage: StorageBackend) -> None:
        org, project = _funded(storage), uuid.uuid4()
        with storage.uow() as uow:
            uow.wallets.lock(org)
            uow.budgets.add(_budget(org, BudgetScope.PROJECT, project, monthly=100))
            uow.commit()
        with storage.uow() as uow:
            outcomes = uow.wallets.debit_many(org, [
                DebitRequest(60, usage_tx(org, 60, "usage:1"), project),
                DebitRequest(60, usage_tx(org, 60, "usage:2"), project),
                DebitRequest(60, usage_tx(org, 60, "usage:3"), project),
                DebitRequest(60, usage_tx(org, 60, "usage:4"), None)], NOW)
            uow.commit()
        assert [o.decision.allowed for o in outcomes] == [True, True, False, True]
        assert outcomes[2].decision.reason == DenialReason.PROJECT_MONTHLY_BUDGET_REACHED
        with storage.uow() as uow:
            assert counters_at(uow.budgets.list(org)[0], NOW).month == 120
