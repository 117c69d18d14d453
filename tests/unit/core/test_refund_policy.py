"""Refund decisions: window, settlement, used credits and the processor's timeline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing_core.catalog import Catalog
from billing_core.payments import Payment, PaymentPurpose, PaymentStatus, PaymentType
from billing_core.refund_policy import RefundDecisionStatus, RefundDenial, add_business_days, decide_refund

SETTLED = datetime(2026, 3, 2, 12, tzinfo=UTC)  # a Monday
NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)  # Wednesday


def payment(*, amount_cents: int = 2500, credits: int = 25_000_000, status: PaymentStatus = PaymentStatus.SUCCEEDED,
            settled_at: datetime | None = SETTLED, payment_type: PaymentType = PaymentType.CARD,
            purpose: PaymentPurpose = PaymentPurpose.CREDIT_PACK, refunded_cents: int = 0) -> Payment:
    return Payment(id=uuid.uuid4(), organization_id=uuid.uuid4(), purpose=purpose, amount_cents=amount_cents,
                   currency_iso="USD", credits_micros=credits, status=status, created_at=SETTLED,
                   payment_type=payment_type, settled_at=settled_at, refunded_cents=refunded_cents)


@pytest.mark.parametrize(("payment_type", "days", "expected_by"), [
    (PaymentType.CARD, 10, datetime(2026, 3, 18, 12, tzinfo=UTC)),
    (PaymentType.SEPA_DEBIT, 5, datetime(2026, 3, 11, 12, tzinfo=UTC)),
    (PaymentType.US_BANK_ACCOUNT, 5, datetime(2026, 3, 11, 12, tzinfo=UTC)),
    (PaymentType.CRYPTO, 2, datetime(2026, 3, 6, 12, tzinfo=UTC)),
])
def test_approved_with_expected_by_in_business_days(catalog: Catalog, payment_type: PaymentType, days: int,
                                                     expected_by: datetime) -> None:
    decision = decide_refund(payment(payment_type=payment_type), catalog.plan("pro"),
                             unused_credits_micros=100_000_000, now=NOW)
    assert decision.status is RefundDecisionStatus.APPROVED
    assert decision.amount_cents == 2500
    assert decision.credits_micros == 25_000_000
    assert decision.expected_by == expected_by
    assert f"within {days} business days" in decision.message


def test_business_days_skip_weekends() -> None:
    friday = datetime(2026, 3, 6, 9, tzinfo=UTC)
    assert add_business_days(friday, 1) == datetime(2026, 3, 9, 9, tzinfo=UTC)
    assert add_business_days(datetime(2026, 3, 7, tzinfo=UTC), 1) == datetime(2026, 3, 9, tzinfo=UTC)
    assert add_business_days(friday, 0) == friday


def test_partly_used_credits_refund_only_the_unused_part(catalog: Catalog) -> None:
    decision = decide_refund(payment(), catalog.plan("pro"), unused_credits_micros=10_004_999, now=NOW)
    assert decision.status is RefundDecisionStatus.APPROVED
    assert decision.amount_cents == 1000  # whole cents only
    assert decision.credits_micros == 10_000_000


def test_never_more_than_paid(catalog: Catalog) -> None:
    # Credits worth more than the cash paid (a bonus): the refund is capped at what was paid.
    bonus = payment(amount_cents=2000, credits=25_000_000)
    assert decide_refund(bonus, catalog.plan("pro"), unused_credits_micros=10**9, now=NOW).amount_cents == 2000
    partly = payment(refunded_cents=1500)
    assert decide_refund(partly, catalog.plan("pro"), unused_credits_micros=10**9, now=NOW).amount_cents == 1000


@pytest.mark.parametrize(("status", "settled_at", "denial"), [
    (PaymentStatus.PENDING, None, RefundDenial.NOT_SETTLED),
    (PaymentStatus.SUCCEEDED, None, RefundDenial.NOT_SETTLED),
    (PaymentStatus.FAILED, None, RefundDenial.NOT_SETTLED),
    (PaymentStatus.REFUNDED, SETTLED, RefundDenial.ALREADY_REFUNDED),
])
def test_denied_when_not_settled(catalog: Catalog, status: PaymentStatus, settled_at: datetime | None,
                                 denial: RefundDenial) -> None:
    decision = decide_refund(payment(status=status, settled_at=settled_at), catalog.plan("pro"),
                             unused_credits_micros=10**9, now=NOW)
    assert decision.status is RefundDecisionStatus.DENIED
    assert decision.denial is denial
    assert decision.amount_cents == 0 and decision.expected_by is None


def test_window_closes_after_plan_refund_window(catalog: Catalog) -> None:
    pro, scale = catalog.plan("pro"), catalog.plan("scale")  # 14 and 30 days
    edge = SETTLED + timedelta(days=14)
    assert decide_refund(payment(), pro, unused_credits_micros=10**9, now=edge).status is RefundDecisionStatus.APPROVED
    late = decide_refund(payment(), pro, unused_credits_micros=10**9, now=edge + timedelta(seconds=1))
    assert late.denial is RefundDenial.WINDOW_CLOSED
    assert "14 days" in late.message
    assert decide_refund(payment(), scale, unused_credits_micros=10**9,
                         now=edge + timedelta(days=1)).status is RefundDecisionStatus.APPROVED
    # Without a plan the default window is 14 days.
    assert decide_refund(payment(), None, unused_credits_micros=10**9,
                         now=edge + timedelta(days=1)).denial is RefundDenial.WINDOW_CLOSED


@pytest.mark.parametrize("unused", [0, -5_000_000, 9_999])
def test_denied_when_credits_used(catalog: Catalog, unused: int) -> None:
    decision = decide_refund(payment(), catalog.plan("pro"), unused_credits_micros=unused, now=NOW)
    assert decision.denial is RefundDenial.CREDITS_USED
    assert decision.amount_cents == 0


@pytest.mark.parametrize("purpose", [PaymentPurpose.INVOICE, PaymentPurpose.PLAN_CHANGE])
def test_invoice_and_plan_payments_not_refundable_here(catalog: Catalog, purpose: PaymentPurpose) -> None:
    decision = decide_refund(payment(purpose=purpose), catalog.plan("pro"), unused_credits_micros=10**9, now=NOW)
    assert decision.denial is RefundDenial.NOT_REFUNDABLE
