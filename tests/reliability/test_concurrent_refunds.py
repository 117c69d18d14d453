"""Refunds exactly once under concurrency (issue 14, item 1; ADR 0009), on the fakes, SQLite and
PostgreSQL, through the public use case and the in-memory payment provider.

Issue 14 reproduced ten concurrent refunds of one $50 purchase: six approvals, six provider
refunds, -$300 in the ledger and the payment at 10,000 of 5,000 cents refunded. Here: one
approval, one provider refund, -$50, 5,000 cents, and a clean reconcile, however many requests.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing_core import services
from billing_core.errors import ProviderUnavailable
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.payments import Payment, PaymentStatus
from billing_core.permissions import Actor
from billing_core.refund_policy import RefundRequest
from billing_core.services.context import BillingContext
from tests.reliability.money_support import CONCURRENCY, Money, at_once, backends, money_context, organization

DOLLAR = 1_000_000


@pytest.fixture(params=backends())
def money(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Money]:
    yield from money_context(request.param, tmp_path)


def _purchase(ctx: BillingContext, dollars: int) -> tuple[uuid.UUID, uuid.UUID, Actor]:
    org_id, owner = organization(ctx)
    services.payment_methods.attach(ctx, owner, organization_id=org_id, provider_payment_method_id="pm_card_visa")
    payment = services.payments.add_credits(ctx, owner, organization_id=org_id, amount_micros=dollars * DOLLAR)
    assert payment.status == PaymentStatus.SUCCEEDED
    return org_id, payment.id, owner


def _payment(ctx: BillingContext, org_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
    with ctx.uow() as uow:
        return uow.payments.get(org_id, payment_id)


def _refund_entries(ctx: BillingContext, org_id: uuid.UUID) -> list[int]:
    with ctx.uow() as uow:
        page = uow.ledger.list(org_id, kinds=frozenset({EntryKind.CREDIT_REFUND}), limit=200)
    return [tx.delta(Account.WALLET) for tx in page.items]


def _wallet(ctx: BillingContext, org_id: uuid.UUID) -> int:
    with ctx.uow() as uow:
        return uow.wallets.get(org_id).wallet_micros


def _requests(ctx: BillingContext, org_id: uuid.UUID) -> list[RefundRequest]:
    with ctx.uow() as uow:
        return uow.refunds.list(org_id)


def _assert_reconciles(ctx: BillingContext, org_id: uuid.UUID) -> None:
    report = services.reconcile.reconcile(ctx, organization_id=org_id)
    assert report.clean, report


def test_identical_concurrent_refunds_refund_once(money: Money) -> None:
    ctx = money.ctx
    org_id, payment_id, owner = _purchase(ctx, 50)
    outcome = at_once([lambda: services.refunds.request_refund(ctx, owner, organization_id=org_id,
                                                               payment_id=payment_id, reason="unused")
                       for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    approved = [r for r in outcome.results if r.decision.status == "approved"]
    assert len(approved) == 1 and approved[0].decision.amount_cents == 5000
    assert len(money.provider.refunds) == 1
    assert _refund_entries(ctx, org_id) == [-50 * DOLLAR]
    assert _wallet(ctx, org_id) == 0
    paid = _payment(ctx, org_id, payment_id)
    assert (paid.refunded_cents, paid.status) == (5000, PaymentStatus.REFUNDED)
    recorded = _requests(ctx, org_id)
    assert len(recorded) == CONCURRENCY
    assert sorted(r.status.value for r in recorded) == sorted(["succeeded"] + ["denied"] * (CONCURRENCY - 1))
    assert {r.decision.denial for r in recorded if r.status.value == "denied"} == {"already_refunded"}
    _assert_reconciles(ctx, org_id)


def test_one_request_id_sent_concurrently_is_one_request(money: Money) -> None:
    """The HTTP Idempotency-Key names the request: every copy answers with the one recorded request."""
    ctx = money.ctx
    org_id, payment_id, owner = _purchase(ctx, 50)
    request_id = uuid.uuid4()
    outcome = at_once([lambda: services.refunds.request_refund(ctx, owner, organization_id=org_id,
                                                               payment_id=payment_id, request_id=request_id)
                       for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    assert {(r.id, r.status.value, r.provider_refund_id) for r in outcome.results} == {
        (request_id, "succeeded", money.provider.refunds[f"refund:{request_id}"]["id"])}
    assert len(money.provider.refunds) == 1 and len(_requests(ctx, org_id)) == 1
    assert _refund_entries(ctx, org_id) == [-50 * DOLLAR]
    _assert_reconciles(ctx, org_id)


def test_conflicting_refunds_share_the_unused_credits_once(money: Money) -> None:
    """Two $50 purchases, $60 of credits used: concurrent refunds of either payment compete for
    the same $40 of unused credits and never refund more."""
    ctx = money.ctx
    org_id, first, owner = _purchase(ctx, 50)
    second = services.payments.add_credits(ctx, owner, organization_id=org_id,
                                           amount_micros=50 * DOLLAR).id
    with ctx.uow() as uow:
        uow.wallets.post(transfer(organization_id=org_id, idempotency_key="spent", kind=EntryKind.ADJUSTMENT,
                                  description="spent", created_at=ctx.clock.now(), source=Account.WALLET,
                                  target=Account.REVENUE, amount_micros=60 * DOLLAR))
        uow.commit()
    payments = [first, second] * (CONCURRENCY // 2)
    outcome = at_once([functools.partial(services.refunds.request_refund, ctx, owner, organization_id=org_id,
                                         payment_id=p) for p in payments])
    assert outcome.errors == []
    approved = [r for r in outcome.results if r.decision.status == "approved"]
    assert sum(r.decision.amount_cents for r in approved) == 4000
    assert len(money.provider.refunds) == len(approved)
    assert sum(_refund_entries(ctx, org_id)) == -40 * DOLLAR
    assert _wallet(ctx, org_id) == 0
    assert (_payment(ctx, org_id, first).refunded_cents + _payment(ctx, org_id, second).refunded_cents) == 4000
    _assert_reconciles(ctx, org_id)


def test_an_unreachable_provider_leaves_the_request_pending_and_the_retry_finishes_it(money: Money) -> None:
    ctx = money.ctx
    org_id, payment_id, owner = _purchase(ctx, 50)
    request_id = uuid.uuid4()
    money.provider.fail_with = ProviderUnavailable()
    with pytest.raises(ProviderUnavailable):
        services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment_id,
                                        request_id=request_id)
    (pending,) = _requests(ctx, org_id)
    assert pending.status.value == "pending" and _payment(ctx, org_id, payment_id).refunded_cents == 5000
    assert _wallet(ctx, org_id) == 0
    _assert_reconciles(ctx, org_id)  # reserved and taken out: consistent while pending
    # Someone else asking meanwhile is denied: the amount is reserved.
    other = services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment_id)
    assert other.status.value == "denied"
    money.provider.fail_with = None
    outcome = at_once([lambda: services.refunds.request_refund(ctx, owner, organization_id=org_id,
                                                               payment_id=payment_id, request_id=request_id)
                       for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    assert {r.status.value for r in outcome.results} == {"succeeded"}
    assert list(money.provider.refunds) == [f"refund:{request_id}"]
    assert _refund_entries(ctx, org_id) == [-50 * DOLLAR]
    assert _payment(ctx, org_id, payment_id).status == PaymentStatus.REFUNDED
    _assert_reconciles(ctx, org_id)


def test_a_definitive_provider_refusal_gives_everything_back_once(money: Money) -> None:
    from billing_core.errors import PaymentError

    ctx = money.ctx
    org_id, payment_id, owner = _purchase(ctx, 50)
    request_id = uuid.uuid4()
    money.provider.fail_with = PaymentError("charge already disputed", code="charge_disputed")
    failed = services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment_id,
                                             request_id=request_id)
    assert failed.status.value == "failed" and failed.failure_message == "charge already disputed"
    money.provider.fail_with = None
    again = services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment_id,
                                            request_id=request_id)
    assert again.status.value == "failed"
    assert money.provider.refunds == {}
    assert sorted(_refund_entries(ctx, org_id)) == [-50 * DOLLAR, 50 * DOLLAR]
    assert _wallet(ctx, org_id) == 50 * DOLLAR
    paid = _payment(ctx, org_id, payment_id)
    assert (paid.refunded_cents, paid.status) == (0, PaymentStatus.SUCCEEDED)
    _assert_reconciles(ctx, org_id)
    # The payment can be refunded afresh.
    retried = services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment_id)
    assert retried.status.value == "succeeded"
    _assert_reconciles(ctx, org_id)


def test_a_refund_refused_after_the_payment_was_disputed_gives_nothing_back(money: Money) -> None:
    """A pending refund's credits are already out; the dispute reverses only the rest. When the
    provider then refuses the refund, its credits follow the dispute, not the wallet."""
    from billing_core.errors import PaymentError

    ctx = money.ctx
    org_id, payment_id, owner = _purchase(ctx, 50)
    request_id = uuid.uuid4()
    money.provider.fail_with = ProviderUnavailable()
    with pytest.raises(ProviderUnavailable):
        services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment_id,
                                        request_id=request_id)
    paid = _payment(ctx, org_id, payment_id)
    assert paid.provider_payment_id is not None
    money.provider.fail_with = None
    services.payments.reverse_provider_payment(ctx, provider_payment_id=paid.provider_payment_id,
                                               status=PaymentStatus.DISPUTED, reason="disputed")
    money.provider.fail_with = PaymentError("charge disputed", code="charge_disputed")
    failed = services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment_id,
                                             request_id=request_id)
    assert failed.status.value == "failed"
    assert _wallet(ctx, org_id) == 0
    assert _payment(ctx, org_id, payment_id).refunded_cents == 0
    _assert_reconciles(ctx, org_id)
