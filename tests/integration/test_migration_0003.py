"""Migration 0003 (ADR 0009) on existing data: payments get a version and the refunded-within-amount
CHECK, stored refund requests get the status they were recorded with, and a database already
holding a payment refunded above its amount (issue 14) stops the upgrade instead of being
silently repaired."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from adapters.sqlalchemy import migrate
from adapters.sqlalchemy.schema import current_revision, downgrade, head_revision
from adapters.testing.storage import migrated_engine

ORG = uuid.UUID("00000000-0000-4000-8000-000000000042")
PAYMENT = uuid.UUID("00000000-0000-4000-8000-000000000043")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path)


def _id(engine: Engine, value: uuid.UUID) -> str:
    return value.hex if engine.dialect.name == "sqlite" else str(value)


def _seed_0002(engine: Engine, refunded_cents: int) -> None:
    downgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO organizations (id, name, created_at, currency_iso) "
                                "VALUES (:id, 'Acme', '2026-03-01 00:00:00+00:00', 'USD')"), {"id": _id(engine, ORG)})
        connection.execute(text(
            "INSERT INTO payments (id, organization_id, purpose, amount_cents, currency_iso, credits_micros, status, "
            "created_at, payment_type, refunded_cents) VALUES (:id, :org, 'add_credits', 5000, 'USD', 50000000, "
            "'succeeded', '2026-03-01 00:00:00+00:00', 'card', :refunded)"),
            {"id": _id(engine, PAYMENT), "org": _id(engine, ORG), "refunded": refunded_cents})
        for n, status in enumerate(("approved", "denied")):
            connection.execute(text(
                "INSERT INTO refund_requests (id, organization_id, payment_id, requested_by, created_at, "
                "decision_status, decision_amount_cents, decision_credits_micros, decision_message, "
                "provider_refund_id) VALUES (:id, :org, :payment, 'ada', :at, :status, :cents, :micros, 'm', :re)"),
                {"id": _id(engine, uuid.UUID(int=n + 1)), "org": _id(engine, ORG), "payment": _id(engine, PAYMENT),
                 "at": f"2026-03-0{n + 2} 00:00:00+00:00", "status": status,
                 "cents": 1000 if status == "approved" else 0, "micros": 10_000_000 if status == "approved" else 0,
                 "re": "re_1" if status == "approved" else None})


def test_existing_payments_and_refund_requests_carry_over(engine: Engine) -> None:
    _seed_0002(engine, refunded_cents=1000)
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert tuple(connection.execute(text("SELECT refunded_cents, version FROM payments")).one()) == (1000, 0)
        rows = connection.execute(text("SELECT decision_status, status, completed_at IS NOT NULL FROM "
                                       "refund_requests ORDER BY created_at")).all()
    assert [tuple(r) for r in rows] == [("approved", "succeeded", True), ("denied", "denied", True)]
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("UPDATE payments SET refunded_cents = 5001"))


def test_a_payment_refunded_above_its_amount_stops_the_upgrade(engine: Engine) -> None:
    _seed_0002(engine, refunded_cents=10_000)
    with pytest.raises(RuntimeError, match=str(PAYMENT) if engine.dialect.name != "sqlite" else PAYMENT.hex):
        migrate(engine)
    assert current_revision(engine) == "0002"
    with engine.begin() as connection:
        connection.execute(text("UPDATE payments SET refunded_cents = 5000"))
    migrate(engine)
    assert current_revision(engine) == head_revision()
