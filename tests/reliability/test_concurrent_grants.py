"""Grant expiry raced against usage and against itself, on SQLite and PostgreSQL (ADR 0016): two
workers expiring at once post one entry per grant, of exactly what the grant had left once the
usage appended before it was allocated; usage stamped before the expiry and appended after it
draws other grants; concurrent catch-ups allocate each transaction once; reconcile stays clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core import services
from billing_core.catalog import load_catalog
from billing_core.grants import GrantSource, expiry_key, grant_id_for
from billing_core.ledger import EntryKind
from billing_core.services.context import BillingContext
from tests.e2e.conftest import START
from tests.reliability.money_support import at_once
from tests.support.customers import sign_up

PRICE = 40_000  # compute, per vCPU-hour
EXPIRES = START + timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path, pool_size=16)


def _ctx(engine: Engine, clock: FixedClock) -> BillingContext:
    return BillingContext(uow=sqlalchemy_uow_factory(engine), clock=clock, catalog=load_catalog(),
                          payments=InMemoryPaymentProvider())


def test_expiry_once_and_exact_while_usage_races_it(engine: Engine) -> None:
    before = _ctx(engine, FixedClock(EXPIRES - timedelta(seconds=1)))
    after = _ctx(engine, FixedClock(EXPIRES + timedelta(seconds=1)))
    setup = _ctx(engine, FixedClock(START))
    customer = sign_up(setup, name="Race", owner="ada", owner_email="ada@race.test")
    org = customer.organization_id
    assert services.wallet.grant_credits(setup, organization_id=org, amount_micros=100 * PRICE,
                                         description="Launch promo", idempotency_key="promo",
                                         source=GrantSource.PROMOTION, expires_at=EXPIRES)
    services.wallet.grant_credits(setup, organization_id=org, amount_micros=1_000 * PRICE,
                                  description="Goodwill", idempotency_key="goodwill")
    with setup.uow() as uow:
        promo_tx = uow.ledger.get_by_key(org, "promo")
        assert promo_tx is not None
    promo = grant_id_for(promo_tx.id)

    def use(n: int) -> Callable[[], object]:
        # Stamped before the expiry: draws the promotion if allocated before the expiry entry.
        return lambda: services.usage.report_usage(before, customer.platform, organization_id=org,
                                                   event_id=f"e{n}", product="compute", quantity=10)

    calls: list[Callable[[], object]] = [use(n) for n in range(8)]
    calls += [lambda: services.grants.expire_grants(after)] * 2
    calls += [lambda: services.grants.catch_up_organization(after, org)] * 2
    outcomes = at_once(calls)
    assert outcomes.errors == []
    assert sum(1 for r in outcomes.results if getattr(r, "allowed", False)) == 8, "every call was paid"
    # Whatever the order, a later worker cycle finds nothing left to expire.
    services.grants.expire_grants(after)
    assert services.grants.expire_grants(after) == 0

    with after.uow() as uow:
        expiries = [t for t in uow.ledger.after(org, 0) if t.transaction.kind == EntryKind.GRANT_EXPIRY]
        assert [t.transaction.idempotency_key for t in expiries] == [expiry_key(promo)]
        drawn_before = sum(-m.amount_micros for t in uow.ledger.after(org, 0)
                           if t.sequence < expiries[0].sequence and t.transaction.kind == EntryKind.USAGE
                           for m in uow.grants.movements(org, t.transaction.id) if m.grant_id == promo)
        assert -expiries[0].transaction.balance_delta == 100 * PRICE - drawn_before
        stored = uow.grants.get_many(org, [promo])[0]
        assert stored.remaining_micros == 0 and stored.expired_by == expiries[0].transaction.id
    report = services.reconcile.reconcile(after, organization_id=org)
    assert report.clean, report
