"""Checkout completion and guest-checkout claims happen exactly once under concurrency (issue 14,
items 2 and 3; ADR 0009), on SQLite and PostgreSQL.

Each test releases 16-20 threads at once (a barrier), each running its own units of work against a
real migrated database, then checks the stored rows and the ledger, not only the answers: one plan
subscription per provider subscription id, one grant, the checkout's status and claim, and a clean
``reconcile`` (whose checks now include grants against subscriptions and checkouts).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, func, select

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.sqlalchemy.tables import checkout_sessions, plan_subscriptions
from adapters.testing.storage import migrated_engine
from billing_core import Role, services
from billing_core.catalog import load_catalog
from billing_core.checkout import CheckoutSession, CheckoutStatus
from billing_core.errors import BillingError
from billing_core.ledger import Account, EntryKind, LedgerTransaction
from billing_core.permissions import Actor
from billing_core.services.context import BillingContext

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DOLLAR = 1_000_000
THREADS = 20
T = TypeVar("T")


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path, pool_size=THREADS + 2)


@dataclass
class World:
    engine: Engine
    ctx: BillingContext
    payments: InMemoryPaymentProvider

    def organization(self, name: str, *, email: str | None = None) -> tuple[uuid.UUID, Actor]:
        tag = uuid.uuid4().hex[:8]
        owner_email = email or f"ada-{tag}@example.com"
        org = services.organizations.create_organization(self.ctx, name=name, owner_user_id=f"ada-{tag}",
                                                         owner_email=owner_email)
        return org.id, Actor(organization_id=org.id, subject=f"user:ada-{tag}", role=Role.PRIMARY_OWNER,
                             email=owner_email, email_verified=True)

    def checkout(self, owner: Actor, plan: str = "pro") -> CheckoutSession:
        session = services.checkout.start_checkout(self.ctx, owner, organization_id=owner.organization_id,
                                                   plan=plan, return_url="https://app.example.com/billing")
        assert session.provider_session_id is not None
        return session

    def subscriptions(self, **where: Any) -> list[dict[str, Any]]:
        """Stored plan subscription rows, read straight from the table."""
        query = select(plan_subscriptions).filter_by(**where)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def subscriptions_of(self, provider_subscription_id: str) -> int:
        query = select(func.count()).select_from(plan_subscriptions).where(
            plan_subscriptions.c.provider_subscription_id == provider_subscription_id)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def checkout_row(self, session_id: uuid.UUID) -> dict[str, Any]:
        with self.engine.connect() as connection:
            return dict(connection.execute(select(checkout_sessions).where(
                checkout_sessions.c.id == session_id)).one()._mapping)

    def grants(self, organization_id: uuid.UUID) -> list[LedgerTransaction]:
        with self.ctx.uow() as uow:
            return uow.ledger.list(organization_id, kinds=frozenset({EntryKind.GRANT}), limit=200).items

    def assert_reconciles(self, *organization_ids: uuid.UUID) -> None:
        for organization_id in organization_ids:
            report = services.reconcile.reconcile(self.ctx, organization_id=organization_id)
            assert report.clean, report


@pytest.fixture
def world(engine: Engine) -> World:
    payments = InMemoryPaymentProvider()
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(NOW), catalog=load_catalog(),
                         payments=payments)
    return World(engine, ctx, payments)


def _at_once(calls: list[Callable[[], T]]) -> list[T | BillingError]:
    """Run every call in its own thread, released together; each result or BillingError, in order.
    Any other exception (a 500 at the HTTP edge) fails the test."""
    start = threading.Barrier(len(calls))
    results: list[T | BillingError | None] = [None] * len(calls)
    unexpected: list[BaseException] = []

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = calls[n]()
        except BillingError as exc:
            results[n] = exc
        except BaseException as exc:  # pragma: no cover - reported below
            unexpected.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert unexpected == []
    return [r for r in results if r is not None]


def _deliver(world: World, body: bytes, signature: str) -> Callable[[], str]:
    return lambda: services.provider_events.handle_event(world.ctx, body, signature).outcome


def _outcomes(results: list[str | BillingError]) -> Counter[str]:
    return Counter(r if isinstance(r, str) else f"error:{r.code}" for r in results)


def _completed(session: CheckoutSession, subscription: str, event_type: str = "checkout.session.completed",
               ) -> tuple[str, dict[str, Any]]:
    return event_type, {"id": session.provider_session_id, "object": "checkout.session", "mode": "subscription",
                        "subscription": subscription, "status": "complete"}


# --------------------------------------------------------------------------- checkout completion


def test_one_completed_event_delivered_20_times_at_once_activates_once(world: World) -> None:
    org, owner = world.organization("Acme")
    session = world.checkout(owner)
    assert session.trial
    body, signature = world.payments.event(*_completed(session, "sub_once"), event_id="evt_completed")

    outcomes = _outcomes(_at_once([_deliver(world, body, signature)] * THREADS))

    assert outcomes == Counter({"processed": 1, "duplicate": THREADS - 1})
    assert world.subscriptions_of("sub_once") == 1
    grants = world.grants(org)
    assert [(g.description, g.delta(Account.WALLET)) for g in grants] == [
        ("Free Trial Credits", world.ctx.catalog.wallet.trial_grant_micros)]
    row = world.checkout_row(session.id)
    assert row["status"] == "complete" and row["subscription_id"] == world.subscriptions(organization_id=org)[0]["id"]
    world.assert_reconciles(org)


def test_completed_and_async_succeeded_events_of_one_paid_checkout_activate_once(world: World) -> None:
    """Different event ids (no inbox dedupe) about the same session: the checkout decides."""
    org, owner = world.organization("Acme")
    services.payment_methods.attach(world.ctx, owner, organization_id=org, provider_payment_method_id="pm_card_visa")
    world.payments.auto_succeed = True
    services.payments.add_credits(world.ctx, owner, organization_id=org, amount_micros=10 * DOLLAR)  # billing history
    session = world.checkout(owner)
    assert not session.trial
    calls = []
    for n in range(THREADS):
        kind = "checkout.session.completed" if n % 2 else "checkout.session.async_payment_succeeded"
        calls.append(_deliver(world, *world.payments.event(*_completed(session, "sub_paid", kind), event_id=f"e{n}")))

    outcomes = _outcomes(_at_once(calls))

    assert outcomes == Counter({"processed": THREADS})
    assert world.subscriptions_of("sub_paid") == 1
    plan = world.ctx.catalog.plan("pro")
    assert [(g.description, g.delta(Account.WALLET)) for g in world.grants(org)] == [
        (f"{plan.name} plan credits", plan.included_credits_micros)]
    world.assert_reconciles(org)


def test_completed_and_expired_events_for_one_session_race_to_one_outcome(world: World) -> None:
    org, owner = world.organization("Acme")
    session = world.checkout(owner)
    calls = []
    for n in range(THREADS):
        if n % 2:
            event = world.payments.event(*_completed(session, "sub_race"), event_id=f"done-{n}")
        else:
            event = world.payments.event("checkout.session.expired", {
                "id": session.provider_session_id, "object": "checkout.session", "mode": "subscription"},
                event_id=f"gone-{n}")
        calls.append(_deliver(world, *event))

    outcomes = _outcomes(_at_once(calls))

    row = world.checkout_row(session.id)
    if row["status"] == "complete":
        assert world.subscriptions_of("sub_race") == 1 and len(world.grants(org)) == 1
        assert outcomes == Counter({"processed": THREADS})  # expiring a completed session changes nothing
    else:
        assert row["status"] == "expired"
        assert world.subscriptions(organization_id=org) == [] and world.grants(org) == []
        # Completing an expired session is refused (the provider retries; an operator looks).
        assert outcomes == Counter({"processed": THREADS // 2, "error:checkout_closed": THREADS // 2})
    world.assert_reconciles(org)


def test_two_sessions_of_one_organization_completing_at_once_give_one_subscription(world: World) -> None:
    org, owner = world.organization("Acme")
    first, second = world.checkout(owner), world.checkout(owner)  # both opened before either completed
    calls = []
    for n in range(THREADS):
        session, sub = (first, "sub_first") if n % 2 else (second, "sub_second")
        calls.append(_deliver(world, *world.payments.event(*_completed(session, sub), event_id=f"evt-{n}")))

    outcomes = _outcomes(_at_once(calls))

    subs = world.subscriptions(organization_id=org)
    assert len(subs) == 1
    won = subs[0]["provider_subscription_id"]
    assert len(world.grants(org)) == 1
    winner, loser = (first, second) if won == "sub_first" else (second, first)
    assert world.checkout_row(winner.id)["status"] == "complete"
    assert world.checkout_row(loser.id)["status"] == "open"
    assert outcomes == Counter({"processed": THREADS // 2, "error:already_subscribed": THREADS // 2})
    world.assert_reconciles(org)


def test_the_offline_completion_concurrently_activates_once(world: World) -> None:
    """What ``POST .../checkout_sessions/{id}/complete`` runs (offline provider), 20 times at once,
    racing the provider's webhook for the same session."""
    org, owner = world.organization("Acme")
    session = world.checkout(owner)
    provider_subscription = services.checkout.offline_subscription_id(session)
    body, signature = world.payments.event(*_completed(session, provider_subscription), event_id="evt_hook")

    def offline() -> str:
        done = services.checkout.complete_offline_checkout(world.ctx, owner, organization_id=org,
                                                           session_id=session.id)
        return done.status.value

    calls: list[Callable[[], str]] = [offline] * (THREADS - 2) + [_deliver(world, body, signature)] * 2
    outcomes = _outcomes(_at_once(calls))

    assert outcomes == Counter({"complete": THREADS - 2, "processed": 1, "duplicate": 1})
    assert world.subscriptions_of(provider_subscription) == 1
    assert len(world.grants(org)) == 1
    world.assert_reconciles(org)


