"""Explaining usage events on every storage (memory, SQLite, PostgreSQL): the same chain whatever
the adapter, for a capped hold settle, a refund, and an hour whose buckets went on two invoices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.testing.storage import StorageBackend
from billing_core import Permission, services
from billing_core.catalog import load_catalog
from billing_core.holds import HoldOverrun
from billing_core.permissions import Actor, Role
from billing_core.services.context import BillingContext

NOW = datetime(2026, 3, 20, 12, 15, tzinfo=UTC)
PRICE = 40_000  # compute, per vCPU-hour


def test_the_chain_is_the_same_on_every_storage(storage: StorageBackend) -> None:
    clock = FixedClock(NOW)
    ctx = BillingContext(uow=storage.uow, clock=clock, catalog=load_catalog(), payments=InMemoryPaymentProvider())
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada", owner_email="ada@acme.test")
    _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    owner = services.organizations.authenticate(ctx, owner_secret)
    session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="pro",
                                               return_url="https://app.test/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id=f"sub_{org.id.hex}")
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="compute",
                                                     project_id=None)
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                   scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(ctx, secret)
    member = Actor(organization_id=org.id, subject="bob", role=Role.MEMBER)

    services.holds.set_hold_overrun(ctx, owner, organization_id=org.id, rule=HoldOverrun.CAP_AT_HOLD.value)
    placed = services.holds.place_hold(ctx, platform, organization_id=org.id, product="compute", max_quantity=10)
    assert placed.hold is not None
    services.holds.settle_hold(ctx, platform, organization_id=org.id, hold_id=placed.hold.id, event_id="gen",
                               quantity=15)
    assert services.usage.report_usage(ctx, platform, organization_id=org.id, event_id="plain", product="compute",
                                       quantity=2).allowed
    clock.set(NOW + timedelta(minutes=1))
    services.usage.refund_usage(ctx, platform, organization_id=org.id, event_id="plain", reason="failed")
    clock.set(datetime(2026, 4, 1, 0, 5, tzinfo=UTC))
    march = services.invoicing.close_period(ctx, period="2026-03", organization_id=org.id)
    clock.set(datetime(2026, 4, 1, 0, 6, tzinfo=UTC))
    assert services.usage.report_usage(ctx, platform, organization_id=org.id, event_id="late", product="compute",
                                       quantity=4, occurred_at=NOW).allowed

    def explain(event_id: str) -> services.usage_explain.UsageExplanation:
        return services.usage_explain.explain_usage_event(ctx, member, org.id, event_id)

    gen = explain("gen")
    assert gen.hold is not None and gen.hold.hold_id == placed.hold.id
    assert gen.hold.overrun_rule == HoldOverrun.CAP_AT_HOLD
    assert (gen.price.priced_micros, gen.price.amount_micros, gen.hold.uncharged_micros) == (15 * PRICE, 10 * PRICE,
                                                                                           5 * PRICE)
    assert gen.debit is not None and gen.debit.amount_micros == 10 * PRICE
    assert gen.invoice_line is not None and gen.invoice_line.invoice_id == march.invoice_ids[0]
    # The hour's bucket sums the events as stored: the settle's 15 units (charged as 10), the plain
    # event's 2 and its refund's -2.
    assert (gen.invoice_line.quantity, gen.invoice_line.amount_micros) == (15 + 2 - 2, 10 * PRICE)
    plain = explain("plain")
    assert plain.hold is None and [r.reason for r in plain.refunds] == ["failed"]
    assert plain.refunds[0].amount_micros == 2 * PRICE
    assert explain("plain:refund").event.refund_of == "plain"
    assert explain("late").invoice_line is None, "usage for an invoiced hour waits for the next invoice"
