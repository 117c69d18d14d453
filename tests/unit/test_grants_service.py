"""Credit grants through the use cases on the in-memory adapter (ADR 0016): usage draws the
expiring promotion before paid credit, its refund gives back to that grant, the expiry job posts
exactly what is left (once), usage beyond every grant is paid back by the next credit, and the
background worker catches up and expires; reconcile stays clean throughout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from adapters.testing.builders import top_up
from billing_core import services
from billing_core.errors import InvalidInput
from billing_core.grants import GrantSource, expiry_key, grant_id_for
from billing_core.ledger import Account, EntryKind
from billing_core.services import grants as grants_service
from billing_core.services.background import run_cycle
from billing_core.services.context import BillingContext
from billing_core.services.grants import GrantDraw, GrantView, SweepPacer, draws_for, expire_grants
from tests.support.customers import sign_up, subscribe_plan

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
PRICE = 40_000  # compute, per vCPU-hour
DOLLAR = 1_000_000


class Org:
    def __init__(self, billing: InMemoryBilling) -> None:
        customer = sign_up(billing.ctx, owner_email="ada@acme.test")
        subscribe_plan(billing.ctx, customer)
        self.owner, self.platform, self.id = customer.owner, customer.platform, customer.organization_id
        self.billing = billing
        # The checkout's trial credits (source trial, expiring at the trial's end) are spent first
        # here, so the tests start from the paid and promotional credit they add.
        self.start_credits = sum(v.grant.remaining_micros for v in self.grants().values())
        assert self.start_credits > 0 and self.start_credits % PRICE == 0
        self.use("spend-start-credits", self.start_credits // PRICE)

    def pay(self, amount: int, key: str) -> uuid.UUID:
        with self.billing.ctx.uow() as uow:
            uow.wallets.lock(self.id)
            posted = uow.wallets.post(top_up(self.id, amount, key, self.billing.clock.now()))
            uow.commit()
        return posted.transaction.id

    def use(self, event_id: str, quantity: int) -> None:
        outcome = services.usage.report_usage(self.billing.ctx, self.platform, organization_id=self.id,
                                              event_id=event_id, product="compute", quantity=quantity)
        assert outcome.allowed

    def grants(self) -> dict[uuid.UUID, GrantView]:
        views = services.grants.list_grants(self.billing.ctx, self.owner, organization_id=self.id)
        return {v.grant.id: v for v in views}

    def draws(self, key: str) -> list[GrantDraw]:
        services.grants.catch_up_organization(self.billing.ctx, self.id)
        with self.billing.ctx.uow() as uow:
            tx = uow.ledger.get_by_key(self.id, key)
            assert tx is not None
            return draws_for(uow, self.id, tx.id)

    def clean(self) -> None:
        report = services.reconcile.reconcile(self.billing.ctx, organization_id=self.id)
        assert report.clean, report


@pytest.fixture
def org() -> Org:
    return Org(in_memory_billing(NOW))


def _promo(org: Org, amount: int, key: str, *, expires_in: timedelta | None) -> uuid.UUID:
    ctx = org.billing.ctx
    assert services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=amount, description="Launch promo",
                                         idempotency_key=key, source=GrantSource.PROMOTION,
                                         expires_at=None if expires_in is None else NOW + expires_in, priority=0)
    with ctx.uow() as uow:
        tx = uow.ledger.get_by_key(org.id, key)
        assert tx is not None
    return grant_id_for(tx.id)


def test_usage_draws_the_promotion_first_its_refund_gives_it_back_and_expiry_takes_exactly_the_rest(org: Org) -> None:
    ctx = org.billing.ctx
    paid = grant_id_for(org.pay(10 * DOLLAR, "top-up:1"))
    promo = _promo(org, 2 * DOLLAR, "promo:launch", expires_in=timedelta(days=7))
    org.use("e1", 10)  # 400_000 µ$
    grants = org.grants()
    assert grants[promo].grant.remaining_micros == 2 * DOLLAR - 10 * PRICE
    assert grants[promo].grant.expires_at == NOW + timedelta(days=7) and grants[promo].status == "active"
    assert grants[paid].grant.remaining_micros == 10 * DOLLAR and grants[paid].grant.source == GrantSource.PURCHASE
    assert org.draws("usage:e1") == [GrantDraw(grant_id=promo, source=GrantSource.PROMOTION, amount_micros=-10 * PRICE)]
    org.use("e2", 60)  # 2_400_000 µ$: the promotion's 1_600_000, then 800_000 paid
    assert org.draws("usage:e2") == [
        GrantDraw(grant_id=promo, source=GrantSource.PROMOTION, amount_micros=-(2 * DOLLAR - 10 * PRICE)),
        GrantDraw(grant_id=paid, source=GrantSource.PURCHASE, amount_micros=-(60 * PRICE - 2 * DOLLAR + 10 * PRICE))]
    services.usage.refund_usage(ctx, org.platform, organization_id=org.id, event_id="e1")
    grants = org.grants()
    assert grants[promo].grant.remaining_micros == 10 * PRICE, "the refund went back to the grant e1 drew"
    org.clean()

    org.billing.clock.advance(timedelta(days=8))
    assert expire_grants(ctx) == 1
    assert expire_grants(ctx) == 0, "an expired grant expires once"
    with ctx.uow() as uow:
        entry = uow.ledger.get_by_key(org.id, expiry_key(promo))
    assert entry is not None and entry.kind == EntryKind.GRANT_EXPIRY
    assert entry.delta(Account.WALLET) == -10 * PRICE and entry.delta(Account.PROMOTIONAL_GRANTS) == 10 * PRICE
    grants = org.grants()
    assert grants[promo].status == "expired" and grants[promo].grant.remaining_micros == 0
    assert grants[promo].grant.expired_by == entry.id
    assert org.draws(expiry_key(promo)) == [GrantDraw(grant_id=promo, source=GrantSource.PROMOTION,
                                                      amount_micros=-10 * PRICE)]
    org.clean()


def test_usage_beyond_every_grant_is_paid_back_first_by_the_next_credit(org: Org) -> None:
    org.pay(DOLLAR, "top-up:1")
    org.use("e1", 50)  # 2_000_000 µ$: $1 from the top-up, $1 on the credit line
    org.clean()
    second = grant_id_for(org.pay(3 * DOLLAR, "top-up:2"))
    assert org.grants()[second].grant.remaining_micros == 2 * DOLLAR
    assert org.draws("top-up:2") == [GrantDraw(grant_id=second, source=GrantSource.PURCHASE, amount_micros=2 * DOLLAR)]
    org.clean()


def test_a_grant_refuses_bad_terms(org: Org) -> None:
    ctx = org.billing.ctx
    with pytest.raises(InvalidInput):
        services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=DOLLAR, description="x",
                                      idempotency_key="k", expires_at=NOW - timedelta(seconds=1))
    with pytest.raises(InvalidInput):
        services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=DOLLAR, description="x",
                                      idempotency_key="k", source=GrantSource.PURCHASE)
    with pytest.raises(InvalidInput):
        services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=0, description="x",
                                      idempotency_key="k")


def test_the_worker_catches_up_and_expires(org: Org) -> None:
    billing = org.billing
    promo = _promo(org, DOLLAR, "promo:1", expires_in=timedelta(hours=1))
    org.pay(5 * DOLLAR, "top-up:1")
    org.use("e1", 5)
    report = run_cycle(billing.ctx, billing.deliverers, holder="worker-1")
    assert report.grants_caught_up == 1 and report.grants_expired == 0
    with billing.ctx.uow() as uow:
        assert not services.grants.behind(uow, org.id)
        assert uow.grants.get_many(org.id, [promo])[0].remaining_micros == DOLLAR - 5 * PRICE
    billing.clock.advance(timedelta(hours=2))
    report = run_cycle(billing.ctx, billing.deliverers, holder="worker-1")
    assert report.grants_expired == 1
    assert run_cycle(billing.ctx, billing.deliverers, holder="worker-2").grants_expired == 0
    assert org.grants()[promo].status == "expired"
    org.clean()


class _Ticks:
    """A monotonic clock the test moves (the pacer's ``now``)."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


def _behind(org: Org) -> bool:
    with org.billing.ctx.uow() as uow:
        return services.grants.behind(uow, org.id)


def test_the_paced_sweep_catches_a_busy_organization_up_once_per_interval_and_readers_stay_fresh(org: Org) -> None:
    billing, ticks = org.billing, _Ticks()
    pacer = SweepPacer(5_000, now_ms=ticks)
    paid = grant_id_for(org.pay(10 * DOLLAR, "top-up:1"))
    assert _behind(org)
    assert run_cycle(billing.ctx, billing.deliverers, holder="w", grant_pacer=pacer).grants_caught_up == 1
    assert not _behind(org)

    org.use("e1", 10)
    ticks.ms = 4_900
    assert run_cycle(billing.ctx, billing.deliverers, holder="w", grant_pacer=pacer).grants_caught_up == 0
    assert _behind(org), "swept less than the interval ago: the sweep leaves it for later"
    assert org.grants()[paid].grant.remaining_micros == 10 * DOLLAR - 10 * PRICE, "a reader catches up itself"
    assert not _behind(org)

    org.use("e2", 5)
    assert run_cycle(billing.ctx, billing.deliverers, holder="w", grant_pacer=pacer).grants_caught_up == 0
    ticks.ms = 5_000
    assert run_cycle(billing.ctx, billing.deliverers, holder="w", grant_pacer=pacer).grants_caught_up == 1
    assert not _behind(org)
    org.clean()


def test_the_paced_sweep_skips_only_the_recently_swept_organizations() -> None:
    billing, ticks = in_memory_billing(NOW), _Ticks()
    pacer = SweepPacer(5_000, now_ms=ticks)
    customer = sign_up(billing.ctx, owner_email="grace@example.test")
    subscribe_plan(billing.ctx, customer)
    first = Org(billing)
    second = Org.__new__(Org)
    second.billing, second.id = billing, customer.organization_id
    for org in (first, second):
        org.pay(DOLLAR, "top-up:1")
    assert services.grants.catch_up_behind(billing.ctx, pacer=pacer) == 2
    assert pacer.waiting() == 2
    for org in (first, second):
        org.pay(DOLLAR, "top-up:2")
    ticks.ms = 1_000
    assert services.grants.catch_up_behind(billing.ctx, pacer=pacer) == 0, "both swept within the interval"
    ticks.ms = 5_500
    assert services.grants.catch_up_behind(billing.ctx, limit=1, pacer=pacer) == 1
    assert pacer.waiting() == 1
    # The one caught up comes first in the sweep's order; the other is next even with limit 1:
    # the sweep asks for as many more organizations as it may skip.
    assert services.grants.catch_up_behind(billing.ctx, limit=1, pacer=pacer) == 1
    assert not _behind(first) and not _behind(second)
    first.clean()
    second.clean()


def test_a_negative_catch_up_interval_or_an_empty_step_is_refused() -> None:
    with pytest.raises(InvalidInput):
        SweepPacer(-1)
    for step in (0, grants_service.MAX_SWEEP_BATCH + 1):
        with pytest.raises(InvalidInput):
            SweepPacer(0, step=step)


def test_the_sweep_allocates_in_the_pacers_steps(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[int | None] = []
    sweep_step = grants_service.sweep_step

    def counted(ctx: BillingContext, organization_id: uuid.UUID, *, batch: int | None = None) -> bool:
        steps.append(batch)
        return sweep_step(ctx, organization_id, batch=batch)

    monkeypatch.setattr(grants_service, "sweep_step", counted)
    for n in range(5):
        org.pay(DOLLAR, f"top-up:{n}")
    assert services.grants.catch_up_behind(org.billing.ctx, pacer=SweepPacer(0, step=2)) == 1
    assert not _behind(org)
    # Five payments and the trial grant before them: three steps of two that stored, one that found nothing.
    assert steps == [2, 2, 2, 2]
    org.clean()


def test_the_worker_catches_up_batch_by_batch_each_committed_readers_to_the_end(
        org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grants_service, "BATCH", 2)
    monkeypatch.setattr(grants_service, "SWEEP_BATCH", 2)
    ctx = org.billing.ctx
    services.grants.catch_up_organization(ctx, org.id)
    for n in range(5):
        org.pay(DOLLAR, f"top-up:{n}")
    with ctx.uow() as uow:
        start = uow.grants.cursor(org.id).sequence
        uow.wallets.lock(org.id)
        step = grants_service.catch_up(uow, org.id, max_batches=1)
        assert len(uow.ledger.balance_moves(org.id, start)) == 5
        assert [m.sequence for m in uow.ledger.balance_moves(org.id, start)][1] == step.sequence, "one batch of 2"
    assert services.grants.catch_up_organization(ctx, org.id, stepwise=True)
    assert not _behind(org)
    for n in range(5, 10):
        org.pay(DOLLAR, f"top-up:{n}")
    assert services.grants.catch_up_organization(ctx, org.id)
    assert not _behind(org), "a reader catches up to the end in one unit of work"
    org.clean()
