"""Holds through the use cases on the in-memory adapter: reserve within every cap, settle once,
release once, expire by the background worker, and the over-hold rules (ADR 0011)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from billing_core import services
from billing_core.billing_settings import LowBalanceAlert
from billing_core.errors import Conflict, IdempotencyKeyReused, PermissionDenied
from billing_core.holds import HoldOverrun, HoldStatus
from billing_core.overview import wallet_overview
from billing_core.services.background import run_cycle
from billing_core.spend_guard import DenialReason
from billing_core.wallet import counters_at
from tests.support.customers import sign_up, subscribe_plan

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
PRICE = 40_000  # compute, per vCPU-hour


class Org:
    def __init__(self, billing: InMemoryBilling) -> None:
        customer = sign_up(billing.ctx, owner_email="ada@acme.test")
        subscribe_plan(billing.ctx, customer)
        self.owner, self.platform, self.id = customer.owner, customer.platform, customer.organization_id
        self.billing = billing

    def balance(self) -> int:
        with self.billing.ctx.uow() as uow:
            return uow.wallets.get(self.id).balance_micros

    def held(self) -> int:
        with self.billing.ctx.uow() as uow:
            return uow.wallets.get(self.id).held_micros


@pytest.fixture
def org() -> Org:
    return Org(in_memory_billing(NOW))


def _hold(org: Org, quantity: int, **kw: object) -> services.holds.HoldOutcome:
    return services.holds.place_hold(org.billing.ctx, org.platform, organization_id=org.id, product="compute",
                                     max_quantity=quantity, **kw)  # type: ignore[arg-type]


def test_a_hold_reserves_and_a_settle_charges_the_actual_amount_once(org: Org) -> None:
    ctx, start = org.billing.ctx, org.balance()
    key = uuid.uuid4()
    placed = _hold(org, 100, hold_id=key)
    assert placed.decision.allowed and placed.hold is not None
    assert placed.hold.amount_micros == 100 * PRICE and placed.held_micros == 100 * PRICE
    assert _hold(org, 100, hold_id=key).replayed, "the same key answers the same hold"
    with pytest.raises(IdempotencyKeyReused):
        _hold(org, 99, hold_id=key)
    assert org.held() == 100 * PRICE
    with ctx.uow() as uow:
        overview = wallet_overview(uow.wallets.get(org.id), NOW, total_credits=0)
    assert overview.available_to_use == start + 50_000_000 - 100 * PRICE, "held counts against Available to Use"

    settled = services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=key,
                                         event_id="gen-1", quantity=30)
    assert settled.hold is not None and settled.hold.status == HoldStatus.SETTLED
    assert settled.hold.charged_micros == 30 * PRICE and settled.hold.overrun is None
    assert (org.balance(), org.held()) == (start - 30 * PRICE, 0)
    again = services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=key,
                                       event_id="gen-1", quantity=30)
    assert again.replayed and again.hold == settled.hold
    assert org.balance() == start - 30 * PRICE, "settling twice debits once"
    with pytest.raises(Conflict) as other:
        services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=key,
                                   event_id="gen-2", quantity=30)
    assert other.value.code == "hold_settled"
    with ctx.uow() as uow:
        event = uow.usage.get_event(org.id, "gen-1")
        assert event is not None and event.amount_micros == 30 * PRICE
        assert counters_at(uow.wallets.get(org.id), NOW).today == 30 * PRICE
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean


def test_an_id_another_organization_holds_is_a_reused_key_not_a_retry(org: Org) -> None:
    other = Org(org.billing)
    key = uuid.uuid4()
    assert _hold(org, 10, hold_id=key).hold is not None
    with pytest.raises(IdempotencyKeyReused):
        _hold(other, 10, hold_id=key)
    assert (org.held(), other.held()) == (10 * PRICE, 0), "the refused hold reserved nothing"


def test_holds_are_refused_beyond_any_cap_and_plain_debits_see_them(org: Org) -> None:
    ctx = org.billing.ctx
    with ctx.uow() as uow:
        uow.wallets.set_limits(org.id, uow.wallets.get(org.id).limits.__class__(daily_budget_micros=10 * PRICE))
        uow.commit()
    assert _hold(org, 6).decision.allowed
    denied = _hold(org, 5)
    assert not denied.decision.allowed and denied.decision.reason == DenialReason.DAILY_BUDGET_REACHED
    assert denied.hold is None and org.held() == 6 * PRICE
    crossing = services.usage.report_usage(ctx, org.platform, organization_id=org.id, event_id="crossing",
                                           product="compute", quantity=5)
    assert crossing.allowed, "a plain call runs while used + held is under the budget (it may cross it)"
    blocked = services.usage.report_usage(ctx, org.platform, organization_id=org.id, event_id="after",
                                          product="compute", quantity=1)
    assert not blocked.allowed and blocked.reason == DenialReason.DAILY_BUDGET_REACHED, \
        "plain calls see the held credits as used"
    assert not _hold(org, 1).decision.allowed


def test_release_is_idempotent_and_a_released_hold_cannot_be_settled(org: Org) -> None:
    ctx, start = org.billing.ctx, org.balance()
    placed = _hold(org, 10)
    assert placed.hold is not None
    first = services.holds.release_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id)
    assert first.hold is not None and first.hold.status == HoldStatus.RELEASED and not first.replayed
    second = services.holds.release_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id)
    assert second.replayed and second.hold == first.hold
    assert (org.balance(), org.held()) == (start, 0)
    assert services.reconcile.reconcile(ctx, organization_id=org.id).clean
    with pytest.raises(Conflict) as refused:
        services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                                   event_id="late", quantity=1)
    assert refused.value.code == "hold_released"


def test_the_worker_expires_holds_after_their_ttl(org: Org) -> None:
    ctx = org.billing.ctx
    placed = _hold(org, 10, ttl_seconds=60)
    assert placed.hold is not None
    assert run_cycle(ctx, org.billing.deliverers, holder="w1").holds_expired == 0
    org.billing.clock.set(NOW + timedelta(seconds=60))
    assert run_cycle(ctx, org.billing.deliverers, holder="w1").holds_expired == 1
    assert run_cycle(ctx, org.billing.deliverers, holder="w2").holds_expired == 0
    assert org.held() == 0
    expired = services.holds.get_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id)
    assert expired.hold is not None and expired.hold.status == HoldStatus.EXPIRED and expired.held_micros == 0


@pytest.mark.parametrize(("rule", "charged", "uncharged"), [
    (HoldOverrun.CAP_AT_HOLD, 10 * PRICE, 5 * PRICE),
    (HoldOverrun.ALLOW_WITHIN_CREDIT_LINE, 15 * PRICE, 0),
])
def test_settling_above_the_hold_follows_the_organization_rule(org: Org, rule: HoldOverrun, charged: int,
                                                               uncharged: int) -> None:
    ctx, start = org.billing.ctx, org.balance()
    services.holds.set_hold_overrun(ctx, org.owner, organization_id=org.id, rule=rule.value)
    placed = _hold(org, 10)
    assert placed.hold is not None
    settled = services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                                         event_id="big", quantity=15)
    assert settled.hold is not None and settled.hold.overrun == rule
    assert (settled.hold.charged_micros, settled.hold.uncharged_micros) == (charged, uncharged)
    assert org.balance() == start - charged and org.held() == 0
    services.usage.report_usage(ctx, org.platform, organization_id=org.id, event_id="after", product="compute",
                                quantity=1)
    replay = services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                                        event_id="big", quantity=15)
    assert replay.replayed and replay.hold == settled.hold
    assert replay.balance_micros == settled.balance_micros, "the replay answers the balance the settle left"


def test_allow_within_credit_line_caps_when_the_budget_says_no(org: Org) -> None:
    ctx = org.billing.ctx
    services.holds.set_hold_overrun(ctx, org.owner, organization_id=org.id, rule="allow_within_credit_line")
    with ctx.uow() as uow:
        uow.wallets.set_limits(org.id, uow.wallets.get(org.id).limits.__class__(daily_budget_micros=12 * PRICE))
        uow.commit()
    placed = _hold(org, 10)
    assert placed.hold is not None
    settled = services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                                         event_id="over-budget", quantity=15)
    assert settled.hold is not None and settled.hold.charged_micros == 10 * PRICE
    assert settled.hold.overrun_denial == DenialReason.DAILY_BUDGET_REACHED


def test_reject_rule_refuses_and_keeps_the_hold(org: Org) -> None:
    ctx = org.billing.ctx
    services.holds.set_hold_overrun(ctx, org.owner, organization_id=org.id, rule="reject")
    placed = _hold(org, 10)
    assert placed.hold is not None
    with pytest.raises(Conflict) as refused:
        services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                                   event_id="big", quantity=11)
    assert refused.value.code == "settle_exceeds_hold"
    assert org.held() == 10 * PRICE
    ok = services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                                    event_id="big", quantity=10)
    assert ok.hold is not None and ok.hold.charged_micros == 10 * PRICE


def test_only_usage_writers_hold_and_only_the_owner_sets_the_rule(org: Org) -> None:
    with pytest.raises(PermissionDenied):
        services.holds.set_hold_overrun(org.billing.ctx, org.platform, organization_id=org.id, rule="reject")


def test_a_settle_queues_what_the_debit_path_queues(org: Org) -> None:
    ctx = org.billing.ctx
    with ctx.uow() as uow:
        settings = uow.settings.get(org.id)
        settings.billing_email = "billing@acme.test"
        settings.low_balance_alert = LowBalanceAlert(enabled=True, threshold_micros=10**12)
        uow.settings.save(settings)
        uow.commit()
    placed = _hold(org, 10)
    assert placed.hold is not None
    with ctx.uow() as uow:
        queued = len(uow.outbox.list())
    services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=placed.hold.id,
                               event_id="alerting", quantity=3)
    with ctx.uow() as uow:
        messages = uow.outbox.list()
    assert len(messages) == queued + 1
    assert "low" in str(messages[-1].payload).lower()
