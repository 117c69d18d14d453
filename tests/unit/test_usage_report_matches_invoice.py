"""The usage report's totals are the core's and round as invoices do: a closed period's report
totals its invoice to the cent, where rounding the whole window once would not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from adapters.fakes import in_memory_billing
from billing_core import services
from tests.support.customers import sign_up
from tests.unit.domain_builders import DOLLAR


def test_a_report_of_a_closed_period_totals_its_invoice_to_the_cent() -> None:
    billing = in_memory_billing(datetime(2026, 1, 5, 9, tzinfo=UTC))
    ctx = billing.ctx
    org_id, owner, platform = sign_up(ctx, name="R", owner="o", owner_email="o@r.test")
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org_id, product="storage",
                                                     project_id=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=10 * DOLLAR, description="g",
                                  idempotency_key="g")
    # Three projects, 40 GB-hours each at $0.000150: $0.006 each, one cent each on the invoice.
    for n in range(3):
        billing.clock.set(datetime(2026, 1, 10 + n, 8, tzinfo=UTC))
        assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id=f"s{n}",
                                           product="storage", quantity=40, project_id=uuid.uuid4()).allowed
    billing.clock.set(datetime(2026, 2, 2, tzinfo=UTC))
    (invoice_id,) = services.invoicing.close_period(ctx, period="2026-01").invoice_ids
    invoice = services.invoicing.get_invoice(ctx, owner, organization_id=org_id, invoice_id=invoice_id)
    report = services.usage.usage_report(ctx, owner, organization_id=org_id,
                                         start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 2, 1, tzinfo=UTC))

    assert report.total_micros == invoice.usage_micros == 18_000
    assert report.invoice_total.cents == invoice.subtotal_cents == 3  # rounding the whole once: 2 cents
    assert sorted(i.amount.cents for i in report.items) == sorted(i.amount.cents for i in invoice.items)
    assert [(t.quantity, t.amount_micros) for t in report.by_product] == [(120, 18_000)]
    assert sorted(t.amount_micros for t in report.by_project) == [6_000, 6_000, 6_000]
