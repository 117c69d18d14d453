"""Concurrent usage on one organization queues each notice exactly once.

8 threads x 50 ``report_usage`` calls on one organization with spend management on (the daily
email threshold and the daily budget are crossed during the run) and auto-recharge on (its
threshold is crossed once, and no top-up happens in between). The outbox must then hold exactly one
daily-threshold email and one budget email for the UTC day, one AUTO_RECHARGE message for the
crossing, spent-today never above the budget (sampled during the run and at the end), and the
organization must reconcile.

PostgreSQL is the target (row locks); SQLite runs the same test (writers serialize).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import sqlalchemy_uow_factory
from adapters.testing.storage import migrated_engine
from billing_core.billing_settings import SpendManagement
from billing_core.catalog import load_catalog
from billing_core.outbox import OutboxTopic
from billing_core.permissions import Permission
from billing_core.services import (
    organizations,
    payment_methods,
    product_subscriptions,
    reconcile,
    settings,
    usage,
    wallet,
)
from billing_core.services.context import BillingContext
from billing_core.spend_guard import DenialReason

THREADS = 8
PER_THREAD = 50
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DAY = NOW.date().isoformat()
UNIT = 40_000  # compute: one vCPU-hour
GRANT = 20_000_000
BUDGET = 10_000_000  # 250 of the 400 debits fit
EMAIL_THRESHOLD = 4_000_000
RECHARGE_THRESHOLD = 15_000_000  # the balance falls to it after 125 debits
RECHARGE_AMOUNT = 25_000_000


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request.param, tmp_path, pool_size=THREADS + 4)


def test_concurrent_debits_queue_each_notice_once(engine: Engine) -> None:
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(NOW), catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    org = organizations.create_organization(ctx, name="Busy", owner_user_id="owner", owner_email="owner@example.com")
    owner = organizations.authenticate(ctx, organizations.issue_token(
        ctx, organization_id=org.id, name="owner", user_id="owner")[1])
    service = organizations.authenticate(ctx, organizations.issue_token(
        ctx, organization_id=org.id, name="platform", scopes=frozenset({Permission.USAGE_WRITE}))[1])
    wallet.grant_credits(ctx, organization_id=org.id, amount_micros=GRANT, description="Credits",
                         idempotency_key="grant")
    product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="compute", project_id=None)
    settings.update_spend_management(ctx, owner, organization_id=org.id, spend=SpendManagement(
        enabled=True, daily_budget_micros=BUDGET, daily_email_threshold_micros=EMAIL_THRESHOLD))
    method = payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
    settings.update_auto_recharge(ctx, owner, organization_id=org.id, enabled=True,
                                  threshold_micros=RECHARGE_THRESHOLD, amount_micros=RECHARGE_AMOUNT,
                                  payment_method_id=method.id)

    outcomes: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS + 1)
    done = threading.Event()
    sampled: list[int] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            local: Counter[str] = Counter()
            for i in range(PER_THREAD):
                outcome = usage.report_usage(ctx, service, organization_id=org.id, event_id=f"t{n}-{i}",
                                             product="compute", quantity=1)
                local["allowed" if outcome.allowed else str(outcome.reason)] += 1
            with lock:
                outcomes.update(local)
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    def sampler() -> None:
        start.wait()
        while not done.is_set():
            with ctx.uow() as uow:
                sampled.append(uow.wallets.get(org.id).spent_today_micros)
            done.wait(0.005)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    watcher = threading.Thread(target=sampler)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
    done.set()
    watcher.join(timeout=10)
    assert not any(thread.is_alive() for thread in [*threads, watcher]), "the run did not finish in time"
    assert errors == []

    assert outcomes == {"allowed": BUDGET // UNIT, str(DenialReason.DAILY_BUDGET_REACHED): THREADS * PER_THREAD
                        - BUDGET // UNIT}
    assert sampled and max(sampled) <= BUDGET
    with ctx.uow() as uow:
        stored = uow.wallets.get(org.id)
        messages = uow.outbox.list(organization_id=org.id, limit=10_000)
    assert stored.spent_today_micros == BUDGET
    assert stored.balance_micros == GRANT - BUDGET

    by_key = Counter(m.dedupe_key for m in messages)
    assert set(by_key.values()) == {1}, by_key
    emails = [m for m in messages if m.topic == OutboxTopic.EMAIL]
    assert sorted(m.dedupe_key for m in emails) == sorted([f"email:{org.id}:daily-budget:{DAY}",
                                                          f"email:{org.id}:daily-threshold:{DAY}"])
    assert all(m.payload["to"] == "owner@example.com" for m in emails)
    recharges = [m for m in messages if m.topic == OutboxTopic.AUTO_RECHARGE]
    assert len(recharges) == 1, recharges
    assert recharges[0].payload == {"amount_micros": RECHARGE_AMOUNT, "payment_method_id": str(method.id)}
    assert not [m for m in messages if m.topic not in (OutboxTopic.EMAIL, OutboxTopic.AUTO_RECHARGE)]

    result = reconcile.reconcile(ctx, organization_id=org.id)
    assert result.clean, result
    assert result.uninvoiced_usage_micros == BUDGET