# --------------------------------------------------------------------------- guest checkout claims


def test_16_claims_from_two_organizations_sharing_the_email_claim_once(world: World) -> None:
    email = f"guest-{uuid.uuid4().hex[:6]}@example.com"
    session = services.checkout.start_guest_checkout(world.ctx, email=email, plan="pro",
                                                     return_url="https://app.example.com/welcome")
    assert session.provider_session_id is not None
    body, signature = world.payments.event(*_completed(session, "sub_guest"), event_id="evt_guest")
    assert services.provider_events.handle_event(world.ctx, body, signature).outcome == "processed"
    assert world.subscriptions_of("sub_guest") == 0  # waits for the claim
    org_a, ada = world.organization("A", email=email)
    org_b, _ = world.organization("B")
    services.organizations.add_member(world.ctx, organization_id=org_b, user_id="guest-b", email=email,
                                      role=Role.MEMBER)
    bea = Actor(organization_id=org_b, subject="user:guest-b", role=Role.MEMBER, email=email.upper(),
                email_verified=True)

    def claim(actor: Actor) -> Callable[[], list[CheckoutSession]]:
        return lambda: services.checkout.claim_guest_checkouts(world.ctx, actor)

    results = _at_once([claim(ada if n % 2 else bea) for n in range(16)])

    assert not [r for r in results if isinstance(r, BillingError)]
    claimed = [s for r in results if not isinstance(r, BillingError) for s in r]
    assert len(claimed) == 1 and claimed[0].id == session.id
    winner = claimed[0].organization_id
    assert winner in (org_a, org_b)
    assert world.subscriptions_of("sub_guest") == 1
    row = world.checkout_row(session.id)
    assert row["organization_id"] == winner and row["claimed_at"] is not None
    plan = world.ctx.catalog.plan("pro")
    assert [g.delta(Account.WALLET) for g in world.grants(winner)] == [plan.included_credits_micros]
    assert world.grants(org_b if winner == org_a else org_a) == []
    # Later claims find nothing left.
    assert services.checkout.claim_guest_checkouts(world.ctx, ada) == []
    assert services.checkout.claim_guest_checkouts(world.ctx, bea) == []
    world.assert_reconciles(org_a, org_b)
    assert CheckoutStatus(row["status"]) == CheckoutStatus.COMPLETE


