"""Migration 0004: one plan subscription per provider subscription id, and an upgrade that stops,
naming them, when the database already holds several (the doubles of issue 14, item 2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from adapters.sqlalchemy import migrate
from adapters.sqlalchemy.schema import current_revision, downgrade, head_revision
from adapters.testing.storage import migrated_engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path)


def _id(engine: Engine, n: int) -> str:
    value = f"00000000-0000-4000-8000-{n:012d}"
    return value.replace("-", "") if engine.dialect.name == "sqlite" else value


def _subscription(engine: Engine, n: int, provider_id: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO plan_subscriptions (id, organization_id, plan, status, created_at, current_period_start, "
            "current_period_end, provider_subscription_id, version) VALUES (:id, :org, 'pro', 'active', "
            "'2026-03-01 00:00:00+00:00', '2026-03-01 00:00:00+00:00', '2026-04-01 00:00:00+00:00', :provider, 0)"),
            {"id": _id(engine, n), "org": _id(engine, 42), "provider": provider_id})


def _unique(engine: Engine) -> bool:
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("plan_subscriptions")}
    return bool(indexes["ix_plan_subscriptions_provider_subscription_id"]["unique"])


def test_0004_makes_provider_subscription_ids_unique_and_stops_on_existing_doubles(engine: Engine) -> None:
    assert _unique(engine)
    downgrade(engine, "0002")
    assert not _unique(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO organizations (id, name, created_at, currency_iso) "
                                "VALUES (:id, 'Acme', '2026-03-01 00:00:00+00:00', 'USD')"), {"id": _id(engine, 42)})
    for n, provider_id in enumerate(("sub_double", "sub_double", "sub_single", None, None)):
        _subscription(engine, n, provider_id)
    with pytest.raises(RuntimeError, match=r"sub_double \(2 rows\)") as stopped:
        migrate(engine)
    assert "sub_single" not in str(stopped.value)
    assert current_revision(engine) == "0002" and not _unique(engine)

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM plan_subscriptions WHERE id = :id"), {"id": _id(engine, 1)})
    migrate(engine)
    assert current_revision(engine) == head_revision() and _unique(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM plan_subscriptions")).scalar_one() == 4
