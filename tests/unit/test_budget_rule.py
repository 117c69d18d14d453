"""Issue 19 items 2 and 3 through the use cases: the daily budget's rule at its boundary (exactly
at the budget, one micro over, the crossing call runs in full, the next is denied until 00:00 UTC,
a refund after the block unblocks the same day), the monthly cap's same rule, and Total Credits
as gross credits purchased or granted."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.fakes import InMemoryBilling, in_memory_billing
from billing_core import services
from billing_core.billing_settings import SpendManagement
from billing_core.spend_guard import DenialReason
from tests.support.customers import Customer, sign_up
from tests.unit.domain_builders import DOLLAR

NOW = datetime(2026, 6, 10, 15, tzinfo=UTC)
COMPUTE = 40_000
"""Micro-dollars of one unit of compute."""


def customer(*, daily_budget: int | None = None, monthly_cap: int | None = None) -> tuple[InMemoryBilling, Customer]:
    billing = in_memory_billing(NOW)
    who = sign_up(billing.ctx)
    services.wallet.grant_credits(billing.ctx, organization_id=who.organization_id, amount_micros=100 * DOLLAR,
                                  description="g", idempotency_key="g")
    services.settings.update_spend_management(
        billing.ctx, who.owner, organization_id=who.organization_id,
        spend=SpendManagement(enabled=True, daily_budget_micros=daily_budget, monthly_cap_micros=monthly_cap))
    return billing, who


def report(billing: InMemoryBilling, who: Customer, event_id: str, quantity: int = 1) -> services.usage.UsageOutcome:
    return services.usage.report_usage(billing.ctx, who.platform, organization_id=who.organization_id,
                                       event_id=event_id, product="compute", quantity=quantity)


def consumed_today(billing: InMemoryBilling, who: Customer) -> int:
    return services.overview.overview(billing.ctx, who.owner, organization_id=who.organization_id).wallet.consumed_today


def test_exactly_at_the_budget_the_next_call_is_denied_until_midnight() -> None:
    billing, who = customer(daily_budget=2 * COMPUTE)
    assert report(billing, who, "a").allowed
    assert report(billing, who, "b").allowed  # lands exactly on the budget
    denied = report(billing, who, "c")
    assert (denied.allowed, denied.reason) == (False, DenialReason.DAILY_BUDGET_REACHED)
    assert denied.retry_at == datetime(2026, 6, 11, tzinfo=UTC)
    billing.clock.set(datetime(2026, 6, 10, 23, 59, 59, 999999, tzinfo=UTC))
    assert report(billing, who, "d").reason is DenialReason.DAILY_BUDGET_REACHED
    billing.clock.set(datetime(2026, 6, 11, tzinfo=UTC))
    assert report(billing, who, "e").allowed


def test_one_micro_under_the_call_that_crosses_runs_in_full_then_the_next_is_denied() -> None:
    billing, who = customer(daily_budget=2 * COMPUTE + 1)
    assert report(billing, who, "a", quantity=2).allowed  # one micro under the budget
    crossing = report(billing, who, "crossing", quantity=5)
    assert crossing.allowed and crossing.amount_micros == 5 * COMPUTE  # debited in full
    assert consumed_today(billing, who) == 7 * COMPUTE
    assert crossing.balance_micros == 100 * DOLLAR - 7 * COMPUTE
    assert report(billing, who, "next").reason is DenialReason.DAILY_BUDGET_REACHED


def test_one_micro_over_the_budget_is_denied() -> None:
    billing, who = customer(daily_budget=2 * COMPUTE - 1)
    assert report(billing, who, "a", quantity=2).allowed  # the crossing call: one micro over
    assert consumed_today(billing, who) == 2 * COMPUTE
    assert report(billing, who, "b").reason is DenialReason.DAILY_BUDGET_REACHED


def test_a_refund_after_the_block_unblocks_the_same_day() -> None:
    billing, who = customer(daily_budget=2 * COMPUTE)
    assert report(billing, who, "a").allowed
    assert report(billing, who, "failed").allowed
    assert report(billing, who, "blocked").reason is DenialReason.DAILY_BUDGET_REACHED
    refund = services.usage.refund_usage(billing.ctx, who.platform, organization_id=who.organization_id,
                                         event_id="failed")
    assert not refund.replayed
    assert consumed_today(billing, who) == COMPUTE  # the refunded usage no longer counts
    again = services.usage.refund_usage(billing.ctx, who.platform, organization_id=who.organization_id,
                                        event_id="failed")
    assert again.replayed and consumed_today(billing, who) == COMPUTE  # given back once
    assert report(billing, who, "resumed").allowed
    assert report(billing, who, "blocked-again").reason is DenialReason.DAILY_BUDGET_REACHED
    assert services.reconcile.reconcile(billing.ctx, organization_id=who.organization_id).clean


def test_the_monthly_cap_has_the_same_rule_and_refunds_give_the_month_back() -> None:
    billing, who = customer(monthly_cap=2 * COMPUTE + 1)
    assert report(billing, who, "a", quantity=2).allowed
    assert report(billing, who, "crossing", quantity=3).allowed
    billing.clock.set(datetime(2026, 6, 20, tzinfo=UTC))
    denied = report(billing, who, "later")
    assert (denied.reason, denied.retry_at) == (DenialReason.MONTHLY_BUDGET_REACHED, datetime(2026, 7, 1, tzinfo=UTC))
    services.usage.refund_usage(billing.ctx, who.platform, organization_id=who.organization_id,
                                event_id="crossing")
    assert report(billing, who, "after-refund").allowed


def test_total_credits_is_gross_a_100_top_up_then_30_invoiced_is_100() -> None:
    billing = in_memory_billing(datetime(2026, 5, 10, tzinfo=UTC))
    ctx = billing.ctx
    who = sign_up(ctx)
    org = who.organization_id
    services.payment_methods.attach(ctx, who.owner, organization_id=org, provider_payment_method_id="pm_card_visa")
    services.payments.add_credits(ctx, who.owner, organization_id=org, amount_micros=100 * DOLLAR)
    assert report(billing, who, "month", quantity=750).allowed  # $30 of compute
    billing.clock.set(datetime(2026, 6, 2, tzinfo=UTC))
    invoice_id = services.invoicing.close_period(ctx, period="2026-05").invoice_ids[0]
    invoice = services.invoicing.get_invoice(ctx, who.owner, organization_id=org, invoice_id=invoice_id)
    assert invoice.credit_applied_cents == 3_000
    wallet = services.overview.overview(ctx, who.owner, organization_id=org).wallet
    assert wallet.total_credits == 100 * DOLLAR
    assert (wallet.usage_this_period, wallet.remaining_credits) == (0, 70 * DOLLAR)
