"""Correctly signed provider events with arbitrary objects: whatever the object holds, an event is
processed, ignored or refused with a BillingError that maps to a 4xx (never a 5xx, never another
exception), and the books still reconcile.

A signature proves who sent an event, not that its object is well formed: Stripe changes shapes
between API versions, and a leaked webhook secret lets anybody sign. The objects mix the world's
real ids (subscription, payment intents, checkout session, customer, invoice) with random JSON in
the fields the handlers read, so the fuzz reaches the handlers' deep paths.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.fakes import InMemoryBilling, in_memory_billing
from adapters.stripe.events import HANDLED_EVENT_TYPES
from billing_core import Role, services
from billing_core.errors import BillingError, ProviderUnavailable
from billing_core.permissions import Actor

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DOLLAR = 1_000_000


class World:
    def __init__(self) -> None:
        self.billing: InMemoryBilling = in_memory_billing(NOW)
        ctx = self.billing.ctx
        org = services.organizations.create_organization(ctx, name="Fuzz", owner_user_id="ada",
                                                         owner_email="ada@example.com")
        self.org = org.id
        owner = Actor(organization_id=org.id, subject="user:ada", role=Role.PRIMARY_OWNER)
        services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
        session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="pro",
                                                   return_url="https://app.example.com/billing")
        assert session.provider_session_id is not None
        self.ids: list[object] = [session.provider_session_id, "sub_fuzz", "pm_card_mastercard"]
        services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                            provider_subscription_id="sub_fuzz")
        self.billing.payments.auto_succeed = False
        for amount in (10, 20):
            payment = services.payments.add_credits(ctx, owner, organization_id=org.id, amount_micros=amount * DOLLAR)
            self.ids += [payment.provider_payment_id, str(payment.id)]
        with ctx.uow() as uow:
            self.ids.append(uow.organizations.get(org.id).provider_customer_id)
        self.ids.append(str(uuid.uuid4()))


def _json() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63),
                        st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=6)


def _objects(world: World) -> st.SearchStrategy[dict[str, Any]]:
    """Every field optional; each mostly what Stripe sends (a real id, a status, a timestamp) and
    sometimes any JSON at all."""
    known = st.sampled_from(world.ids)
    times = st.one_of(st.integers(min_value=1_700_000_000, max_value=1_900_000_000),
                      st.integers(min_value=-(2**63), max_value=2**63))

    def usual(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(strategy, strategy, strategy, _json())

    reference = st.builds(lambda ref: {"reference": ref}, known)
    items = st.builds(lambda start, end: {"data": [{"current_period_start": start, "current_period_end": end}]},
                      times, times)
    fields: dict[str, st.SearchStrategy[Any]] = {
        "id": usual(known), "object": usual(st.sampled_from(["subscription", "payment_intent", "checkout.session"])),
        "status": usual(st.sampled_from(["active", "past_due", "canceled", "unpaid", "paused", "trialing",
                                         "incomplete", "incomplete_expired", "bogus"])),
        "mode": usual(st.sampled_from(["payment", "subscription"])), "payment_status": usual(st.just("paid")),
        "subscription": usual(known), "customer": usual(known), "payment_intent": usual(known),
        "payment_method": usual(known), "refunded": usual(st.booleans()), "metadata": usual(reference),
        "client_reference_id": usual(known), "last_payment_error": usual(st.builds(dict, message=st.text())),
        "current_period_start": usual(times), "current_period_end": usual(times), "items": usual(items),
    }
    return st.fixed_dictionaries({}, optional=fields)


def test_any_signed_object_is_processed_ignored_or_a_4xx() -> None:
    world = World()
    ctx = world.billing.ctx
    types = st.sampled_from([*sorted(HANDLED_EVENT_TYPES), "invoice.created", "customer.deleted"])
    created = st.one_of(st.integers(min_value=0, max_value=2**40), st.integers(min_value=2**62, max_value=2**63))
    outcomes: set[str] = set()

    @settings(max_examples=400, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(event_type=types, obj=_objects(world), at=created)
    def deliver(event_type: str, obj: dict[str, Any], at: int) -> None:
        payload, signature = world.billing.payments.event(event_type, obj, created=at)
        refused: BillingError | None = None
        try:
            outcomes.add(services.provider_events.handle_event(ctx, payload, signature).outcome)
        except BillingError as exc:
            refused = exc
        # ProviderUnavailable is the one BillingError answered with a 5xx (503).
        assert not isinstance(refused, ProviderUnavailable), refused
        if refused is not None:
            outcomes.add(f"refused:{refused.code}")

    deliver()
    assert {"processed", "ignored"} <= outcomes, outcomes
    assert services.reconcile.reconcile(ctx, organization_id=world.org).clean
