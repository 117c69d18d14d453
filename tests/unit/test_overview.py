"""The Billing Overview's wallet figures: Total Credits, Usage This Period, Remaining Credits,
Overage Protection, the Daily Hard Limit used, and Available to Use."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from adapters.fakes import InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import invoice
from billing_core.invoices import InvoiceStatus
from billing_core.ledger import EntryKind
from billing_core.money import format_credits
from billing_core.overview import GROSS_CREDIT_KINDS, WalletOverview, gross_credits, wallet_overview
from billing_core.services.overview import RecoveryBanner, recovery_banners
from billing_core.spend_guard import decide
from billing_core.wallet import SpendLimits
from tests.unit.domain_builders import DOLLAR, NOW, wallet_account

TODAY = NOW.date()


def test_the_six_figures() -> None:
    wallet = wallet_account(
        wallet=130 * DOLLAR, unbilled=-12_480_000,
        limits=SpendLimits(credit_line_micros=50 * DOLLAR, daily_budget_micros=20 * DOLLAR),
        spend_day=TODAY, today=7 * DOLLAR, yesterday=3 * DOLLAR, spend_month="2026-03", month=12_480_000)
    overview = wallet_overview(wallet, NOW, total_credits=wallet.wallet_micros)
    assert overview == WalletOverview(
        total_credits=130 * DOLLAR,  # as given: gross credits purchased or granted (gross_credits)
        usage_this_period=12_480_000,  # uninvoiced usage, shown positive
        remaining_credits=117_520_000,  # the settled wallet minus uninvoiced usage: the real-time balance
        overage_protection=50 * DOLLAR,  # the credit line
        daily_hard_limit_used=7 * DOLLAR, daily_hard_limit=20 * DOLLAR,
        available_to_use=13 * DOLLAR,  # the daily budget is the tightest limit
        consumed_today=7 * DOLLAR, consumed_yesterday=3 * DOLLAR)
    assert format_credits(overview.remaining_credits) == "$117.520"


def test_remaining_is_the_balance_and_total_is_what_it_is_given() -> None:
    overview = wallet_overview(wallet_account(wallet=10 * DOLLAR, unbilled=-25 * DOLLAR), NOW,
                               total_credits=100 * DOLLAR)
    assert overview.remaining_credits == -15 * DOLLAR
    assert (overview.total_credits, overview.usage_this_period) == (100 * DOLLAR, 25 * DOLLAR)


def test_total_credits_is_gross_purchases_and_grants_less_what_was_taken_back() -> None:
    """The seed: "the total number of usage credits (gross) you've purchased or have been granted"."""
    sums = dict.fromkeys(EntryKind, 0) | {
        EntryKind.TOP_UP: 100 * DOLLAR, EntryKind.CREDIT_PACK: 10 * DOLLAR, EntryKind.AUTO_RECHARGE: 25 * DOLLAR,
        EntryKind.GRANT: 5 * DOLLAR, EntryKind.GRANT_EXPIRY: -2 * DOLLAR, EntryKind.PAYMENT_REVERSAL: -25 * DOLLAR,
        EntryKind.CREDIT_REFUND: -10 * DOLLAR,
        # Not purchases or grants: invoices drawing on the wallet, a voided invoice returning it.
        EntryKind.INVOICE_CREDIT_APPLIED: -30 * DOLLAR, EntryKind.ADJUSTMENT: 30 * DOLLAR}
    assert gross_credits(sums) == 103 * DOLLAR
    assert {EntryKind.TOP_UP, EntryKind.CREDIT_PACK, EntryKind.AUTO_RECHARGE, EntryKind.GRANT,
            EntryKind.PAYMENT_REVERSAL, EntryKind.CREDIT_REFUND, EntryKind.GRANT_EXPIRY} == GROSS_CREDIT_KINDS


def test_available_uses_the_overage_protection_on_a_negative_balance() -> None:
    wallet = wallet_account(wallet=10 * DOLLAR, unbilled=-25 * DOLLAR,
                            limits=SpendLimits(credit_line_micros=50 * DOLLAR))
    overview = wallet_overview(wallet, NOW, total_credits=wallet.wallet_micros)
    assert overview.available_to_use == 35 * DOLLAR
    assert decide(wallet, overview.available_to_use, NOW).allowed
    assert not decide(wallet, overview.available_to_use + 1, NOW).allowed


def test_available_is_never_negative_and_respects_the_minimum() -> None:
    overdrawn = wallet_account(wallet=0, unbilled=-60 * DOLLAR, limits=SpendLimits(credit_line_micros=50 * DOLLAR))
    assert wallet_overview(overdrawn, NOW, total_credits=0).available_to_use == 0
    minimum = wallet_account(wallet=5 * DOLLAR, limits=SpendLimits(minimum_production_credit_micros=2 * DOLLAR))
    assert wallet_overview(minimum, NOW, total_credits=0).available_to_use == 3 * DOLLAR


def test_without_spend_management_there_is_no_daily_limit() -> None:
    overview = wallet_overview(wallet_account(wallet=42 * DOLLAR), NOW, total_credits=42 * DOLLAR)
    assert overview.daily_hard_limit is None
    assert (overview.daily_hard_limit_used, overview.overage_protection) == (0, 0)
    assert overview.available_to_use == 42 * DOLLAR


def test_the_monthly_cap_limits_available() -> None:
    wallet = wallet_account(wallet=500 * DOLLAR, limits=SpendLimits(monthly_cap_micros=100 * DOLLAR),
                            spend_day=TODAY, today=DOLLAR, spend_month="2026-03", month=90 * DOLLAR)
    assert wallet_overview(wallet, NOW, total_credits=wallet.wallet_micros).available_to_use == 10 * DOLLAR


def test_the_day_figures_roll_over_at_utc_midnight() -> None:
    wallet = wallet_account(limits=SpendLimits(daily_budget_micros=20 * DOLLAR), spend_day=TODAY, today=20 * DOLLAR,
                            yesterday=3 * DOLLAR, spend_month="2026-03", month=23 * DOLLAR)
    assert wallet_overview(wallet, NOW, total_credits=wallet.wallet_micros).available_to_use == 0
    tomorrow = wallet_overview(wallet, NOW + timedelta(days=1), total_credits=0)
    assert (tomorrow.consumed_today, tomorrow.consumed_yesterday, tomorrow.daily_hard_limit_used) == (
        0, 20 * DOLLAR, 0)
    assert tomorrow.available_to_use == 20 * DOLLAR


def test_the_unpaid_invoice_banner_finds_an_unpaid_invoice_past_the_first_page() -> None:
    """Invoices list newest first, 200 a page: an old unpaid invoice behind 1,001 newer paid ones
    still raises the banner (it once read only the first 1,000)."""
    org = uuid.uuid4()
    uow = InMemoryUnitOfWork(InMemoryStore())
    start = datetime(2000, 1, 1, tzinfo=UTC)
    uow.invoices.add(invoice(org, start, status=InvoiceStatus.OPEN))
    for month in range(1, 1002):
        uow.invoices.add(invoice(org, start + timedelta(days=31 * month), status=InvoiceStatus.PAID))
    assert [b.kind for b in recovery_banners(uow, org)] == [RecoveryBanner.COLLECTIBLE_INVOICES]