# --------------------------------------------------------------------------- the other event types

IDS = pytest.mark.parametrize("same_id", [True, False], ids=["identical", "distinct-ids"])


def _events(world: World, same_id: bool, build: Callable[[int], tuple[str, dict[str, Any]]],
            ) -> list[Callable[[], str]]:
    """THREADS deliveries: one event repeated (``same_id``), or as many events about one object."""
    if same_id:
        return [_deliver(world, *world.payments.event(*build(0), event_id="evt_same"))] * THREADS
    return [_deliver(world, *world.payments.event(*build(n), event_id=f"evt_{n}")) for n in range(THREADS)]


def _pending_top_up(world: World) -> tuple[uuid.UUID, str]:
    org, owner = world.organization("Acme")
    services.payment_methods.attach(world.ctx, owner, organization_id=org, provider_payment_method_id="pm_card_visa")
    world.payments.auto_succeed = False
    payment = services.payments.add_credits(world.ctx, owner, organization_id=org, amount_micros=20 * DOLLAR)
    assert payment.provider_payment_id is not None
    return org, payment.provider_payment_id


def _wallet(world: World, org: uuid.UUID) -> int:
    with world.ctx.uow() as uow:
        return uow.wallets.get(org).wallet_micros


@IDS
def test_a_payment_succeeding_20_times_at_once_credits_once(world: World, same_id: bool) -> None:
    org, intent = _pending_top_up(world)
    outcomes = _outcomes(_at_once(_events(world, same_id, lambda n: (
        "payment_intent.succeeded", {"id": intent, "object": "payment_intent"}))))
    assert outcomes == (Counter({"processed": 1, "duplicate": THREADS - 1}) if same_id
                        else Counter({"processed": THREADS}))
    assert _wallet(world, org) == 20 * DOLLAR
    world.assert_reconciles(org)


