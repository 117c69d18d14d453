"""Refund requests decided by plan terms and the processor's timeline per payment type.

A refund request answers: approved (how much, expected to land by) or denied (why).
Credit packs and top-ups are refundable only for credits not used since.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from billing_core.catalog import Plan
from billing_core.money import MICROS_PER_CENT
from billing_core.payments import Payment, PaymentPurpose, PaymentStatus, PaymentType

# Business days the processor takes to return funds, by payment type (Stripe's published ranges,
# upper bound): cards 5-10 business days, SEPA debits about 5, crypto settles on-chain quickly.
PROCESSOR_TIMELINE_DAYS: dict[PaymentType, int] = {
    PaymentType.CARD: 10,
    PaymentType.SEPA_DEBIT: 5,
    PaymentType.US_BANK_ACCOUNT: 5,
    PaymentType.CRYPTO: 2,
}


class RefundDecisionStatus(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


class RefundDenial(StrEnum):
    NOT_SETTLED = "payment_not_settled"
    ALREADY_REFUNDED = "already_refunded"
    WINDOW_CLOSED = "refund_window_closed"
    CREDITS_USED = "credits_already_used"
    NOT_REFUNDABLE = "not_refundable"


class RefundDecision(msgspec.Struct, frozen=True, kw_only=True):
    status: RefundDecisionStatus
    amount_cents: int = 0
    credits_micros: int = 0
    denial: RefundDenial | None = None
    message: str
    expected_by: datetime | None = None


def add_business_days(start: datetime, days: int) -> datetime:
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def decide_refund(payment: Payment, plan: Plan | None, *, unused_credits_micros: int,
                  now: datetime) -> RefundDecision:
    """Decide a refund of ``payment``; ``unused_credits_micros`` is the credit not used yet: the
    settled wallet net of uninvoiced usage (never more than the settled wallet)."""
    if payment.status != PaymentStatus.SUCCEEDED or payment.settled_at is None \
            or payment.refunded_cents >= payment.amount_cents:
        denial = (RefundDenial.ALREADY_REFUNDED
                  if payment.status == PaymentStatus.REFUNDED or payment.refunded_cents >= payment.amount_cents
                  else RefundDenial.NOT_SETTLED)
        return RefundDecision(status=RefundDecisionStatus.DENIED, denial=denial,
                              message="Only a settled payment that was not refunded can be refunded.")
    window_days = plan.refund_window_days if plan is not None else 14
    if now > payment.settled_at + timedelta(days=window_days):
        return RefundDecision(status=RefundDecisionStatus.DENIED, denial=RefundDenial.WINDOW_CLOSED,
                              message=f"Refunds are possible within {window_days} days of payment.")
    if payment.purpose in (PaymentPurpose.INVOICE, PaymentPurpose.PLAN_CHANGE):
        return RefundDecision(status=RefundDecisionStatus.DENIED, denial=RefundDenial.NOT_REFUNDABLE,
                              message="Invoices and plan charges are refunded through a credit note.")
    refundable_micros = min(payment.credits_micros, max(unused_credits_micros, 0))
    # Refund whole cents only, never more than was paid.
    cents = min(payment.amount_cents - payment.refunded_cents, refundable_micros // MICROS_PER_CENT)
    if cents <= 0:
        return RefundDecision(status=RefundDecisionStatus.DENIED, denial=RefundDenial.CREDITS_USED,
                              message="The credits bought with this payment have been used.")
    days = PROCESSOR_TIMELINE_DAYS.get(payment.payment_type, 10)
    return RefundDecision(
        status=RefundDecisionStatus.APPROVED, amount_cents=cents, credits_micros=cents * MICROS_PER_CENT,
        message=f"Refund approved; expect it within {days} business days.",
        expected_by=add_business_days(now, days),
    )


class RefundStatus(StrEnum):
    """Where a refund request stands (ADR 0009: the request is the refund's recorded intent).

    A denied request is final when recorded. An approved one is recorded PENDING with its amount
    already reserved on the payment and its credits already out of the wallet, before the provider
    is asked; it then completes exactly once, SUCCEEDED (the provider refunded) or FAILED (the
    provider refused for good: the reservation and the credits are given back).
    """

    DENIED = "denied"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundRequest(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID
    payment_id: uuid.UUID
    requested_by: str
    reason: str | None
    created_at: datetime
    decision: RefundDecision
    provider_refund_id: str | None = None
    status: RefundStatus = RefundStatus.PENDING
    failure_message: str | None = None
    completed_at: datetime | None = None

    @property
    def holds_money(self) -> bool:
        """Whether the request's amount counts as refunded (reserved or done): approved, not failed."""
        return self.status in (RefundStatus.PENDING, RefundStatus.SUCCEEDED)


def new_request(*, request_id: uuid.UUID, payment: Payment, requested_by: str, reason: str | None,
                decision: RefundDecision, now: datetime) -> RefundRequest:
    """The request as recorded: PENDING when approved (the provider is asked next), else DENIED."""
    status = RefundStatus.PENDING if decision.status == RefundDecisionStatus.APPROVED else RefundStatus.DENIED
    return RefundRequest(id=request_id, organization_id=payment.organization_id, payment_id=payment.id,
                         requested_by=requested_by, reason=reason, created_at=now, decision=decision,
                         status=status, completed_at=now if status == RefundStatus.DENIED else None)
