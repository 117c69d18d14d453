"""Refund requests: approved with the amount and when it lands per payment type, or denied with why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import in_memory_billing
from billing_core import services
from billing_core.catalog import Catalog
from billing_core.payments import Payment, PaymentPurpose, PaymentStatus, PaymentType
from billing_core.permissions import Permission
from billing_core.refund_policy import (
    PROCESSOR_TIMELINE_DAYS,
    RefundDecision,
    RefundDecisionStatus,
    RefundDenial,
    add_business_days,
    decide_refund,
)
from tests.unit.domain_builders import CENT, DOLLAR, NOW, ORG

APPROVED, DENIED = RefundDecisionStatus.APPROVED, RefundDecisionStatus.DENIED
SETTLED = NOW - timedelta(days=2)


def payment(*, purpose: PaymentPurpose = PaymentPurpose.CREDIT_PACK, dollars: int = 100,
            status: PaymentStatus = PaymentStatus.SUCCEEDED, settled_at: datetime | None = SETTLED,
            payment_type: PaymentType = PaymentType.CARD, refunded_cents: int = 0) -> Payment:
    return Payment(id=uuid.uuid4(), organization_id=ORG, purpose=purpose, amount_cents=dollars * 100,
                   currency_iso="USD", credits_micros=dollars * DOLLAR, status=status, created_at=SETTLED,
                   payment_type=payment_type, settled_at=settled_at, refunded_cents=refunded_cents,
                   provider_payment_id="pi_1")


@pytest.mark.parametrize(("payment_type", "days", "expected_by"), [
    # NOW is Saturday 14 March 2026; weekends do not count.
    (PaymentType.CARD, 10, datetime(2026, 3, 27, 9, 30, tzinfo=UTC)),
    (PaymentType.SEPA_DEBIT, 5, datetime(2026, 3, 20, 9, 30, tzinfo=UTC)),
    (PaymentType.US_BANK_ACCOUNT, 5, datetime(2026, 3, 20, 9, 30, tzinfo=UTC)),
    (PaymentType.CRYPTO, 2, datetime(2026, 3, 17, 9, 30, tzinfo=UTC)),
])
def test_approved_with_expected_by_per_payment_type(catalog: Catalog, payment_type: PaymentType, days: int,
                                                    expected_by: datetime) -> None:
    assert PROCESSOR_TIMELINE_DAYS[payment_type] == days
    decision = decide_refund(payment(payment_type=payment_type), catalog.plan("pro"),
                             unused_credits_micros=250 * DOLLAR, now=NOW)
    assert decision == RefundDecision(status=APPROVED, amount_cents=10000, credits_micros=100 * DOLLAR,
                                      message=f"Refund approved; expect it within {days} business days.",
                                      expected_by=expected_by)


@pytest.mark.parametrize(("start", "days", "end"), [
    (datetime(2026, 3, 16, 12, tzinfo=UTC), 1, datetime(2026, 3, 17, 12, tzinfo=UTC)),  # Mon -> Tue
    (datetime(2026, 3, 20, 12, tzinfo=UTC), 1, datetime(2026, 3, 23, 12, tzinfo=UTC)),  # Fri -> Mon
    (datetime(2026, 3, 15, 12, tzinfo=UTC), 1, datetime(2026, 3, 16, 12, tzinfo=UTC)),  # Sun -> Mon
    (datetime(2026, 3, 16, 12, tzinfo=UTC), 5, datetime(2026, 3, 23, 12, tzinfo=UTC)),  # a week
    (datetime(2026, 3, 16, 12, tzinfo=UTC), 0, datetime(2026, 3, 16, 12, tzinfo=UTC)),
])
def test_add_business_days(start: datetime, days: int, end: datetime) -> None:
    assert add_business_days(start, days) == end


def test_only_unused_credits_are_refunded_in_whole_cents() -> None:
    decision = decide_refund(payment(), None, unused_credits_micros=30 * DOLLAR + 5_999, now=NOW)
    assert (decision.status, decision.amount_cents, decision.credits_micros) == (APPROVED, 3000, 30 * DOLLAR)


def test_credits_worth_more_than_was_paid_refund_at_most_the_payment() -> None:
    bonus = Payment(id=uuid.uuid4(), organization_id=ORG, purpose=PaymentPurpose.CREDIT_PACK, amount_cents=2000,
                    currency_iso="USD", credits_micros=25 * DOLLAR, status=PaymentStatus.SUCCEEDED,
                    created_at=SETTLED, payment_type=PaymentType.CARD, settled_at=SETTLED)
    decision = decide_refund(bonus, None, unused_credits_micros=1_000 * DOLLAR, now=NOW)
    assert (decision.status, decision.amount_cents) == (APPROVED, 2000)


def test_a_partly_refunded_payment_refunds_at_most_the_rest() -> None:
    decision = decide_refund(payment(refunded_cents=7000), None, unused_credits_micros=100 * DOLLAR, now=NOW)
    assert (decision.amount_cents, decision.credits_micros) == (3000, 30 * DOLLAR)


@pytest.mark.parametrize(("purpose", "status"), [(PaymentPurpose.ADD_CREDITS, APPROVED),
                                                 (PaymentPurpose.CREDIT_PACK, APPROVED),
                                                 (PaymentPurpose.AUTO_RECHARGE, APPROVED),
                                                 (PaymentPurpose.INVOICE, DENIED),
                                                 (PaymentPurpose.PLAN_CHANGE, DENIED)])
def test_credit_purchases_are_refundable_invoices_and_plan_charges_are_not(purpose: PaymentPurpose,
                                                                          status: RefundDecisionStatus) -> None:
    decision = decide_refund(payment(purpose=purpose), None, unused_credits_micros=100 * DOLLAR, now=NOW)
    assert decision.status is status
    if status is DENIED:
        assert decision.denial is RefundDenial.NOT_REFUNDABLE
        assert decision.message == "Invoices and plan charges are refunded through a credit note."
        assert (decision.amount_cents, decision.expected_by) == (0, None)


@pytest.mark.parametrize(("status", "settled_at", "denial"), [
    (PaymentStatus.PENDING, None, RefundDenial.NOT_SETTLED),
    (PaymentStatus.FAILED, None, RefundDenial.NOT_SETTLED),
    (PaymentStatus.DISPUTED, SETTLED, RefundDenial.NOT_SETTLED),
    (PaymentStatus.REFUNDED, SETTLED, RefundDenial.ALREADY_REFUNDED),
    (PaymentStatus.SUCCEEDED, None, RefundDenial.NOT_SETTLED),
])
def test_only_settled_unrefunded_payments(status: PaymentStatus, settled_at: datetime | None,
                                          denial: RefundDenial) -> None:
    decision = decide_refund(payment(status=status, settled_at=settled_at), None,
                             unused_credits_micros=100 * DOLLAR, now=NOW)
    assert (decision.status, decision.denial) == (DENIED, denial)
    assert decision.message == "Only a settled payment that was not refunded can be refunded."


@pytest.mark.parametrize(("plan", "days"), [(None, 14), ("starter", 14), ("pro", 14), ("scale", 30),
                                            ("enterprise", 30)])
def test_the_refund_window_is_the_plans(catalog: Catalog, plan: str | None, days: int) -> None:
    terms = catalog.plan(plan) if plan else None
    settled = NOW - timedelta(days=days)
    on_the_last_moment = decide_refund(payment(settled_at=settled), terms, unused_credits_micros=100 * DOLLAR, now=NOW)
    assert on_the_last_moment.status is APPROVED
    late = decide_refund(payment(settled_at=settled - timedelta(seconds=1)), terms,
                         unused_credits_micros=100 * DOLLAR, now=NOW)
    assert (late.status, late.denial) == (DENIED, RefundDenial.WINDOW_CLOSED)
    assert late.message == f"Refunds are possible within {days} days of payment."


@pytest.mark.parametrize("unused", [0, -50 * DOLLAR, CENT - 1])
def test_used_credits_are_not_refunded(unused: int) -> None:
    decision = decide_refund(payment(), None, unused_credits_micros=unused, now=NOW)
    assert (decision.status, decision.denial) == (DENIED, RefundDenial.CREDITS_USED)
    assert decision.message == "The credits bought with this payment have been used."


def test_the_denial_reasons_are_stable_codes() -> None:
    assert {d.value for d in RefundDenial} == {"payment_not_settled", "already_refunded", "refund_window_closed",
                                               "credits_already_used", "not_refundable"}


def test_credits_used_since_the_last_invoice_are_not_refunded() -> None:
    """Usage not yet invoiced has consumed credits the settled wallet still shows: a refund must
    not hand them back in cash (the balance would otherwise sink below the credit line)."""
    billing = in_memory_billing(datetime(2026, 3, 10, 12, tzinfo=UTC))
    ctx = billing.ctx
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@acme.test")
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    ada = services.organizations.authenticate(ctx, secret)
    _, service_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                           scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(ctx, service_secret)
    services.payment_methods.attach(ctx, ada, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    paid = services.payments.add_credits(ctx, ada, organization_id=org.id, amount_micros=100 * DOLLAR)
    services.product_subscriptions.subscribe_product(ctx, ada, organization_id=org.id, product="compute",
                                                     project_id=None)
    used = services.usage.report_usage(ctx, platform, organization_id=org.id, event_id="evt-1",
                                       product="compute", quantity=2250, project_id=None)  # $90
    assert used.allowed and used.balance_micros == 10 * DOLLAR

    request = services.refunds.request_refund(ctx, ada, organization_id=org.id, payment_id=paid.id)

    assert request.decision.status is APPROVED
    assert (request.decision.amount_cents, request.decision.credits_micros) == (1000, 10 * DOLLAR)
    overview = services.overview.overview(ctx, ada, organization_id=org.id)
    assert overview.credit_balance_micros == 0
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean


def test_a_payment_whose_amount_is_all_reserved_is_already_refunded() -> None:
    """Approved refunds reserve their amount on the payment before the provider is asked, so a
    concurrent request decided after one of them sees nothing left (ADR 0009)."""
    decision = decide_refund(payment(refunded_cents=10000), None, unused_credits_micros=100 * DOLLAR, now=NOW)
    assert (decision.status, decision.denial) == (DENIED, RefundDenial.ALREADY_REFUNDED)


def test_a_request_is_recorded_pending_when_approved_and_final_when_denied() -> None:
    from billing_core.refund_policy import RefundStatus, new_request

    paid = payment()
    approved = decide_refund(paid, None, unused_credits_micros=100 * DOLLAR, now=NOW)
    denied = decide_refund(paid, None, unused_credits_micros=0, now=NOW)
    pending = new_request(request_id=uuid.uuid4(), payment=paid, requested_by="ada", reason=None,
                          decision=approved, now=NOW)
    final = new_request(request_id=uuid.uuid4(), payment=paid, requested_by="ada", reason=None,
                        decision=denied, now=NOW)
    assert (pending.status, pending.completed_at, pending.holds_money) == (RefundStatus.PENDING, None, True)
    assert (final.status, final.completed_at, final.holds_money) == (RefundStatus.DENIED, NOW, False)
