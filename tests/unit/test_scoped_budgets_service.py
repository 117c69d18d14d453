"""Nested budgets through the use cases on the in-memory adapter (ADR 0017): managing them
(primary owner), the usage path, holds, authorize, refunds and the notice naming the budget."""

from __future__ import annotations

import uuid

import pytest

from adapters.fakes import in_memory_billing
from billing_core import services
from billing_core.budgets import BudgetScope
from billing_core.errors import InvalidInput, NotFound, PermissionDenied
from billing_core.outbox import OutboxTopic
from billing_core.spend_guard import DenialReason
from tests.unit.test_holds import NOW, PRICE, Org


@pytest.fixture
def org() -> Org:
    return Org(in_memory_billing(NOW))


def _token_id(org: Org) -> uuid.UUID:
    assert org.platform.token_id is not None
    return org.platform.token_id


def _report(org: Org, event_id: str, quantity: int, project_id: uuid.UUID | None = None) -> services.usage.UsageOutcome:
    return services.usage.report_usage(org.billing.ctx, org.platform, organization_id=org.id, event_id=event_id,
                                       product="compute", quantity=quantity, project_id=project_id)


def test_only_the_primary_owner_manages_budgets_and_unknown_tokens_are_404(org: Org) -> None:
    ctx = org.billing.ctx
    with pytest.raises(PermissionDenied):
        services.budgets.put_budget(ctx, org.platform, organization_id=org.id, scope="token",
                                    scope_id=_token_id(org), daily_micros=PRICE)
    with pytest.raises(NotFound):
        services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="token", scope_id=uuid.uuid4(),
                                    daily_micros=PRICE)
    with pytest.raises(InvalidInput) as bad:
        services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="team", scope_id=uuid.uuid4(),
                                    daily_micros=PRICE)
    assert bad.value.code == "invalid_budget_scope"
    made, created = services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="token",
                                                scope_id=_token_id(org), daily_micros=PRICE)
    assert created and made.budget.daily_micros == PRICE
    _, created_again = services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="token",
                                                   scope_id=_token_id(org), monthly_micros=9 * PRICE)
    assert not created_again
    listed = services.budgets.list_budgets(ctx, org.owner, organization_id=org.id)
    assert [(u.budget.scope, u.budget.daily_micros, u.budget.monthly_micros) for u in listed] == [
        (BudgetScope.TOKEN, None, 9 * PRICE)]
    services.budgets.remove_budget(ctx, org.owner, organization_id=org.id, scope="token", scope_id=_token_id(org))
    with pytest.raises(NotFound):
        services.budgets.remove_budget(ctx, org.owner, organization_id=org.id, scope="token",
                                       scope_id=_token_id(org))


def test_a_token_budget_stops_the_token_and_names_itself(org: Org) -> None:
    ctx = org.billing.ctx
    services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="token", scope_id=_token_id(org),
                                daily_micros=10 * PRICE)
    assert _report(org, "a", 6).allowed
    assert _report(org, "b", 6).allowed, "the crossing call runs"
    denied = _report(org, "c", 1)
    assert not denied.allowed and denied.reason == DenialReason.TOKEN_DAILY_BUDGET_REACHED
    assert denied.budget is not None and denied.budget.scope_id == _token_id(org)
    with ctx.uow() as uow:
        assert uow.usage.get_event(org.id, "c") is None, "a denied event writes nothing"
        event = uow.usage.get_event(org.id, "a")
        assert event is not None and event.token_id == _token_id(org)
        notices = [m for m in uow.outbox.list(organization_id=org.id) if m.topic == OutboxTopic.WEBHOOK
                   or m.topic == OutboxTopic.EMAIL]
    assert any("budget" in str(m.payload) and str(_token_id(org)) in str(m.payload) for m in notices), \
        "the notice names the budget"
    decision = services.usage.authorize(ctx, org.platform, organization_id=org.id, amount_micros=0)
    assert decision.reason == DenialReason.TOKEN_DAILY_BUDGET_REACHED, "authorize honours the token budget"
    services.usage.refund_usage(ctx, org.platform, organization_id=org.id, event_id="b")
    assert _report(org, "d", 1).allowed, "a refund gives the token's budget back the same day"
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean


