"""Batched usage: all validated before anything is written, then debited one by one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.fakes import in_memory_billing
from billing_core import Conflict, InvalidInput, services
from billing_core.services.usage import UsageEventInput
from billing_core.spend_guard import DenialReason
from tests.support.customers import sign_up


def test_batch_stops_at_the_wallet_and_never_half_writes_bad_input() -> None:
    billing = in_memory_billing(datetime(2026, 7, 1, 12, tzinfo=UTC))
    ctx = billing.ctx
    org_id, _, svc = sign_up(ctx, name="B", owner="o", owner_email="o@b.test")
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=1_000_000, description="g",
                                  idempotency_key="g")
    ledger_before = len(billing.store.ledger)

    with pytest.raises(InvalidInput) as bad:
        services.usage.report_usage_batch(ctx, svc, organization_id=org_id, events=[
         UsageEventInput(event_id="a", product="compute", quantity=1),
         UsageEventInput(event_id="b", product="nope", quantity=1)])
    assert bad.value.field == "events[1].product"
    with pytest.raises(Conflict) as unsubscribed:
        services.usage.report_usage_batch(ctx, svc, organization_id=org_id, events=[
         UsageEventInput(event_id="a", product="compute", quantity=1),
         UsageEventInput(event_id="c", product="storage", quantity=1)])
    assert unsubscribed.value.field == "events[1].product"
    assert len(billing.store.ledger) == ledger_before

    # $1 of credit, $0.40 per event: two pass, the rest are denied for credit.
    outcomes = services.usage.report_usage_batch(ctx, svc, organization_id=org_id, events=[
     UsageEventInput(event_id=f"e{n}", product="compute", quantity=10) for n in range(4)])
    assert [o.allowed for o in outcomes] == [True, True, False, False]
    assert outcomes[2].reason == DenialReason.INSUFFICIENT_CREDIT
    assert outcomes[1].balance_micros == 200_000
    again = services.usage.report_usage_batch(ctx, svc, organization_id=org_id, events=[
     UsageEventInput(event_id="e0", product="compute", quantity=10)])
    assert again[0].replayed
    assert services.reconcile.reconcile(ctx, organization_id=org_id).clean
