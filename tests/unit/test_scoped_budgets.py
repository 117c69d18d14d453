"""Nested budgets in the pure core (ADR 0017): the project's and the token's caps decided with the
organization's in one step, under the organization's budget rule (the call that crosses a cap
runs; a hold must fit), and a property over random sequences: for every scope, spent + held never
passes its cap except by the single call that crossed it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.testing.builders import usage_tx
from billing_core.budgets import (
    BudgetPeriod,
    BudgetScope,
    ScopedBudget,
    applying,
    check_limits,
    check_scope,
    release,
    reserve,
    scoped_breach,
    with_limits,
)
from billing_core.errors import InvalidInput
from billing_core.spend_guard import DenialReason, decide, decide_and_apply
from billing_core.wallet import SpendLimits, WalletAccount, counters_at
from tests.unit.domain_builders import DOLLAR, NOW, ORG, wallet_account

PROJECT = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
TOKEN = uuid.UUID("00000000-0000-4000-8000-0000000000b2")


def budget(scope: BudgetScope, scope_id: uuid.UUID, *, daily: int | None = None,
           monthly: int | None = None) -> ScopedBudget:
    return ScopedBudget(organization_id=ORG, scope=scope, scope_id=scope_id, daily_micros=daily,
                        monthly_micros=monthly)


def rich() -> WalletAccount:
    return wallet_account(wallet=1_000 * DOLLAR)


def debit(wallet: WalletAccount, amount: int, budgets: list[ScopedBudget], key: str) -> bool:
    decision, stored = decide_and_apply(wallet, amount, NOW, usage_tx(ORG, amount, key), budgets)
    assert (stored is not None) == decision.allowed
    return decision.allowed


def test_a_token_budget_denies_once_reached_and_the_crossing_call_runs() -> None:
    wallet, token = rich(), budget(BudgetScope.TOKEN, TOKEN, daily=10 * DOLLAR)
    assert debit(wallet, 6 * DOLLAR, [token], "a")
    assert debit(wallet, 6 * DOLLAR, [token], "b"), "spent 6 < 10: the call that crosses runs in full"
    assert counters_at(token, NOW).today == 12 * DOLLAR
    denied = decide(wallet, 1, NOW, budgets=[token])
    assert denied.reason == DenialReason.TOKEN_DAILY_BUDGET_REACHED
    assert denied.retry_at == datetime.combine(NOW.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert denied.budget is not None
    assert (denied.budget.scope, denied.budget.scope_id, denied.budget.period) == (
        BudgetScope.TOKEN, TOKEN, BudgetPeriod.DAY)
    assert (denied.budget.limit_micros, denied.budget.spent_micros, denied.budget.held_micros) == (
        10 * DOLLAR, 12 * DOLLAR, 0)
    assert denied.budget.retry_at == denied.retry_at
    # The organization has spent as much and has no budget: other tokens' calls still run.
    assert decide(wallet, DOLLAR, NOW).allowed


def test_a_denied_debit_leaves_wallet_and_budgets_untouched() -> None:
    wallet = rich()
    project = budget(BudgetScope.PROJECT, PROJECT, monthly=DOLLAR)
    assert debit(wallet, DOLLAR, [project], "a")
    before_wallet, before_budget = msgspec.structs.replace(wallet), msgspec.structs.replace(project)
    assert not debit(wallet, DOLLAR, [project], "b")
    assert wallet == before_wallet and project == before_budget


def test_the_organization_is_decided_first_then_the_project_then_the_token() -> None:
    wallet = wallet_account(wallet=1_000 * DOLLAR, spend_day=NOW.date(), today=5 * DOLLAR,
                            limits=SpendLimits(daily_budget_micros=5 * DOLLAR))
    project = budget(BudgetScope.PROJECT, PROJECT, daily=DOLLAR)
    token = budget(BudgetScope.TOKEN, TOKEN, monthly=DOLLAR)
    for b in (project, token):
        b.spend_day, b.spent_today_micros, b.spend_month, b.spent_month_micros = NOW.date(), DOLLAR, "2026-03", DOLLAR
    assert decide(wallet, 1, NOW, budgets=[project, token]).reason == DenialReason.DAILY_BUDGET_REACHED
    wallet.limits = SpendLimits()
    assert decide(wallet, 1, NOW, budgets=[project, token]).reason == DenialReason.PROJECT_DAILY_BUDGET_REACHED
    assert decide(wallet, 1, NOW, budgets=[token]).reason == DenialReason.TOKEN_MONTHLY_BUDGET_REACHED
    monthly = decide(wallet, 1, NOW, budgets=[token])
    assert monthly.budget is not None and monthly.budget.period == BudgetPeriod.MONTH
    assert monthly.retry_at == datetime(2026, 4, 1, tzinfo=UTC)


def test_organization_budget_denials_name_the_organization_budget() -> None:
    wallet = wallet_account(wallet=1_000 * DOLLAR, spend_day=NOW.date(), today=5 * DOLLAR,
                            limits=SpendLimits(daily_budget_micros=5 * DOLLAR))
    denied = decide(wallet, 1, NOW)
    assert denied.budget is not None
    assert (denied.budget.scope, denied.budget.scope_id, denied.budget.limit_micros) == (
        BudgetScope.ORGANIZATION, ORG, 5 * DOLLAR)


def test_credit_comes_after_every_budget() -> None:
    wallet = wallet_account(wallet=0)
    token = budget(BudgetScope.TOKEN, TOKEN, daily=DOLLAR)
    token.spend_day, token.spent_today_micros = NOW.date(), DOLLAR
    assert decide(wallet, 1, NOW, budgets=[token]).reason == DenialReason.TOKEN_DAILY_BUDGET_REACHED
    assert decide(wallet, 1, NOW).reason == DenialReason.INSUFFICIENT_CREDIT


def test_a_hold_must_fit_every_scope_and_counts_as_held() -> None:
    wallet = rich()
    project, token = budget(BudgetScope.PROJECT, PROJECT, daily=10 * DOLLAR), budget(BudgetScope.TOKEN, TOKEN,
                                                                                      daily=4 * DOLLAR)
    assert decide(wallet, 4 * DOLLAR, NOW, reserve=True, budgets=[project, token]).allowed
    denied = decide(wallet, 4 * DOLLAR + 1, NOW, reserve=True, budgets=[project, token])
    assert denied.reason == DenialReason.TOKEN_DAILY_BUDGET_REACHED
    reserve([project, token], 3 * DOLLAR)
    assert decide(wallet, 0, NOW, budgets=[token]).allowed, "held 3 < 4: a plain call still runs"
    assert decide(wallet, 2 * DOLLAR, NOW, reserve=True, budgets=[token]).reason \
        == DenialReason.TOKEN_DAILY_BUDGET_REACHED
    breach = scoped_breach(token, NOW, reserving_micros=2 * DOLLAR)
    assert breach is not None and breach.held_micros == 3 * DOLLAR
    release([project, token], 3 * DOLLAR)
    assert (project.held_micros, token.held_micros) == (0, 0)
    release([token], 5)
    assert token.held_micros == 0, "never below zero (a budget set while a hold was active)"


def test_budgets_roll_over_at_midnight_and_at_the_month() -> None:
    wallet = rich()
    token = budget(BudgetScope.TOKEN, TOKEN, daily=DOLLAR, monthly=3 * DOLLAR)
    assert debit(wallet, DOLLAR, [token], "d1")
    assert not decide(wallet, 1, NOW, budgets=[token]).allowed
    tomorrow = NOW + timedelta(days=1)
    assert decide(wallet, 1, tomorrow, budgets=[token]).allowed
    assert counters_at(token, tomorrow).today == 0 and counters_at(token, tomorrow).month == DOLLAR


def test_applying_picks_the_project_then_the_token_of_the_call() -> None:
    other = uuid.uuid4()
    loaded = [budget(BudgetScope.TOKEN, TOKEN, daily=1), budget(BudgetScope.PROJECT, PROJECT, daily=1),
              budget(BudgetScope.PROJECT, other, daily=1)]
    assert [b.key for b in applying(loaded, PROJECT, TOKEN)] == [(BudgetScope.PROJECT, PROJECT),
                                                                 (BudgetScope.TOKEN, TOKEN)]
    assert applying(loaded, None, None) == []
    assert [b.scope_id for b in applying(loaded, None, TOKEN)] == [TOKEN]


def test_validation_of_scope_and_limits() -> None:
    assert check_scope("project") == BudgetScope.PROJECT
    for bad in ("organization", "org", None, 3):
        with pytest.raises(InvalidInput) as refused:
            check_scope(bad)
        assert refused.value.code == "invalid_budget_scope"
    assert check_limits(5, None) == (5, None)
    for daily, monthly in ((None, None), (0, None), (-1, 5), (1.5, None), (True, None), ("5", None),
                           (None, 10**30)):
        with pytest.raises(InvalidInput) as refused:
            check_limits(daily, monthly)
        assert refused.value.code == "invalid_budget_limit"


def test_changing_the_caps_keeps_the_counters() -> None:
    token = budget(BudgetScope.TOKEN, TOKEN, daily=DOLLAR)
    token.spend_day, token.spent_today_micros, token.held_micros = NOW.date(), 7, 3
    changed = with_limits(token, organization_id=ORG, scope=BudgetScope.TOKEN, scope_id=TOKEN,
                          daily_micros=None, monthly_micros=2 * DOLLAR)
    assert (changed.daily_micros, changed.monthly_micros) == (None, 2 * DOLLAR)
    assert (changed.spent_today_micros, changed.held_micros, changed.version) == (7, 3, token.version + 1)


# --------------------------------------------------------------------------- the property

OPS = st.lists(st.tuples(st.sampled_from(["debit", "hold", "release", "next_day"]),
                         st.integers(min_value=1, max_value=4 * DOLLAR),
                         st.booleans(), st.booleans()), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, caps=st.tuples(st.integers(1, 10 * DOLLAR), st.integers(1, 10 * DOLLAR),
                               st.integers(1, 10 * DOLLAR)))
def test_spent_plus_held_never_passes_a_cap_but_by_the_crossing_call(
        ops: list[tuple[str, int, bool, bool]], caps: tuple[int, int, int]) -> None:
    org_cap, project_cap, token_cap = caps
    wallet = wallet_account(wallet=10**6 * DOLLAR, limits=SpendLimits(daily_budget_micros=org_cap))
    project = budget(BudgetScope.PROJECT, PROJECT, daily=project_cap)
    token = budget(BudgetScope.TOKEN, TOKEN, daily=token_cap)
    holds: list[tuple[int, list[ScopedBudget]]] = []
    now = NOW
    crossed: dict[str, int] = {}  # scope -> the amount of the one call allowed to cross it

    def used(scope: str) -> tuple[int, int]:
        if scope == "organization":
            return counters_at(wallet, now).today + wallet.held_micros, org_cap
        b = project if scope == "project" else token
        return counters_at(b, now).today + b.held_micros, project_cap if scope == "project" else token_cap

    for index, (op, amount, with_project, with_token) in enumerate(ops):
        scoped = ([project] if with_project else []) + ([token] if with_token else [])
        scopes = ["organization"] + [b.scope.value for b in scoped]
        if op == "next_day":
            now += timedelta(days=1)
            crossed.clear()
            continue
        if op == "release":
            if holds:
                held, of = holds.pop(0)
                wallet.held_micros -= held
                release(of, held)
                # A release can bring a crossed scope back under its cap: a later call may cross it anew.
                for s in [s for s in crossed if used(s)[0] < used(s)[1]]:
                    del crossed[s]
            continue
        before = {s: used(s) for s in scopes}
        if op == "hold":
            decision = decide(wallet, amount, now, reserve=True, budgets=scoped)
            if decision.allowed:
                wallet.held_micros += amount
                reserve(scoped, amount)
                holds.append((amount, scoped))
                for s in scopes:
                    assert used(s)[0] <= used(s)[1], "a hold always fits"
            continue
        decision, _ = decide_and_apply(wallet, amount, now, usage_tx(ORG, amount, f"e{index}"), scoped)
        if decision.allowed:
            for s in scopes:
                spent_before, cap = before[s]
                assert spent_before < cap, "a call runs only while spent + held is under every cap"
                if used(s)[0] > cap:
                    assert s not in crossed, "only one call crosses a cap"
                    crossed[s] = amount
        for s in ("organization", "project", "token"):
            total, cap = used(s)
            assert total <= cap + crossed.get(s, 0), "spent + held passes a cap by at most the crossing call"
