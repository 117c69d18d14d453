"""Plan changes exactly once under concurrency (issue 14, item 4; ADR 0009), on the fakes, SQLite
and PostgreSQL, through the public use case and the in-memory payment provider.

Issue 14 reproduced eight concurrent changes to one plan: two successes with two hosted invoices,
plus invoices issued for requests that then failed. Here: one recorded change and one hosted
invoice per subscription version; identical requests all answer with that change, conflicting ones
get a 409 and reach no provider.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from billing_core import services
from billing_core.errors import Conflict, ProviderUnavailable
from billing_core.permissions import Actor
from billing_core.plan_subscription import PlanSubscription
from billing_core.services.context import BillingContext
from tests.reliability.money_support import CONCURRENCY, Money, at_once, backends, money_context, organization


@pytest.fixture(params=backends())
def money(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Money]:
    yield from money_context(request.param, tmp_path)


def _subscribed(money: Money, plan: str = "pro") -> tuple[uuid.UUID, Actor]:
    """An organization on a trial of ``plan``, with a provider customer (so changes are invoiced)."""
    ctx = money.ctx
    org_id, owner = organization(ctx)
    session = services.checkout.start_checkout(ctx, owner, organization_id=org_id, plan=plan,
                                               return_url="https://app.test/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id=f"sub_{uuid.uuid4().hex}")
    money.clock.advance(timedelta(days=2))
    return org_id, owner


def _subscription(ctx: BillingContext, org_id: uuid.UUID) -> PlanSubscription:
    with ctx.uow() as uow:
        sub = uow.plan_subscriptions.current(org_id)
    assert sub is not None
    return sub


def _assert_reconciles(ctx: BillingContext, org_id: uuid.UUID) -> None:
    report = services.reconcile.reconcile(ctx, organization_id=org_id)
    assert report.clean, report


def test_identical_concurrent_changes_issue_one_invoice(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = _subscribed(money)
    at = ctx.clock.now()
    preview = services.plan_changes.preview_plan_change(ctx, owner, organization_id=org_id, plan="scale", at=at)
    outcome = at_once([lambda: services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="scale",
                                                                 preview_at=at)
                      for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    assert len(money.provider.invoices) == 1
    (invoice,) = money.provider.invoices.values()
    assert {r.hosted_invoice for r in outcome.results} == {invoice}
    assert {r.preview for r in outcome.results} == {preview}
    assert _subscription(ctx, org_id).plan == "scale"
    with ctx.uow() as uow:
        changes = uow.plan_changes.list(org_id)
    assert [(c.from_plan, c.to_plan, c.status, c.provider_invoice_id, c.amount_due_cents) for c in changes] == [
        ("pro", "scale", "invoiced", invoice.provider_invoice_id, preview.amount_due_cents)]
    assert money.provider.calls.count("issue_invoice") >= 1
    _assert_reconciles(ctx, org_id)


def test_conflicting_concurrent_changes_one_wins_the_rest_conflict_without_invoices(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = _subscribed(money)
    at = ctx.clock.now()
    targets = ["scale", "starter"] * (CONCURRENCY // 2)
    outcome = at_once([functools.partial(services.plan_changes.change_plan, ctx, owner, organization_id=org_id,
                                        plan=plan, preview_at=at) for plan in targets])
    assert len(money.provider.invoices) == 1
    (invoice,) = money.provider.invoices.values()
    winners = {r.preview.to_plan for r in outcome.results}
    assert len(winners) == 1 and {r.hosted_invoice for r in outcome.results} == {invoice}
    (winner,) = winners
    assert len(outcome.results) == targets.count(winner)
    # Only requests for the winning change may reach the provider (all with its one key).
    assert money.provider.calls.count("issue_invoice") <= targets.count(winner)
    assert all(isinstance(e, Conflict) and e.code == "plan_changed" for e in outcome.errors), outcome.errors
    assert len(outcome.errors) == CONCURRENCY - targets.count(winner)
    assert _subscription(ctx, org_id).plan == winner
    with ctx.uow() as uow:
        assert len(uow.plan_changes.list(org_id)) == 1
    _assert_reconciles(ctx, org_id)


def test_a_new_preview_changes_again_with_its_own_invoice(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = _subscribed(money)
    first = services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="scale",
                                              preview_at=ctx.clock.now())
    money.clock.advance(timedelta(minutes=5))
    second = services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="enterprise",
                                               preview_at=ctx.clock.now())
    assert first.hosted_invoice != second.hosted_invoice and len(money.provider.invoices) == 2
    assert _subscription(ctx, org_id).plan == "enterprise"
    # The first change replayed still answers with its own outcome; a stale preview conflicts.
    assert services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="enterprise",
                                             preview_at=ctx.clock.now()) == second
    with pytest.raises(Conflict) as stale:
        services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="scale",
                                          preview_at=ctx.clock.now() - timedelta(minutes=5))
    assert stale.value.code == "plan_changed" and len(money.provider.invoices) == 2


def test_an_unreachable_provider_keeps_the_change_and_a_retry_issues_its_one_invoice(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = _subscribed(money)
    at = ctx.clock.now()
    money.provider.fail_with = ProviderUnavailable()
    with pytest.raises(ProviderUnavailable):
        services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="scale", preview_at=at)
    assert _subscription(ctx, org_id).plan == "scale" and money.provider.invoices == {}
    with ctx.uow() as uow:
        (pending,) = uow.plan_changes.list(org_id)
    assert pending.status == "pending"
    money.provider.fail_with = None
    outcome = at_once([lambda: services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="scale",
                                                                 preview_at=at)
                      for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    assert list(money.provider.invoices) == [f"plan-change:{pending.id}"]
    with ctx.uow() as uow:
        (done,) = uow.plan_changes.list(org_id)
    assert done.status == "invoiced"
    assert {r.hosted_invoice.provider_invoice_id for r in outcome.results if r.hosted_invoice} == {
        done.provider_invoice_id}
