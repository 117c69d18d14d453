"""Reconcile proves every invoice counts exactly the usage buckets marked with it (issue 14, item 5:
a close marked buckets its invoice did not count)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from billing_core import services
from billing_core.services.reconcile import invoices_count_their_buckets
from tests.support.customers import sign_up
from tests.unit.domain_builders import DOLLAR

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def _closed_month() -> tuple[InMemoryBilling, uuid.UUID, uuid.UUID]:
    billing = in_memory_billing(datetime(2026, 8, 10, 9, tzinfo=UTC))
    ctx = billing.ctx
    org_id, _owner, platform = sign_up(ctx, name="R", owner="o", owner_email="o@r.test",
                                        products=("compute", "storage"))
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=10 * DOLLAR, description="g",
                                  idempotency_key="g")
    for n, product in enumerate(("compute", "storage", "compute")):
        assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id=f"u{n}",
                                           product=product, quantity=5 + n).allowed
    billing.clock.set(datetime(2026, 9, 1, 0, 20, tzinfo=UTC))
    invoice_id = services.invoicing.close_period(ctx, period="2026-08").invoice_ids[0]
    # Late usage for August, after the close: uninvoiced, for the next invoice.
    assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id="late", product="compute",
                                       quantity=3, occurred_at=datetime(2026, 8, 31, 23, 50, tzinfo=UTC)).allowed
    return billing, org_id, invoice_id


def _problems(billing: InMemoryBilling, org_id: uuid.UUID) -> tuple[str, ...]:
    ctx = billing.ctx
    report = services.reconcile.reconcile(ctx, organization_id=org_id)
    with ctx.uow() as uow:
        assert list(report.problems) == invoices_count_their_buckets(ctx, uow, org_id)
    return report.problems


def test_closes_with_late_usage_reconcile_clean() -> None:
    billing, org_id, _invoice_id = _closed_month()
    assert _problems(billing, org_id) == ()
    billing.clock.set(datetime(2026, 10, 1, 1, tzinfo=UTC))
    report = services.invoicing.close_period(billing.ctx, period="2026-09")
    assert report.invoices_created == 1
    assert services.reconcile.reconcile(billing.ctx, organization_id=org_id).clean


def test_a_bucket_marked_but_not_counted_is_found() -> None:
    billing, org_id, invoice_id = _closed_month()
    with billing.ctx.uow() as uow:
        # What the racing close did: the late bucket put on the invoice without being counted.
        assert uow.usage.mark_invoiced(org_id, FAR_FUTURE, invoice_id) == 1
        uow.commit()
    problems = _problems(billing, org_id)
    assert len(problems) == 2 and all("buckets marked with it" in p for p in problems), problems
    assert "INV-000001 counts" in problems[0]


def test_a_bucket_marked_with_a_missing_invoice_is_found() -> None:
    billing, org_id, _invoice_id = _closed_month()
    ghost = uuid.uuid4()
    with billing.ctx.uow() as uow:
        uow.usage.mark_invoiced(org_id, FAR_FUTURE, ghost)
        uow.commit()
    late = billing.ctx.catalog.product_by_code("compute").unit_price_micros * 3
    assert _problems(billing, org_id) == (f"usage buckets of {late} µ$ are marked with invoice {ghost}, "
                                          "which does not exist",)


def test_invoice_lines_that_differ_from_their_buckets_are_found() -> None:
    billing, org_id, invoice_id = _closed_month()
    with billing.ctx.uow() as uow:
        invoice = uow.invoices.get(org_id, invoice_id)
        first, *rest = invoice.items
        invoice.items = (msgspec.structs.replace(first, quantity=first.quantity + 1), *rest)
        uow.invoices.save(invoice)
        uow.commit()
    problems = _problems(billing, org_id)
    assert len(problems) == 1 and "differ from the buckets marked with it" in problems[0], problems
