"""A grant's expiry and the holds that reserve its credit (ADR 0016, found by the spend-control
state machine): the worker catches up before it expires, so a grant made since its last cycle
expires in the next one; an expiry never takes credit that active holds reserve (it takes what is
free of them, the rest stays ``expired_pending`` until a later cycle after the hold closes), so a
settle cannot overdraw the wallet; and reconcile reports an overdraft an expiry would cause."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from billing_core import services
from billing_core.grants import GrantSource, expiry_key, grant_id_for
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.services.background import run_cycle
from billing_core.services.grants import GrantView
from tests.support.customers import sign_up

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
PRICE = 40_000  # compute, per vCPU-hour
DOLLAR = 1_000_000


class Org:
    """An organization with no plan (so no credit line), subscribed to compute."""

    def __init__(self, billing: InMemoryBilling) -> None:
        customer = sign_up(billing.ctx, owner_email="ada@acme.test")
        self.owner, self.platform, self.id = customer.owner, customer.platform, customer.organization_id
        self.billing = billing

    def promo(self, amount: int, key: str, expires_in: timedelta) -> uuid.UUID:
        ctx = self.billing.ctx
        assert services.wallet.grant_credits(ctx, organization_id=self.id, amount_micros=amount, description="Promo",
                                             idempotency_key=key, source=GrantSource.PROMOTION,
                                             expires_at=NOW + expires_in)
        with ctx.uow() as uow:
            tx = uow.ledger.get_by_key(self.id, key)
            assert tx is not None
        return grant_id_for(tx.id)

    def grant(self, grant_id: uuid.UUID) -> GrantView:
        views = services.grants.list_grants(self.billing.ctx, self.owner, organization_id=self.id)
        return {v.grant.id: v for v in views}[grant_id]

    def balance_and_held(self) -> tuple[int, int]:
        with self.billing.ctx.uow() as uow:
            wallet = uow.wallets.get(self.id)
        return wallet.balance_micros, wallet.held_micros

    def cycle(self) -> int:
        return run_cycle(self.billing.ctx, self.billing.deliverers, holder="worker").grants_expired

    def hold(self, quantity: int) -> uuid.UUID:
        outcome = services.holds.place_hold(self.billing.ctx, self.platform, organization_id=self.id,
                                            product="compute", max_quantity=quantity, ttl_seconds=7200)
        assert outcome.hold is not None, outcome
        return outcome.hold.id

    def problems(self) -> tuple[str, ...]:
        return services.reconcile.reconcile(self.billing.ctx, organization_id=self.id).problems


@pytest.fixture
def org() -> Org:
    organization = Org(in_memory_billing(NOW))
    assert organization.balance_and_held() == (0, 0)
    with organization.billing.ctx.uow() as uow:
        assert uow.wallets.get(organization.id).limits.credit_line_micros == 0
    return organization


def test_a_grant_made_since_the_last_cycle_expires_in_the_next_one(org: Org) -> None:
    promo = org.promo(DOLLAR, "promo:1", timedelta(hours=1))
    org.billing.clock.advance(timedelta(hours=2))
    assert org.cycle() == 1, "the cycle catches the new grant up before it looks for due grants"
    assert org.grant(promo).status == "expired"
    assert org.balance_and_held() == (0, 0)
    assert org.problems() == ()


@pytest.mark.parametrize("ending", ["settle", "release"])
def test_an_expiry_never_takes_credit_a_hold_reserves(org: Org, ending: str) -> None:
    ctx = org.billing.ctx
    promo = org.promo(2 * DOLLAR, "promo:1", timedelta(hours=1))
    hold = org.hold(40)  # 1_600_000 µ$ of the grant's 2_000_000, for two hours
    org.billing.clock.advance(timedelta(minutes=90))

    assert org.cycle() == 1
    assert org.balance_and_held() == (40 * PRICE, 40 * PRICE), "only what the hold leaves free expired"
    view = org.grant(promo)
    assert view.status == "expired_pending" and view.grant.remaining_micros == 40 * PRICE
    assert view.grant.expired_by is None
    assert org.cycle() == 0, "nothing is free while the hold is active"
    assert org.problems() == ()

    if ending == "settle":
        services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=hold, event_id="e1",
                                   quantity=30)
        assert org.balance_and_held() == (10 * PRICE, 0), "the settle is paid by the pending grant, not overdrawn"
        assert org.grant(promo).grant.remaining_micros == 10 * PRICE
    else:
        services.holds.release_hold(ctx, org.platform, organization_id=org.id, hold_id=hold)
    assert org.cycle() == 1, "the next cycle expires the rest"
    assert org.balance_and_held() == (0, 0)
    view = org.grant(promo)
    assert view.status == "expired" and view.grant.remaining_micros == 0 and view.grant.expired_by is not None
    with ctx.uow() as uow:
        first = uow.ledger.get_by_key(org.id, expiry_key(promo))
        rest = uow.ledger.get_by_key(org.id, f"{expiry_key(promo)}:2")
    assert first is not None and first.delta(Account.WALLET) == -10 * PRICE
    assert rest is not None and rest.kind == EntryKind.GRANT_EXPIRY and rest.reference == str(promo)
    assert rest.delta(Account.WALLET) == -(10 if ending == "settle" else 40) * PRICE
    assert org.cycle() == 0
    assert org.problems() == ()


def test_usage_past_a_grants_expiry_before_the_worker_ran_is_paid_by_it(org: Org) -> None:
    """The guard allowed it on a balance that still held the grant: the debit draws the pending
    grant (no live grant can pay), and the expiry then takes only what is left."""
    promo = org.promo(DOLLAR, "promo:1", timedelta(hours=1))
    org.billing.clock.advance(timedelta(hours=2))
    outcome = services.usage.report_usage(org.billing.ctx, org.platform, organization_id=org.id, event_id="late",
                                          product="compute", quantity=5)
    assert outcome.allowed
    assert org.grant(promo).grant.remaining_micros == DOLLAR - 5 * PRICE
    assert org.cycle() == 1
    assert org.balance_and_held() == (0, 0)
    assert org.grant(promo).status == "expired"
    assert org.problems() == ()


def test_reconcile_reports_an_overdraft_an_expiry_of_reserved_credit_causes(org: Org) -> None:
    """What the worker did before the fix: expire the whole grant while a hold reserved it. Every
    other check stays clean; the balance below the credit line does not."""
    ctx = org.billing.ctx
    promo = org.promo(2 * DOLLAR, "promo:1", timedelta(hours=1))
    hold = org.hold(40)
    org.billing.clock.advance(timedelta(minutes=90))
    with ctx.uow() as uow:
        uow.wallets.lock(org.id)
        uow.wallets.post(transfer(organization_id=org.id, idempotency_key=expiry_key(promo),
                                  kind=EntryKind.GRANT_EXPIRY, description="Granted credits expired",
                                  created_at=NOW, source=Account.WALLET, target=Account.PROMOTIONAL_GRANTS,
                                  amount_micros=2 * DOLLAR, reference=str(promo)))
        uow.commit()
    services.holds.settle_hold(ctx, org.platform, organization_id=org.id, hold_id=hold, event_id="e1", quantity=40)
    assert org.balance_and_held() == (-40 * PRICE, 0)
    problems = org.problems()
    assert len(problems) == 1 and "below the credit line" in problems[0], problems
