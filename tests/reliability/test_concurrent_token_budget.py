"""64 usage events at once against an API token's daily budget that affords 10, on SQLite and
PostgreSQL (threads of one process, each with its own connection): exactly 10 are debited, the
ledger holds exactly their 10 usage transactions, the token's counter is exactly theirs, and every
other event is denied with ``token_daily_budget_reached`` and writes nothing (ADR 0017)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from billing_core import services
from billing_core.ledger import EntryKind
from billing_core.services.context import BillingContext
from billing_core.services.usage import UsageOutcome
from billing_core.spend_guard import DenialReason
from billing_core.wallet import counters_at
from tests.e2e.conftest import START
from tests.reliability.money_support import at_once, sql_context
from tests.support.customers import Customer, sign_up

EVENTS = 64
PRICE = 40_000  # compute, per vCPU-hour
QUANTITY = 25  # $1.00 an event


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BillingContext]:
    yield from sql_context(request.param, tmp_path, now=START, pool_size=16)


@pytest.fixture
def customer(ctx: BillingContext) -> Customer:
    customer = sign_up(ctx, name="Race", owner="ada", owner_email="ada@race.test", products=("compute",))
    services.wallet.grant_credits(ctx, organization_id=customer.organization_id, amount_micros=1_000 * QUANTITY * PRICE,
                                  description="grant", idempotency_key="grant")
    assert customer.platform.token_id is not None
    # Exactly 10 events fit under the rule (denied once spent reaches the budget): 9 leave it under
    # by one micro-dollar, the 10th crosses it, the rest are denied.
    services.budgets.put_budget(ctx, customer.owner, organization_id=customer.organization_id, scope="token",
                                scope_id=customer.platform.token_id, daily_micros=9 * QUANTITY * PRICE + 1)
    return customer


def test_64_concurrent_events_against_a_token_budget_for_10_debit_exactly_10(ctx: BillingContext,
                                                                             customer: Customer) -> None:
    org = customer.organization_id

    def report(n: int) -> Callable[[], UsageOutcome]:
        return lambda: services.usage.report_usage(ctx, customer.platform, organization_id=org,
                                                   event_id=f"race-{n}", product="compute", quantity=QUANTITY)

    reported = at_once([report(n) for n in range(EVENTS)])
    assert reported.errors == []
    allowed = [o for o in reported.results if o.allowed]
    denied = [o for o in reported.results if not o.allowed]
    assert len(allowed) == 10
    assert {o.reason for o in denied} == {DenialReason.TOKEN_DAILY_BUDGET_REACHED}
    with ctx.uow() as uow:
        usage = [tx for tx in uow.ledger.list(org, kinds=frozenset({EntryKind.USAGE}), limit=100).items]
        assert sorted(tx.reference or "" for tx in usage) == sorted(o.event_id for o in allowed)
        assert all(uow.usage.get_event(org, o.event_id) is None for o in denied), "a denied event writes nothing"
        budget = uow.budgets.list(org)[0]
        assert counters_at(budget, START).today == 10 * QUANTITY * PRICE
        assert counters_at(uow.wallets.get(org), START).today == 10 * QUANTITY * PRICE
    assert services.reconcile.reconcile(ctx, organization_id=org).clean