@IDS
def test_a_refund_and_a_dispute_of_one_payment_at_once_take_the_credits_back_once(world: World,
                                                                                 same_id: bool) -> None:
    org, intent = _pending_top_up(world)
    services.payments.settle_provider_payment(world.ctx, provider_payment_id=intent, reference=None, succeeded=True)
    assert _wallet(world, org) == 20 * DOLLAR
    outcomes = _outcomes(_at_once(_events(world, same_id, lambda n: (
        ("charge.refunded", {"id": "ch_1", "payment_intent": intent, "refunded": True}) if n % 2 else
        ("charge.dispute.created", {"id": "dp_1", "payment_intent": intent})))))
    assert sum(outcomes.values()) == THREADS and set(outcomes) <= {"processed", "duplicate"}
    assert _wallet(world, org) == 0
    with world.ctx.uow() as uow:
        reversals = uow.ledger.list(org, kinds=frozenset({EntryKind.PAYMENT_REVERSAL})).items
    assert len(reversals) == 1
    world.assert_reconciles(org)


@IDS
def test_a_renewal_delivered_20_times_at_once_grants_the_period_once(world: World, same_id: bool) -> None:
    org, owner = world.organization("Acme")
    services.payment_methods.attach(world.ctx, owner, organization_id=org, provider_payment_method_id="pm_card_visa")
    services.payments.add_credits(world.ctx, owner, organization_id=org, amount_micros=10 * DOLLAR)
    session = world.checkout(owner)
    services.checkout.complete_checkout(world.ctx, provider_session_id=str(session.provider_session_id),
                                        provider_subscription_id="sub_renew")
    start = int(NOW.timestamp()) + 30 * 86_400
    renewal = {"id": "sub_renew", "object": "subscription", "status": "active",
               "current_period_start": start, "current_period_end": start + 30 * 86_400}
    outcomes = _outcomes(_at_once(_events(world, same_id, lambda n: ("customer.subscription.updated", renewal))))
    assert sum(outcomes.values()) == THREADS and set(outcomes) <= {"processed", "duplicate"}
    plan = world.ctx.catalog.plan("pro")
    grants = [g for g in world.grants(org) if g.description == f"{plan.name} plan credits"]
    assert len(grants) == 2  # the first period's and the renewal's, once
    assert world.subscriptions_of("sub_renew") == 1
    world.assert_reconciles(org)


