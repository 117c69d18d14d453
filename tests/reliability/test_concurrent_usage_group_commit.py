"""Group commit (``services.usage_group.UsageGroupCommit``, what ``billing serve`` answers
``POST …/usage/events`` with): many threads reporting usage for one organization at once, on memory,
SQLite and PostgreSQL. Whatever groups form, the answers are those of the calls one by one: exactly
the affordable events pass (no overdraft), each event id is debited once with identical answers to
its replays, a bad call gets its own error without touching the others, and the ledger, the buckets
and ``reconcile`` agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from billing_core import services
from billing_core.errors import Conflict, InvalidInput, NotFound
from billing_core.ledger import EntryKind
from billing_core.services.usage import UsageOutcome
from billing_core.services.usage_group import UsageGroupCommit
from tests.reliability.money_support import NOW, Money, at_once, backends, money_context
from tests.support.customers import Customer, sign_up

THREADS = 16
PER_THREAD = 12
QUANTITY = 2


@pytest.fixture(params=backends())
def money(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Money]:
    yield from money_context(str(request.param), tmp_path)


def _customer(money: Money, affordable: int) -> tuple[Customer, int]:
    customer = sign_up(money.ctx, name="Hot", products=("inference",))
    amount = money.ctx.catalog.product_by_code("inference").unit_price_micros * QUANTITY
    services.wallet.grant_credits(money.ctx, organization_id=customer.organization_id,
                                  amount_micros=amount * affordable, description="grant", idempotency_key="grant")
    return customer, amount


def _usage_count(money: Money, customer: Customer) -> int:
    with money.ctx.uow() as uow:
        return len(uow.ledger.list(customer.organization_id, kinds=frozenset({EntryKind.USAGE}), limit=1000).items)


def _bucket_quantity(money: Money, customer: Customer) -> int:
    with money.ctx.uow() as uow:
        return sum(b.quantity for b in uow.usage.buckets(customer.organization_id, NOW - timedelta(days=1),
                                                          NOW + timedelta(days=1)))


def test_exactly_the_affordable_events_pass_and_everything_reconciles(money: Money) -> None:
    affordable = THREADS * PER_THREAD * 2 // 3
    customer, amount = _customer(money, affordable)
    group = UsageGroupCommit(money.ctx)

    def reporter(thread: int) -> list[UsageOutcome]:
        return [group.report(customer.platform, organization_id=customer.organization_id,
                             event_id=f"t{thread}-{n}", product="inference", quantity=QUANTITY)
                for n in range(PER_THREAD)]

    outcomes = at_once([lambda t=t: reporter(t) for t in range(THREADS)])  # type: ignore[misc]
    assert outcomes.errors == []
    answers = [o for thread in outcomes.results for o in thread]
    allowed = [o for o in answers if o.allowed]
    assert len(allowed) == affordable
    assert all(o.reason is not None and o.reason.value == "insufficient_credit" for o in answers if not o.allowed)
    assert all(not o.replayed and o.amount_micros == amount for o in answers)
    assert sorted(o.balance_micros for o in allowed) == [amount * n for n in range(affordable)]
    assert _usage_count(money, customer) == affordable
    assert _bucket_quantity(money, customer) == affordable * QUANTITY
    report = services.reconcile.reconcile(money.ctx, organization_id=customer.organization_id)
    assert report.clean, report
    with money.ctx.uow() as uow:
        assert uow.wallets.get(customer.organization_id).balance_micros == 0


def test_one_event_id_from_many_callers_is_debited_once_with_identical_answers(money: Money) -> None:
    customer, amount = _customer(money, 100)
    group = UsageGroupCommit(money.ctx)

    def report() -> UsageOutcome:
        return group.report(customer.platform, organization_id=customer.organization_id, event_id="same",
                            product="inference", quantity=QUANTITY)

    outcomes = at_once([report] * THREADS)
    assert outcomes.errors == []
    assert sum(not o.replayed for o in outcomes.results) == 1
    assert {(o.allowed, o.amount_micros, o.balance_micros) for o in outcomes.results} == {(True, amount, 99 * amount)}
    assert _usage_count(money, customer) == 1
    assert _bucket_quantity(money, customer) == QUANTITY


def test_a_bad_call_gets_its_own_error_and_the_others_pass(money: Money) -> None:
    customer, _ = _customer(money, 100)
    group = UsageGroupCommit(money.ctx)

    def good(n: int) -> UsageOutcome:
        return group.report(customer.platform, organization_id=customer.organization_id, event_id=f"g{n}",
                            product="inference", quantity=QUANTITY)

    def unknown_product() -> UsageOutcome:
        return group.report(customer.platform, organization_id=customer.organization_id, event_id="bad",
                            product="no-such-product", quantity=QUANTITY)

    def not_subscribed() -> UsageOutcome:
        return group.report(customer.platform, organization_id=customer.organization_id, event_id="unsub",
                            product="storage", quantity=QUANTITY)

    calls = [lambda n=n: good(n) for n in range(THREADS - 2)] + [unknown_product, not_subscribed]
    outcomes = at_once(calls)
    assert sorted(getattr(e, "code", type(e).__name__) for e in outcomes.errors) == [
        "product_not_subscribed", "unknown_product"]
    assert any(isinstance(e, InvalidInput) and e.code == "unknown_product" for e in outcomes.errors)
    assert any(isinstance(e, Conflict) and e.code == "product_not_subscribed" for e in outcomes.errors)
    assert len(outcomes.results) == THREADS - 2 and all(o.allowed for o in outcomes.results)
    assert _usage_count(money, customer) == THREADS - 2
    assert services.reconcile.reconcile(money.ctx, organization_id=customer.organization_id).clean


def test_a_caller_without_the_permission_is_refused_before_it_queues(money: Money) -> None:
    customer, _ = _customer(money, 10)
    other, _ = _customer(money, 10)
    group = UsageGroupCommit(money.ctx)
    with pytest.raises(NotFound):  # another organization's token: the organization does not exist for it
        group.report(other.platform, organization_id=customer.organization_id, event_id="x", product="inference",
                     quantity=QUANTITY)
    assert _usage_count(money, customer) == 0