def test_a_project_budget_caps_holds_and_settle_moves_held_to_spent(org: Org) -> None:
    ctx = org.billing.ctx
    project = uuid.uuid4()
    services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="project", scope_id=project,
                                daily_micros=10 * PRICE)
    placed = services.holds.place_hold(ctx, org.platform, organization_id=org.id, product="compute",
                                       max_quantity=8, project_id=project)
    assert placed.decision.allowed and placed.hold is not None
    refused = services.holds.place_hold(ctx, org.platform, organization_id=org.id, product="compute",
                                        max_quantity=3, project_id=project)
    assert refused.decision.reason == DenialReason.PROJECT_DAILY_BUDGET_REACHED, "a hold must fit the project"
    assert services.holds.place_hold(ctx, org.platform, organization_id=org.id, product="compute",
                                     max_quantity=3).decision.allowed, "other projects are not capped"
    usage = services.budgets.get_budget(ctx, org.owner, organization_id=org.id, scope="project", scope_id=project)
    assert usage.held_micros == 8 * PRICE
    services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                               event_id="gen", quantity=5)
    usage = services.budgets.get_budget(ctx, org.owner, organization_id=org.id, scope="project", scope_id=project)
    assert (usage.held_micros, usage.spent_today_micros) == (0, 5 * PRICE)
    assert _report(org, "more", 5, project).allowed
    assert _report(org, "over", 1, project).reason == DenialReason.PROJECT_DAILY_BUDGET_REACHED


def test_a_batch_that_crosses_a_budget_names_it_in_a_notice_even_when_nothing_is_denied(org: Org) -> None:
    ctx = org.billing.ctx
    project = uuid.uuid4()
    services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="project", scope_id=project,
                                daily_micros=5 * PRICE)
    outcomes = services.usage.report_usage_batch(ctx, org.platform, organization_id=org.id, events=[
        services.usage.UsageEventInput(event_id=f"b{i}", product="compute", quantity=3, project_id=project)
        for i in range(2)])
    assert [o.allowed for o in outcomes] == [True, True], "the crossing event runs"
    with ctx.uow() as uow:
        notices = [m.payload for m in uow.outbox.list(organization_id=org.id) if m.topic == OutboxTopic.EMAIL]
    assert [n["subject"] for n in notices] == [f"The daily budget of project {project} is reached"], \
        "one email names the project budget"


def test_a_new_budget_counts_the_holds_already_active_in_its_scope(org: Org) -> None:
    ctx = org.billing.ctx
    project = uuid.uuid4()

    def hold(quantity: int) -> uuid.UUID:
        placed = services.holds.place_hold(ctx, org.platform, organization_id=org.id, product="compute",
                                           max_quantity=quantity, project_id=project)
        assert placed.hold is not None, placed.decision
        return placed.hold.id

    def held() -> int:
        return services.budgets.get_budget(ctx, org.owner, organization_id=org.id, scope="project",
                                           scope_id=project).held_micros

    before = hold(6)
    services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="project", scope_id=project,
                                daily_micros=10 * PRICE)
    assert held() == 6 * PRICE, "the hold placed before the budget reserves within it"
    after = hold(4)
    assert held() == 10 * PRICE
    services.holds.release_hold(ctx, org.platform, organization_id=org.id, hold_id=before)
    assert held() == 4 * PRICE, "releasing the older hold leaves the newer one counted"
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean
    services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=after, event_id="g", quantity=4)
    assert held() == 0
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean


def test_reconcile_finds_scope_counters_that_usage_does_not_explain(org: Org) -> None:
    ctx = org.billing.ctx
    services.budgets.put_budget(ctx, org.owner, organization_id=org.id, scope="token", scope_id=_token_id(org),
                                daily_micros=100 * PRICE)
    assert _report(org, "a", 2).allowed
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean
    with ctx.uow() as uow:
        budget = uow.budgets.list(org.id)[0]
        budget.spent_today_micros += 1
        budget.spent_month_micros += 1
        budget.held_micros = 5
        uow.budgets.save([budget])
        uow.commit()
    problems = services.reconcile.reconcile(ctx, organization_id=org.id).problems
    assert any("events record" in p for p in problems) and any("active holds" in p for p in problems)
