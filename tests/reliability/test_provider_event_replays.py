"""Every provider event type the core handles, delivered once, twice, in reverse order and with a
bad signature, on the in-memory bundle.

Each scenario is a short event sequence ending in (or built around) one handled type, with the
concrete state it must leave. Delivered twice (each event repeated at once) the state is the same
and the repeat is answered ``duplicate``. Reversed, the state is the one the event semantics give:
the same where order cannot matter, and spelled out where it does (events carry the object's state,
moves the payment table forbids are ignored as stale). With a bad signature nothing changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from adapters.fakes import InMemoryBilling, in_memory_billing
from adapters.stripe.events import HANDLED_EVENT_TYPES
from billing_core import Permission, Role, services
from billing_core.errors import InvalidInput
from billing_core.permissions import Actor

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DOLLAR = 1_000_000
Event = tuple[bytes, str]
State = dict[str, object]


@dataclass
class Prepared:
    events: list[Event]
    state: Callable[[], State]


@dataclass(frozen=True)
class Scenario:
    build: Callable[[InMemoryBilling], Prepared]
    in_order: State
    reversed: State | None = None
    """None: the same as in order."""


def _org(b: InMemoryBilling) -> tuple[uuid.UUID, Actor]:
    org = services.organizations.create_organization(b.ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@example.com")
    owner = Actor(organization_id=org.id, subject="user:ada", role=Role.PRIMARY_OWNER)
    services.payment_methods.attach(b.ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    return org.id, owner


def _wallet(b: InMemoryBilling, org: uuid.UUID) -> int:
    with b.ctx.uow() as uow:
        return uow.wallets.get(org).wallet_micros


def _payment_status(b: InMemoryBilling, provider_id: str) -> str:
    with b.ctx.uow() as uow:
        payment = uow.payments.by_provider_id(provider_id)
    assert payment is not None
    return payment.status.value


def _pending_payment(b: InMemoryBilling) -> tuple[uuid.UUID, str]:
    org, owner = _org(b)
    b.payments.auto_succeed = False
    payment = services.payments.add_credits(b.ctx, owner, organization_id=org, amount_micros=20 * DOLLAR)
    assert payment.provider_payment_id is not None
    return org, payment.provider_payment_id


def _payment_state(b: InMemoryBilling, org: uuid.UUID, intent: str) -> Callable[[], State]:
    return lambda: {"payment": _payment_status(b, intent), "wallet": _wallet(b, org)}


def _intents(*types: str) -> Callable[[InMemoryBilling], Prepared]:
    def build(b: InMemoryBilling) -> Prepared:
        org, intent = _pending_payment(b)
        events = []
        for event_type in types:
            obj: dict[str, object] = {"id": intent, "object": "payment_intent"}
            if event_type.startswith("charge."):
                obj = {"id": "ch_1", "payment_intent": intent, "refunded": True}
            if event_type == "payment_intent.payment_failed":
                obj["last_payment_error"] = {"message": "Your card was declined."}
            events.append(b.payments.event(event_type, obj))
        return Prepared(events, _payment_state(b, org, intent))
    return build


def _subscribed(b: InMemoryBilling) -> tuple[uuid.UUID, str, Callable[[], State]]:
    org, owner = _org(b)
    session = services.checkout.start_checkout(b.ctx, owner, organization_id=org, plan="pro",
                                               return_url="https://app.example.com/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(b.ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id="sub_1")

    def state() -> State:
        with b.ctx.uow() as uow:
            sub = uow.plan_subscriptions.current(org)
        return {"subscription": sub.status.value if sub else None}
    return org, "sub_1", state


def _statuses(event_type: str, *statuses: str) -> Callable[[InMemoryBilling], Prepared]:
    """The provider sends the statuses a second apart, in the order given."""
    def build(b: InMemoryBilling) -> Prepared:
        _org_id, sub_id, state = _subscribed(b)
        sent = int(NOW.timestamp())
        return Prepared([b.payments.event(event_type, {"id": sub_id, "object": "subscription", "status": s},
                                          created=sent + n) for n, s in enumerate(statuses)], state)
    return build


def _checkout(event_type: str) -> Callable[[InMemoryBilling], Prepared]:
    def build(b: InMemoryBilling) -> Prepared:
        org, owner = _org(b)
        session = services.checkout.start_checkout(b.ctx, owner, organization_id=org, plan="pro",
                                                   return_url="https://app.example.com/billing")
        sid = session.provider_session_id
        assert sid is not None

        def state() -> State:
            with b.ctx.uow() as uow:
                checkout = uow.checkouts.by_provider_id(sid)
                sub = uow.plan_subscriptions.current(org)
            assert checkout is not None
            return {"checkout": checkout.status.value, "subscription": sub.status.value if sub else None}
        return Prepared([b.payments.event(event_type, {"id": sid, "object": "checkout.session",
                                                       "mode": "subscription", "subscription": "sub_9"})], state)
    return build


def _crypto_paid(b: InMemoryBilling) -> Prepared:
    org, owner = _org(b)
    payment = services.payments.add_credits(b.ctx, owner, organization_id=org, amount_micros=20 * DOLLAR, crypto=True,
                                            return_url="https://app.example.com/billing")
    sid = payment.provider_payment_id
    assert sid is not None
    event = b.payments.event("checkout.session.async_payment_succeeded",
                             {"id": sid, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
                              "metadata": {"reference": str(payment.id)}})
    return Prepared([event], _payment_state(b, org, sid))


def _invoice_paid(b: InMemoryBilling) -> Prepared:
    org, owner = _org(b)
    platform = Actor(organization_id=org, subject="token:p", scopes=frozenset({Permission.USAGE_WRITE}))
    session = services.checkout.start_checkout(b.ctx, owner, organization_id=org, plan="pro",
                                               return_url="https://app.example.com/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(b.ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id="sub_1")
    services.product_subscriptions.subscribe_product(b.ctx, owner, organization_id=org, product="compute",
                                                     project_id=None,
                                                     start_date=datetime(2026, 1, 1, tzinfo=UTC))
    with b.ctx.uow() as uow:
        spendable = uow.wallets.get(org).balance_micros
    quantity = spendable // 40_000 + 200  # more than the wallet holds: the rest is owed on the invoice
    outcome = services.usage.report_usage(b.ctx, platform, organization_id=org, event_id="feb", product="compute",
                                          quantity=quantity, occurred_at=datetime(2026, 2, 20, tzinfo=UTC))
    assert outcome.allowed, outcome
    invoice_id = services.invoicing.close_period(b.ctx, period="2026-02").invoice_ids[0]
    with b.ctx.uow() as uow:
        customer = uow.organizations.get(org).provider_customer_id
        assert uow.invoices.get(org, invoice_id).status.value == "open"

    def state() -> State:
        with b.ctx.uow() as uow:
            return {"invoice": uow.invoices.get(org, invoice_id).status.value}
    return Prepared([b.payments.event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": customer,
                                                       "metadata": {"reference": str(invoice_id)}})], state)


def _setup_intent(b: InMemoryBilling) -> Prepared:
    org, _owner = _org(b)
    with b.ctx.uow() as uow:
        customer = uow.organizations.get(org).provider_customer_id

    def state() -> State:
        with b.ctx.uow() as uow:
            return {"methods": sorted(m.provider_payment_method_id for m in uow.payment_methods.list(org))}
    return Prepared([b.payments.event("setup_intent.succeeded", {"id": "seti_1", "object": "setup_intent",
                                                                 "customer": customer,
                                                                 "payment_method": "pm_card_mastercard"})], state)


SCENARIOS: dict[str, Scenario] = {
    "checkout.session.completed": Scenario(_checkout("checkout.session.completed"),
                                           {"checkout": "complete", "subscription": "trialing"}),  # first plan: trial
    "checkout.session.async_payment_succeeded": Scenario(_crypto_paid, {"payment": "succeeded",
                                                                        "wallet": 20 * DOLLAR}),
    "checkout.session.expired": Scenario(_checkout("checkout.session.expired"),
                                         {"checkout": "expired", "subscription": None}),
    "customer.subscription.created": Scenario(_statuses("customer.subscription.created", "active"),
                                              {"subscription": "active"}),
    # The event carries the subscription's state at sending: the last one SENT wins, in either order.
    "customer.subscription.updated": Scenario(_statuses("customer.subscription.updated", "past_due", "active"),
                                              {"subscription": "active"}),
    "customer.subscription.deleted": Scenario(_statuses("customer.subscription.deleted", "canceled"),
                                              {"subscription": "canceled"}),
    "customer.subscription.paused": Scenario(_statuses("customer.subscription.paused", "paused"),
                                             {"subscription": "paused"}),
    "customer.subscription.resumed": Scenario(_statuses("customer.subscription.resumed", "paused", "active"),
                                              {"subscription": "active"}),
    "invoice.paid": Scenario(_invoice_paid, {"invoice": "paid"}),
    "payment_intent.succeeded": Scenario(_intents("payment_intent.succeeded"),
                                         {"payment": "succeeded", "wallet": 20 * DOLLAR}),
    # Once failed, a late success is stale, and once settled, a late failure is.
    "payment_intent.payment_failed": Scenario(_intents("payment_intent.payment_failed", "payment_intent.succeeded"),
                                              {"payment": "failed", "wallet": 0},
                                              {"payment": "succeeded", "wallet": 20 * DOLLAR}),
    # A refund or dispute of a payment not settled yet is ignored; the later success then stands.
    "charge.refunded": Scenario(_intents("payment_intent.succeeded", "charge.refunded"),
                                {"payment": "refunded", "wallet": 0}, {"payment": "succeeded", "wallet": 20 * DOLLAR}),
    "charge.dispute.created": Scenario(_intents("payment_intent.succeeded", "charge.dispute.created"),
                                       {"payment": "disputed", "wallet": 0},
                                       {"payment": "succeeded", "wallet": 20 * DOLLAR}),
    "setup_intent.succeeded": Scenario(_setup_intent, {"methods": ["pm_card_mastercard", "pm_card_visa"]}),
}


def test_every_handled_event_type_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(HANDLED_EVENT_TYPES)


def _deliver(b: InMemoryBilling, event: Event) -> str:
    return services.provider_events.handle_event(b.ctx, event[0], event[1]).outcome


@pytest.mark.parametrize("event_type", sorted(HANDLED_EVENT_TYPES))
def test_once_twice_reversed_and_forged(event_type: str) -> None:
    scenario = SCENARIOS[event_type]

    once = in_memory_billing(NOW)
    prepared = scenario.build(once)
    assert [_deliver(once, e) for e in prepared.events] == ["processed"] * len(prepared.events)
    assert prepared.state() == scenario.in_order

    twice = in_memory_billing(NOW)
    prepared = scenario.build(twice)
    for event in prepared.events:
        assert _deliver(twice, event) == "processed"
        assert _deliver(twice, event) == "duplicate"
    assert prepared.state() == scenario.in_order

    backwards = in_memory_billing(NOW)
    prepared = scenario.build(backwards)
    for event in reversed(prepared.events):
        _deliver(backwards, event)
    assert prepared.state() == (scenario.reversed or scenario.in_order)

    forged = in_memory_billing(NOW)
    prepared = scenario.build(forged)
    before = prepared.state()
    for payload, _signature in prepared.events:
        for header in (forged.payments.sign(payload).replace("v1=", "v1=00"), None, "", "t=1,v1=abc", "garbage"):
            with pytest.raises(InvalidInput) as caught:
                services.provider_events.handle_event(forged.ctx, payload, header)
            assert caught.value.code == "invalid_signature"
        tampered = payload.replace(b'"object"', b'"0bject"', 1)
        with pytest.raises(InvalidInput) as caught:
            services.provider_events.handle_event(forged.ctx, tampered, forged.payments.sign(payload))
        assert caught.value.code == "invalid_signature"
    assert prepared.state() == before
    # Nothing was remembered either: the genuine events are still processed afterwards.
    assert [_deliver(forged, e) for e in prepared.events] == ["processed"] * len(prepared.events)
    assert prepared.state() == scenario.in_order
