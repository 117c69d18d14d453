"""Voiding a finalized invoice: the number stays used, credits return, the ledger balances, and a
credit note reaches the legal document."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.fakes import in_memory_billing
from billing_core import services
from billing_core.invoices import InvoiceStatus
from tests.support.customers import sign_up
from tests.unit.domain_builders import DOLLAR


def test_void_keeps_numbering_gapless_and_the_ledger_balanced() -> None:
    billing = in_memory_billing(datetime(2026, 8, 10, 9, tzinfo=UTC))
    ctx = billing.ctx
    org_id, owner, platform = sign_up(ctx, name="V", owner="o", owner_email="o@v.test")
    services.wallet.grant_credits(ctx, organization_id=org_id, amount_micros=10 * DOLLAR, description="g",
                                  idempotency_key="g")
    for month in (8, 9):
        billing.clock.set(datetime(2026, month, 10, 9, tzinfo=UTC))
        assert services.usage.report_usage(ctx, platform, organization_id=org_id, event_id=f"u{month}",
                                           product="compute", quantity=50).allowed
    billing.clock.set(datetime(2026, 10, 2, tzinfo=UTC))
    august = services.invoicing.close_period(ctx, period="2026-08").invoice_ids[0]
    services.dispatch.dispatch(ctx, billing.deliverers)
    wallet_before = services.overview.overview(ctx, owner, organization_id=org_id).wallet.total_credits

    voided = services.invoicing.void_invoice(ctx, organization_id=org_id, invoice_id=august, reason="billed twice")
    assert voided.status == InvoiceStatus.VOID
    again = services.invoicing.void_invoice(ctx, organization_id=org_id, invoice_id=august, reason="billed twice")
    assert again.voided_at == voided.voided_at
    applied = voided.credit_applied_cents * 10_000
    assert services.overview.overview(ctx, owner,
                                      organization_id=org_id).wallet.total_credits == wallet_before + applied
    assert services.reconcile.reconcile(ctx, organization_id=org_id).clean

    september = services.invoicing.close_period(ctx, period="2026-09").invoice_ids[0]
    numbers = [services.invoicing.get_invoice(ctx, owner, organization_id=org_id, invoice_id=i).number
               for i in (august, september)]
    assert numbers == ["INV-000001", "INV-000002"]
    services.dispatch.dispatch(ctx, billing.deliverers)
    assert len(billing.legal.credit_notes) == 1
    assert services.reconcile.reconcile(ctx, organization_id=org_id).clean
