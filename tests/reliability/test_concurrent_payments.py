"""Top-ups, auto-recharge and the provider's payment events exactly once (ADR 0009), on the fakes,
SQLite and PostgreSQL: every unit of work that settles or reverses a payment locks the wallet
first, a payment is recorded before the provider is asked, and a charge whose answer was lost is
finished by the retry with the same key."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.fakes import InMemoryPaymentProvider
from billing_core import services
from billing_core.errors import ProviderUnavailable
from billing_core.ledger import Account, EntryKind
from billing_core.payments import Payment, PaymentStatus
from billing_core.permissions import Actor
from billing_core.ports import ProviderCheckout
from billing_core.services.context import BillingContext
from tests.reliability.money_support import CONCURRENCY, Money, at_once, backends, money_context, organization

DOLLAR = 1_000_000


@pytest.fixture(params=backends())
def money(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Money]:
    yield from money_context(request.param, tmp_path)


def _with_card(ctx: BillingContext) -> tuple[uuid.UUID, Actor]:
    org_id, owner = organization(ctx)
    services.payment_methods.attach(ctx, owner, organization_id=org_id, provider_payment_method_id="pm_card_visa")
    return org_id, owner


def _payment(ctx: BillingContext, org_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
    with ctx.uow() as uow:
        return uow.payments.get(org_id, payment_id)


def _entries(ctx: BillingContext, org_id: uuid.UUID, kind: EntryKind) -> list[int]:
    with ctx.uow() as uow:
        page = uow.ledger.list(org_id, kinds=frozenset({kind}), limit=200)
    return [tx.delta(Account.WALLET) for tx in page.items]


def _assert_reconciles(ctx: BillingContext, org_id: uuid.UUID) -> None:
    report = services.reconcile.reconcile(ctx, organization_id=org_id)
    assert report.clean, report


def test_concurrent_settlements_of_one_payment_credit_it_once(money: Money) -> None:
    """The charge's own answer and the provider's events arrive together: one top-up, no errors."""
    ctx = money.ctx
    org_id, owner = _with_card(ctx)
    money.provider.auto_succeed = False
    pending = services.payments.add_credits(ctx, owner, organization_id=org_id, amount_micros=20 * DOLLAR)
    assert pending.status == PaymentStatus.PENDING and pending.provider_payment_id is not None
    settle = functools.partial(services.payments.settle_provider_payment, ctx,
                                 provider_payment_id=pending.provider_payment_id, reference=str(pending.id),
                                 succeeded=True)
    outcome = at_once([settle for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    assert {p.status for p in outcome.results if p is not None} == {PaymentStatus.SUCCEEDED}
    assert _entries(ctx, org_id, EntryKind.TOP_UP) == [20 * DOLLAR]
    _assert_reconciles(ctx, org_id)


def test_concurrent_reversals_of_one_payment_take_it_back_once(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = _with_card(ctx)
    paid = services.payments.add_credits(ctx, owner, organization_id=org_id, amount_micros=20 * DOLLAR)
    assert paid.provider_payment_id is not None
    calls = [functools.partial(services.payments.reverse_provider_payment, ctx,
                                 provider_payment_id=paid.provider_payment_id,
                                 status=PaymentStatus.DISPUTED if n % 2 else PaymentStatus.REFUNDED,
                                 reason="at the provider") for n in range(CONCURRENCY)]
    outcome = at_once(calls)
    assert outcome.errors == []
    assert _entries(ctx, org_id, EntryKind.PAYMENT_REVERSAL) == [-20 * DOLLAR]
    assert _payment(ctx, org_id, paid.id).status in (PaymentStatus.DISPUTED, PaymentStatus.REFUNDED)
    _assert_reconciles(ctx, org_id)


def test_an_auto_recharge_whose_charge_was_lost_is_charged_by_the_retry_once(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = _with_card(ctx)
    services.settings.update_auto_recharge(ctx, owner, organization_id=org_id, enabled=True,
                                           threshold_micros=10 * DOLLAR, amount_micros=25 * DOLLAR)
    operation = uuid.uuid4()
    recharge = functools.partial(services.payments.run_auto_recharge, ctx, organization_id=org_id,
                                   amount_micros=25 * DOLLAR, payment_method_id=None, operation_id=operation)
    money.provider.fail_with = ProviderUnavailable()
    with pytest.raises(ProviderUnavailable):
        recharge()
    assert _payment(ctx, org_id, operation).status == PaymentStatus.PENDING
    money.provider.fail_with = None
    outcome = at_once([recharge for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    assert [r["idempotency_key"] for r in money.provider.charge_requests] == [f"payment:{operation}"]
    assert _payment(ctx, org_id, operation).status == PaymentStatus.SUCCEEDED
    assert _entries(ctx, org_id, EntryKind.AUTO_RECHARGE) == [25 * DOLLAR]
    _assert_reconciles(ctx, org_id)


class _CheckingProvider(InMemoryPaymentProvider):
    """Records, when a crypto checkout is opened, whether our payment for it was already stored."""

    def __init__(self, ctx_ref: list[BillingContext]) -> None:
        super().__init__()
        self.ctx_ref = ctx_ref
        self.recorded_first: list[bool] = []

    def create_crypto_checkout(self, *, customer_id: str, amount_cents: int, currency_iso: str,
                               return_url: str, reference: str, idempotency_key: str) -> ProviderCheckout:
        with self.ctx_ref[0].uow() as uow:
            self.recorded_first.append(uow.payments.by_reference(uuid.UUID(reference)) is not None)
        return super().create_crypto_checkout(customer_id=customer_id, amount_cents=amount_cents,
                                              currency_iso=currency_iso, return_url=return_url,
                                              reference=reference, idempotency_key=idempotency_key)


def test_a_crypto_payment_is_recorded_before_the_provider_opens_its_checkout(money: Money) -> None:
    ref: list[BillingContext] = []
    provider = _CheckingProvider(ref)
    ctx = BillingContext(uow=money.ctx.uow, clock=money.ctx.clock, catalog=money.ctx.catalog, payments=provider)
    ref.append(ctx)
    org_id, owner = organization(ctx)
    payment = services.payments.add_credits(ctx, owner, organization_id=org_id, amount_micros=10 * DOLLAR, crypto=True)
    assert provider.recorded_first == [True]
    stored = _payment(ctx, org_id, payment.id)
    assert stored.provider_payment_id is not None and stored.client_secret is not None
    # Paid at the provider: found by its reference and credited once.
    for _ in range(2):
        services.payments.settle_provider_payment(ctx, provider_payment_id=None, reference=str(payment.id),
                                                  succeeded=True)
    assert _entries(ctx, org_id, EntryKind.TOP_UP) == [10 * DOLLAR]
    _assert_reconciles(ctx, org_id)


def test_an_invoice_paid_and_voided_at_once_ends_one_way(money: Money) -> None:
    """The provider says an open invoice was paid while an operator voids it: one of the two
    happens, the other is refused, and the ledger holds exactly one of their entries."""
    from adapters.testing.builders import invoice
    from billing_core.errors import Conflict
    from billing_core.invoices import InvoiceStatus

    ctx = money.ctx
    org_id, _ = organization(ctx)
    open_invoice = invoice(org_id, ctx.clock.now() - timedelta(days=40), number="INV-000001")
    with ctx.uow() as uow:
        uow.invoices.add(open_invoice)
        uow.commit()
    paid = functools.partial(services.invoicing.mark_invoice_paid, ctx, organization_id=org_id,
                             invoice_id=open_invoice.id)
    void = functools.partial(services.invoicing.void_invoice, ctx, organization_id=org_id,
                             invoice_id=open_invoice.id, reason="issued in error")
    outcome = at_once([paid, void] * (CONCURRENCY // 2))
    assert all(isinstance(e, Conflict) for e in outcome.errors), outcome.errors
    with ctx.uow() as uow:
        final = uow.invoices.get(org_id, open_invoice.id).status
        keys = [uow.ledger.get_by_key(org_id, f"invoice-{kind}:{open_invoice.id}") is not None
                for kind in ("paid", "void")]
    assert keys == ([True, False] if final == InvoiceStatus.PAID else [False, True])
    assert {r.status for r in outcome.results} == {final}
    assert len(outcome.errors) == CONCURRENCY // 2


def test_concurrent_attaches_store_each_method_once_with_one_default(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = organization(ctx)
    same = at_once([functools.partial(services.payment_methods.attach, ctx, owner, organization_id=org_id,
                                      provider_payment_method_id="pm_card_visa") for _ in range(CONCURRENCY)])
    assert same.errors == [] and len({m.id for m in same.results}) == 1
    others = at_once([functools.partial(services.payment_methods.attach, ctx, owner, organization_id=org_id,
                                        provider_payment_method_id=f"pm_card_{n}") for n in range(CONCURRENCY)])
    assert others.errors == []
    methods = services.payment_methods.list_methods(ctx, owner, organization_id=org_id)
    assert len(methods) == CONCURRENCY + 1
    assert [m.provider_payment_method_id for m in methods if m.default] == ["pm_card_visa"]