@IDS
def test_a_collected_method_announced_20_times_at_once_is_added_once(world: World, same_id: bool) -> None:
    org, owner = world.organization("Acme")
    services.payment_methods.attach(world.ctx, owner, organization_id=org, provider_payment_method_id="pm_card_visa")
    with world.ctx.uow() as uow:
        customer = uow.organizations.get(org).provider_customer_id
    outcomes = _outcomes(_at_once(_events(world, same_id, lambda n: ("setup_intent.succeeded", {
        "id": "seti_1", "object": "setup_intent", "customer": customer, "payment_method": "pm_card_mastercard"}))))
    assert sum(outcomes.values()) == THREADS and set(outcomes) <= {"processed", "duplicate"}
    with world.ctx.uow() as uow:
        methods = uow.payment_methods.list(org)
    assert sorted(m.provider_payment_method_id for m in methods) == ["pm_card_mastercard", "pm_card_visa"]
    assert [m.provider_payment_method_id for m in methods if m.default] == ["pm_card_visa"]


def test_success_and_failure_of_one_payment_at_once_leave_one_outcome(world: World) -> None:
    org, intent = _pending_top_up(world)
    outcomes = _outcomes(_at_once(_events(world, False, lambda n: (
        ("payment_intent.succeeded", {"id": intent, "object": "payment_intent"}) if n % 2 else
        ("payment_intent.payment_failed", {"id": intent, "object": "payment_intent",
                                           "last_payment_error": {"message": "Your card was declined."}})))))
    assert outcomes == Counter({"processed": THREADS})
    with world.ctx.uow() as uow:
        payment = uow.payments.by_provider_id(intent)
        top_ups = uow.ledger.list(org, kinds=frozenset({EntryKind.TOP_UP})).items
    assert payment is not None
    # The first to commit decides; the later ones are stale moves the payment table refuses.
    assert (payment.status.value, len(top_ups), _wallet(world, org)) in (
        ("succeeded", 1, 20 * DOLLAR), ("failed", 0, 0))
    world.assert_reconciles(org)


@IDS
def test_a_paid_crypto_checkout_delivered_20_times_at_once_credits_once(world: World, same_id: bool) -> None:
    org, owner = world.organization("Acme")
    payment = services.payments.add_credits(world.ctx, owner, organization_id=org, amount_micros=20 * DOLLAR,
                                            crypto=True, return_url="https://app.example.com/billing")
    outcomes = _outcomes(_at_once(_events(world, same_id, lambda n: (
        "checkout.session.completed" if n % 2 else "checkout.session.async_payment_succeeded",
        {"id": payment.provider_payment_id, "object": "checkout.session", "mode": "payment",
         "payment_status": "paid", "metadata": {"reference": str(payment.id)}}))))
    assert sum(outcomes.values()) == THREADS and set(outcomes) <= {"processed", "duplicate"}
    assert _wallet(world, org) == 20 * DOLLAR
    world.assert_reconciles(org)
