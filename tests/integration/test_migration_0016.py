"""Migration 0016: grant movements become spans of the ledger. A downgrade writes each run back as
one row per transaction; an upgrade makes every existing row its transaction's own span (a row
whose transaction is not in the ledger gets 0 and reconcile reports it); the movements read the
same before and after, and the catch-up goes on storing runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import migrate
from adapters.sqlalchemy.schema import downgrade
from adapters.sqlalchemy.uow import sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core import Permission, services
from billing_core.catalog import load_catalog
from billing_core.grants import GrantMovement, GrantSource
from billing_core.services.context import BillingContext
from billing_core.services.grants import catch_up_organization, movements_of
from billing_core.services.reconcile import grants_explain_wallet

NOW = datetime(2026, 3, 20, 12, 15, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path)


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    columns = {c["name"] for c in inspect(engine).get_columns("grant_movements")}
    extra = ", first_sequence, last_sequence" if "first_sequence" in columns else ""
    with engine.connect() as connection:  # SQLite answers ids as hex text
        return [(uuid.UUID(str(tx)), None if grant is None else uuid.UUID(str(grant)), *rest)
                for tx, grant, *rest in connection.execute(text(
                    f"SELECT transaction_id, grant_id, amount_micros{extra} FROM grant_movements ORDER BY seq"))]  # noqa: S608


def test_0016_keeps_every_transactions_movements_across_a_downgrade_and_an_upgrade(engine: Engine) -> None:
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(NOW), catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@acme.test")
    _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    owner = services.organizations.authenticate(ctx, owner_secret)
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="compute",
                                                     project_id=None)
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                   scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(ctx, secret)
    services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=100_000, description="promo",
                                  idempotency_key="promo", source=GrantSource.PROMOTION)
    services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=10**9, description="trial",
                                  idempotency_key="trial", source=GrantSource.TRIAL, priority=1)

    def report(*event_ids: str) -> None:
        for event_id in event_ids:
            assert services.usage.report_usage(ctx, platform, organization_id=org.id, event_id=event_id,
                                               product="compute", quantity=1).allowed

    def every_movement() -> dict[uuid.UUID, list[GrantMovement]]:
        catch_up_organization(ctx, org.id)
        with ctx.uow() as uow:
            return {item.transaction.id: movements_of(uow, org.id, item.transaction.id)
                    for item in uow.ledger.after(org.id, 0, limit=1_000)}

    def reconciled() -> list[str]:
        with ctx.uow() as uow:
            return grants_explain_wallet(ctx, uow, org.id)

    report("a", "b", "c", "d")  # 40,000 each: two from the promotion, one across both grants, one from the trial
    before = every_movement()
    assert [len(before[t]) for t in before] == [1, 1, 1, 1, 2, 1]
    assert any(last > first for *_, first, last in _rows(engine)), "the catch-up stored a run"
    assert reconciled() == []

    downgrade(engine, "0015")
    assert sorted(_rows(engine), key=str) == sorted(
        ((m.transaction_id, m.grant_id, m.amount_micros) for ms in before.values() for m in ms), key=str)
    orphan = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO grant_movements (organization_id, transaction_id, grant_id, "
                                "amount_micros) VALUES (:org, :tx, NULL, -1)"),
                           {"org": org.id.hex if engine.dialect.name == "sqlite" else org.id,
                            "tx": orphan.hex if engine.dialect.name == "sqlite" else orphan})

    migrate(engine)
    rows = _rows(engine)
    assert all(first == last for *_, first, last in rows), "every existing row is its transaction's own"
    assert [row[3:] for row in rows if row[0] == orphan] == [(0, 0)]
    assert every_movement() == before
    assert reconciled() == ["grant movements of sequences 0 to 0, which are not the organization's ledger "
                            "transactions"]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM grant_movements WHERE first_sequence = 0"))
    assert reconciled() == []

    report("e", "f", "g")
    after = every_movement()
    assert {t: after[t] for t in before} == before
    assert [len(after[t]) for t in after][len(before):] == [1, 1, 1]
    *_, amount, first, last = _rows(engine)[-1]
    assert amount == -3 * 40_000 and last > first, "the new debits are one run"
    assert reconciled() == []
