"""Explaining one stored usage event (issue 21): event → price → debit → hold → invoice line →
refunds, through the use cases on the in-memory adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from billing_core import Permission, services
from billing_core.errors import NotFound, PermissionDenied, UsageEventNotFound
from billing_core.holds import HoldOverrun, HoldStatus
from billing_core.invoices import InvoiceStatus
from billing_core.permissions import Actor, Role

NOW = datetime(2026, 3, 20, 12, 15, tzinfo=UTC)
PRICE = 40_000  # compute, per vCPU-hour


class Org:
    def __init__(self, billing: InMemoryBilling, name: str = "Acme") -> None:
        ctx = billing.ctx
        org = services.organizations.create_organization(ctx, name=name, owner_user_id=f"{name}-ada",
                                                         owner_email=f"ada@{name}.test")
        _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada",
                                                             user_id=f"{name}-ada")
        self.owner = services.organizations.authenticate(ctx, owner_secret)
        session = services.checkout.start_checkout(ctx, self.owner, organization_id=org.id, plan="pro",
                                                   return_url="https://app.test/billing")
        assert session.provider_session_id is not None
        services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                            provider_subscription_id=f"sub_{org.id.hex}")
        services.product_subscriptions.subscribe_product(ctx, self.owner, organization_id=org.id, product="compute",
                                                         project_id=None)
        _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                       scopes=frozenset({Permission.USAGE_WRITE}))
        self.platform: Actor = services.organizations.authenticate(ctx, secret)
        self.member = Actor(organization_id=org.id, subject="bob", role=Role.MEMBER)
        self.id = org.id
        self.billing = billing

    def report(self, event_id: str, quantity: int) -> services.usage.UsageOutcome:
        outcome = services.usage.report_usage(self.billing.ctx, self.platform, organization_id=self.id,
                                              event_id=event_id, product="compute", quantity=quantity)
        assert outcome.allowed
        return outcome

    def explain(self, event_id: str, actor: Actor | None = None) -> services.usage_explain.UsageExplanation:
        return services.usage_explain.explain_usage_event(self.billing.ctx, actor or self.member, self.id, event_id)


@pytest.fixture
def org() -> Org:
    return Org(in_memory_billing(NOW))


def test_a_plain_event_shows_its_price_and_its_debit_and_nothing_else(org: Org) -> None:
    outcome = org.report("call-1", 3)
    chain = org.explain("call-1")
    assert chain.event.event_id == "call-1" and chain.event.quantity == 3 and chain.event.project_id is None
    assert (chain.event.product_code, chain.event.product_name) == ("compute", "Compute")
    assert chain.event.occurred_at == NOW and chain.event.recorded_at == NOW and chain.event.refund_of is None
    assert chain.price.unit_price_micros == PRICE and chain.price.unit == "vCPU-hour"
    assert (chain.price.priced_micros, chain.price.amount_micros, chain.price.uncharged_micros) == (3 * PRICE,
                                                                                                     3 * PRICE, 0)
    assert chain.debit is not None
    assert chain.debit.idempotency_key == "usage:call-1" and chain.debit.amount_micros == 3 * PRICE
    assert chain.debit.balance_after_micros == outcome.balance_micros and chain.debit.created_at == NOW
    with org.billing.ctx.uow() as uow:
        stored = uow.ledger.get_by_key(org.id, "usage:call-1")
    assert stored is not None and chain.debit.transaction_id == stored.id
    assert chain.hold is None and chain.invoice_line is None and chain.refunds == []


def test_an_event_recorded_by_a_hold_settle_names_the_hold_and_the_over_hold_rule(org: Org) -> None:
    ctx = org.billing.ctx
    services.holds.set_hold_overrun(ctx, org.owner, organization_id=org.id, rule=HoldOverrun.CAP_AT_HOLD.value)
    placed = services.holds.place_hold(ctx, org.platform, organization_id=org.id, product="compute", max_quantity=10)
    assert placed.hold is not None
    org.billing.clock.set(NOW + timedelta(minutes=2))
    services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                               event_id="gen-1", quantity=12)
    chain = org.explain("gen-1")
    assert chain.hold is not None and chain.hold.hold_id == placed.hold.id
    assert chain.hold.status == HoldStatus.SETTLED and chain.hold.held_micros == 10 * PRICE
    assert chain.hold.overrun_rule == HoldOverrun.CAP_AT_HOLD and chain.hold.settled_quantity == 12
    assert (chain.hold.charged_micros, chain.hold.uncharged_micros) == (10 * PRICE, 2 * PRICE)
    assert (chain.price.priced_micros, chain.price.amount_micros, chain.price.uncharged_micros) == (
        12 * PRICE, 10 * PRICE, 2 * PRICE), "the price says what the cap left uncharged"
    assert chain.debit is not None and chain.debit.idempotency_key == "usage:gen-1"
    assert chain.debit.amount_micros == 10 * PRICE and chain.event.recorded_at == NOW + timedelta(minutes=2)
    org.report("plain", 1)
    assert org.explain("plain").hold is None, "a plain report settled no hold"


def test_an_invoiced_event_names_its_invoice_line_after_the_period_close(org: Org) -> None:
    ctx = org.billing.ctx
    org.report("march-1", 2)
    org.report("march-2", 5)
    assert org.explain("march-1").invoice_line is None, "uninvoiced until the period closes"
    org.billing.clock.set(datetime(2026, 4, 1, 0, 5, tzinfo=UTC))
    report = services.invoicing.close_period(ctx, period="2026-03", organization_id=org.id)
    assert report.invoices_created == 1
    # Late usage for the same hour, after the close, opens a new bucket for the next invoice.
    org.billing.clock.set(datetime(2026, 4, 1, 0, 6, tzinfo=UTC))
    services.usage.report_usage(ctx, org.platform, organization_id=org.id, event_id="late", product="compute",
                                quantity=4, occurred_at=NOW)
    line = org.explain("march-1").invoice_line
    assert line is not None and line.invoice_id == report.invoice_ids[0]
    invoice = services.invoicing.get_invoice(ctx, org.owner, organization_id=org.id, invoice_id=line.invoice_id)
    assert line.number == invoice.number and line.number is not None
    assert line.status == invoice.status and line.status != InvoiceStatus.DRAFT
    assert (line.period_start, line.period_end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert (line.product, line.project_id, line.quantity, line.amount_micros) == ("Compute", None, 7, 7 * PRICE)
    assert line.amount.cents == 7 * PRICE // 10_000
    assert org.explain("late").invoice_line is None, "the late event waits for the next invoice"
    org.billing.clock.set(datetime(2026, 5, 1, 0, 5, tzinfo=UTC))
    april = services.invoicing.close_period(ctx, period="2026-04", organization_id=org.id)
    late_line = org.explain("late").invoice_line
    assert late_line is not None and late_line.invoice_id == april.invoice_ids[0] and late_line.quantity == 4
    march_line = org.explain("march-1").invoice_line
    assert march_line is not None and march_line.invoice_id == report.invoice_ids[0], \
        "the hour's two buckets are on two invoices: each event names the one it is on"


def test_a_refunded_event_lists_its_refund_and_the_refund_row_points_back(org: Org) -> None:
    ctx = org.billing.ctx
    org.report("failed-gen", 4)
    org.billing.clock.set(NOW + timedelta(minutes=5))
    refunded = services.usage.refund_usage(ctx, org.platform, organization_id=org.id, event_id="failed-gen",
                                           reason="model crashed")
    chain = org.explain("failed-gen")
    assert len(chain.refunds) == 1
    refund = chain.refunds[0]
    assert refund.idempotency_key == "usage-refund:failed-gen" and refund.reason == "model crashed"
    assert refund.amount_micros == 4 * PRICE and refund.balance_after_micros == refunded.balance_micros
    assert refund.created_at == NOW + timedelta(minutes=5)
    row = org.explain("failed-gen:refund")
    assert row.event.refund_of == "failed-gen" and row.event.quantity == -4
    assert row.debit is None and row.hold is None and [r.transaction_id for r in row.refunds] == [refund.transaction_id]
    assert row.event.recorded_at == NOW + timedelta(minutes=5)


def test_unknown_denied_and_other_organizations_events_are_not_found(org: Org) -> None:
    with pytest.raises(UsageEventNotFound) as unknown:
        org.explain("never-reported")
    assert unknown.value.code == "usage_event_not_found" and "denied events are not stored" in unknown.value.message
    assert isinstance(unknown.value, NotFound)
    with org.billing.ctx.uow() as uow:
        uow.wallets.set_limits(org.id, uow.wallets.get(org.id).limits.__class__(daily_budget_micros=1))
        uow.commit()
    org.report("crosses-budget", 1)
    denied = services.usage.report_usage(org.billing.ctx, org.platform, organization_id=org.id, event_id="denied",
                                         product="compute", quantity=1)
    assert not denied.allowed
    with pytest.raises(UsageEventNotFound):
        org.explain("denied")
    other = Org(org.billing, "Globex")
    other.report("globex-call", 1)
    with pytest.raises(UsageEventNotFound):
        org.explain("globex-call")
    with pytest.raises(NotFound) as elsewhere:
        services.usage_explain.explain_usage_event(org.billing.ctx, org.member, other.id, "globex-call")
    assert elsewhere.value.code == "not_found", "another organization's route answers as if it did not exist"


def test_whoever_reads_usage_may_explain_and_a_usage_writer_may_not(org: Org) -> None:
    org.report("call", 1)
    for role in Role:
        assert org.explain("call", Actor(organization_id=org.id, subject=role.value, role=role)).debit is not None
    reader = Actor(organization_id=org.id, subject="t", scopes=frozenset({Permission.BILLING_READ}))
    assert org.explain("call", reader).event.event_id == "call"
    with pytest.raises(PermissionDenied):
        org.explain("call", org.platform)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(held=st.integers(min_value=1, max_value=50), used=st.integers(min_value=1, max_value=80),
       rule=st.sampled_from([HoldOverrun.CAP_AT_HOLD, HoldOverrun.ALLOW_WITHIN_CREDIT_LINE]),
       refunded=st.booleans())
def test_the_explained_figures_add_back_to_what_moved(held: int, used: int, rule: HoldOverrun,
                                                      refunded: bool) -> None:
    """Whatever the hold, the use and the rule: the price's charged amount is the debit, the hold's
    charge and the balance's movement; priced − charged is what the hold left uncharged; a refund
    gives back exactly the charge."""
    org = Org(in_memory_billing(NOW))
    ctx = org.billing.ctx
    services.holds.set_hold_overrun(ctx, org.owner, organization_id=org.id, rule=rule.value)
    placed = services.holds.place_hold(ctx, org.platform, organization_id=org.id, product="compute",
                                       max_quantity=held)
    assert placed.hold is not None
    before = placed.balance_micros
    settled = services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                                         event_id="gen", quantity=used)
    if refunded:
        services.usage.refund_usage(ctx, org.platform, organization_id=org.id, event_id="gen")
    chain = org.explain("gen")
    assert chain.debit is not None and chain.hold is not None
    assert chain.price.priced_micros == used * PRICE
    assert chain.price.amount_micros == chain.debit.amount_micros == chain.hold.charged_micros
    assert chain.price.priced_micros - chain.price.amount_micros == chain.price.uncharged_micros \
        == chain.hold.uncharged_micros
    assert chain.debit.balance_after_micros == settled.balance_micros == before - chain.debit.amount_micros
    assert sum(r.amount_micros for r in chain.refunds) == (chain.debit.amount_micros if refunded else 0)


def test_the_chain_names_the_grants_the_debit_drew_and_the_refund_gave_back_to(org: Org) -> None:
    ctx = org.billing.ctx
    soon = NOW + timedelta(days=10)
    assert services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=1_000_000, description="Promo",
                                         idempotency_key="promo-soon", expires_at=soon)
    org.report("e-grants", 50)  # $2.000: the expiring promotion first, the rest from other grants

    chain = org.explain("e-grants")
    assert chain.debit is not None and chain.debit.amount_micros == 2_000_000
    first = chain.grants[0]
    with ctx.uow() as uow:
        soonest = next(g for g in uow.grants.list(org.id) if g.expires_at == soon)
    assert (first.grant_id, first.amount_micros) == (soonest.id, 1_000_000)
    assert sum(d.amount_micros for d in chain.grants) + chain.credit_line_micros == 2_000_000
    assert chain.credit_line_micros == 0

    services.usage.refund_usage(ctx, org.platform, organization_id=org.id, event_id="e-grants")
    [refund] = org.explain("e-grants").refunds
    # Given back to the grants it came from, the expiring promotion included.
    assert sorted((d.grant_id, d.amount_micros) for d in refund.grants) == \
        sorted((d.grant_id, d.amount_micros) for d in chain.grants)
