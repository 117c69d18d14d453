"""The last gaps of issue 14, on the fakes, SQLite and PostgreSQL: one default payment method per
organization (decided under the wallet lock, repeated by the database), the provider customer
written once, the setup intent keyed by its request, a repeated product subscription answered with
the live link, failed payments that hold credits caught by ``reconcile``, and the worker finishing
refunds and plan changes a provider outage left PENDING."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from adapters.fakes import InMemoryLegalInvoicing, InMemoryMailer, InMemoryWebhookSender
from billing_core import services
from billing_core.errors import Conflict, NotFound, ProviderUnavailable
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.payments import PaymentMethod, PaymentStatus
from billing_core.permissions import Actor
from billing_core.services.background import INTENT_GRACE, run_cycle
from billing_core.services.context import BillingContext
from billing_core.services.dispatch import Deliverers
from tests.reliability.money_support import CONCURRENCY, Money, at_once, backends, money_context, organization

DOLLAR = 1_000_000
CARDS = ("pm_card_visa", "pm_card_mastercard", "pm_sepa_debit")


@pytest.fixture(params=backends())
def money(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Money]:
    yield from money_context(request.param, tmp_path)


def _methods(ctx: BillingContext, org_id: uuid.UUID) -> list[PaymentMethod]:
    with ctx.uow() as uow:
        return uow.payment_methods.list(org_id)


def _with_cards(ctx: BillingContext) -> tuple[uuid.UUID, Actor, list[PaymentMethod]]:
    org_id, owner = organization(ctx)
    methods = [services.payment_methods.attach(ctx, owner, organization_id=org_id, provider_payment_method_id=card)
               for card in CARDS]
    return org_id, owner, methods


def _deliverers() -> Deliverers:
    return Deliverers(mailer=InMemoryMailer(), webhooks=InMemoryWebhookSender(), legal=InMemoryLegalInvoicing())


def _assert_reconciles(ctx: BillingContext, org_id: uuid.UUID) -> None:
    report = services.reconcile.reconcile(ctx, organization_id=org_id)
    assert report.clean, report


def test_concurrent_set_defaults_leave_one_default(money: Money) -> None:
    ctx = money.ctx
    org_id, owner, methods = _with_cards(ctx)
    outcome = at_once([functools.partial(services.payment_methods.set_default, ctx, owner, organization_id=org_id,
                                         payment_method_id=methods[n % len(methods)].id)
                       for n in range(CONCURRENCY)])
    assert outcome.errors == []
    defaults = [m for m in _methods(ctx, org_id) if m.default]
    assert len(defaults) == 1
    assert all(r.default for r in outcome.results)  # each answer is the state it committed


def test_the_database_refuses_a_second_default(money: Money) -> None:
    ctx = money.ctx
    org_id, _owner, methods = _with_cards(ctx)
    assert [m.default for m in _methods(ctx, org_id)].count(True) == 1
    other = next(m for m in _methods(ctx, org_id) if not m.default)
    with ctx.uow() as uow, pytest.raises(Conflict):
        uow.payment_methods.save(msgspec.structs.replace(other, default=True))
    assert [m.default for m in _methods(ctx, org_id)].count(True) == 1
    assert {m.id for m in methods} == {m.id for m in _methods(ctx, org_id)}


def test_concurrent_removals_remove_once_and_promote_one_default(money: Money) -> None:
    ctx = money.ctx
    org_id, owner, methods = _with_cards(ctx)
    default = next(m for m in _methods(ctx, org_id) if m.default)
    outcome = at_once([lambda: services.payment_methods.remove(ctx, owner, organization_id=org_id,
                                                               payment_method_id=default.id)
                       for _ in range(CONCURRENCY)])
    assert len(outcome.results) == 1 and all(isinstance(e, NotFound) for e in outcome.errors), outcome.errors
    left = _methods(ctx, org_id)
    assert default.id not in {m.id for m in left} and len(left) == len(methods) - 1
    assert [m.default for m in left].count(True) == 1
    assert money.provider.defaults[_customer(ctx, org_id)] == next(m for m in left if m.default
                                                                   ).provider_payment_method_id


def test_removing_every_method_at_once_and_set_default_racing_it_keep_one_default_or_none(money: Money) -> None:
    ctx = money.ctx
    org_id, owner, methods = _with_cards(ctx)
    calls: list[Callable[[], object]] = []
    for n in range(CONCURRENCY):
        use_case = services.payment_methods.remove if n % 2 else services.payment_methods.set_default
        calls.append(functools.partial(use_case, ctx, owner, organization_id=org_id,
                                       payment_method_id=methods[n % len(methods)].id))
    outcome = at_once(calls)
    assert all(isinstance(e, NotFound) for e in outcome.errors), outcome.errors
    assert _methods(ctx, org_id) == []


def _customer(ctx: BillingContext, org_id: uuid.UUID) -> str:
    with ctx.uow() as uow:
        customer = uow.organizations.get(org_id).provider_customer_id
    assert customer is not None
    return customer


def test_concurrent_first_payments_create_and_store_one_customer(money: Money) -> None:
    ctx = money.ctx
    org_id, _owner = organization(ctx)
    outcome = at_once([lambda: services.customers.ensure_customer(ctx, org_id) for _ in range(CONCURRENCY)])
    assert outcome.errors == []
    assert set(outcome.results) == {_customer(ctx, org_id)}
    assert list(money.provider.customers) == [str(org_id)]
    # The organization's other fields survive the customer write (no stale copy saved over them).
    with ctx.uow() as uow:
        assert uow.organizations.get(org_id).name == "Acme"


def test_the_database_refuses_a_provider_customer_of_another_organization(money: Money) -> None:
    ctx = money.ctx
    first, _ = organization(ctx)
    second, _ = organization(ctx)
    customer = services.customers.ensure_customer(ctx, first)
    with ctx.uow() as uow:
        other = uow.organizations.get(second)
    other.provider_customer_id = customer
    with ctx.uow() as uow, pytest.raises(Conflict):
        uow.organizations.save(other)
    with ctx.uow() as uow:
        assert uow.organizations.get(second).provider_customer_id is None
        assert uow.organizations.by_provider_customer(customer).id == first  # type: ignore[union-attr]


def test_the_setup_intent_is_keyed_by_its_request(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = organization(ctx)
    request_id = uuid.uuid4()
    outcome = at_once([lambda: services.payment_methods.setup_intent(ctx, owner, organization_id=org_id,
                                                                     request_id=request_id)
                       for _ in range(CONCURRENCY)])
    assert outcome.errors == [] and len(set(outcome.results)) == 1
    assert list(money.provider.setup_intents) == [
        services.payment_methods.setup_intent_key(org_id, request_id)]
    other = services.payment_methods.setup_intent(ctx, owner, organization_id=org_id, request_id=uuid.uuid4())
    assert other not in outcome.results


def test_repeated_and_concurrent_subscribes_return_the_one_live_link(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = organization(ctx)
    project = uuid.uuid4()
    outcome = at_once([functools.partial(services.product_subscriptions.subscribe_product, ctx, owner,
                                         organization_id=org_id, product="compute",
                                         project_id=project if n % 2 else None) for n in range(CONCURRENCY)])
    assert outcome.errors == []
    with ctx.uow() as uow:
        links = uow.product_subscriptions.list(org_id, limit=200).items
    assert sorted(str(link.project_id) for link in links) == sorted([str(project), "None"])
    assert {r.id for r in outcome.results} == {link.id for link in links}
    ended = services.product_subscriptions.end_product_subscription(ctx, owner, organization_id=org_id,
                                                            subscription_id=links[0].id)
    money.clock.advance(timedelta(seconds=1))
    again = services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org_id, product="compute",
                                                     project_id=ended.project_id)
    assert again.id != ended.id  # an ended link is not live: subscribing again makes a new one


def test_reconcile_notices_a_failed_payment_whose_credits_stayed(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = organization(ctx)
    services.payment_methods.attach(ctx, owner, organization_id=org_id, provider_payment_method_id="pm_card_visa")
    money.provider.decline_next = 1
    failed = services.payments.add_credits(ctx, owner, organization_id=org_id, amount_micros=20 * DOLLAR)
    assert failed.status == PaymentStatus.FAILED
    _assert_reconciles(ctx, org_id)
    with ctx.uow() as uow:  # what a settlement that lost its race to the failure would leave
        uow.wallets.post(transfer(organization_id=org_id, idempotency_key=f"payment:{failed.id}",
                                  kind=EntryKind.TOP_UP, description="top-up", created_at=ctx.clock.now(),
                                  source=Account.PAYMENT_CLEARING, target=Account.WALLET,
                                  amount_micros=20 * DOLLAR, reference=str(failed.id)))
        uow.commit()
    report = services.reconcile.reconcile(ctx, organization_id=org_id)
    assert not report.clean and any(f"payment {failed.id} is failed" in p for p in report.problems), report


def test_the_worker_finishes_a_refund_and_a_plan_change_left_pending_by_an_outage(money: Money) -> None:
    ctx = money.ctx
    org_id, owner = organization(ctx)
    services.payment_methods.attach(ctx, owner, organization_id=org_id, provider_payment_method_id="pm_card_visa")
    session = services.checkout.start_checkout(ctx, owner, organization_id=org_id, plan="pro",
                                                    return_url="https://app.test/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                             provider_subscription_id=f"sub_{uuid.uuid4().hex}")
    money.clock.advance(timedelta(days=2))
    payment = services.payments.add_credits(ctx, owner, organization_id=org_id, amount_micros=50 * DOLLAR)
    money.provider.fail_with = ProviderUnavailable()
    with pytest.raises(ProviderUnavailable):
        services.refunds.request_refund(ctx, owner, organization_id=org_id, payment_id=payment.id)
    with pytest.raises(ProviderUnavailable):
        services.plan_changes.change_plan(ctx, owner, organization_id=org_id, plan="scale",
                                           preview_at=ctx.clock.now())
    deliverers = _deliverers()
    # Too early (the request may still be finishing it itself), then old enough but still down.
    assert run_cycle(ctx, deliverers, holder="w1").intents_finished == 0
    money.clock.advance(INTENT_GRACE * 2)
    assert run_cycle(ctx, deliverers, holder="w1").intents_finished == 0
    with ctx.uow() as uow:
        (refund,) = uow.refunds.list(org_id)
        (change,) = uow.plan_changes.list(org_id)
    assert refund.status == "pending" and change.status == "pending"
    money.provider.fail_with = None  # the provider is back; several workers sweep at once
    cycles = at_once([functools.partial(run_cycle, ctx, deliverers, holder=f"w{n}") for n in range(4)])
    assert cycles.errors == [] and sum(c.intents_finished for c in cycles.results) >= 2
    with ctx.uow() as uow:
        (refund,) = uow.refunds.list(org_id)
        (change,) = uow.plan_changes.list(org_id)
    assert refund.status == "succeeded" and change.status == "invoiced"
    assert list(money.provider.refunds) == [f"refund:{refund.id}"]
    assert list(money.provider.plan_swaps) == [f"plan-change:{change.id}"]
    assert run_cycle(ctx, deliverers, holder="w9").intents_finished == 0
    _assert_reconciles(ctx, org_id)
