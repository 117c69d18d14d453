"""Four processes run random billing operations on one PostgreSQL schema; the books still balance.

Each process (multiprocessing, spawn) has its own engine, its own offline payment provider and its
own fixed clock (2026-03-14, with usage seeded in February), and runs M random operations against
three organizations: usage debits (fresh ids, replays of its own earlier ids and ids from a pool
shared by all processes), top-ups through ``wallet.add_credits``, automatic refunds of earlier
events, grants with keys shared between processes, and — in process 0, half-way — the close of
February. Afterwards every organization reconciles, no wallet is below its floor, the daily budget
held, every ledger idempotency key is there once, there is one invoice per organization and period,
and the invoice numbers are gapless.
"""

from __future__ import annotations

import multiprocessing
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from adapters.fakes import FixedClock, InMemoryPaymentProvider
from adapters.sqlalchemy import make_engine, sqlalchemy_uow_factory
from adapters.testing.storage import migrated_database
from billing_core import EventIdReused, Permission, services
from billing_core.billing_settings import SpendManagement
from billing_core.catalog import load_catalog
from billing_core.errors import BillingError, NotFound
from billing_core.services.context import BillingContext
from billing_core.wallet import counters_at

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(40)]

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
FEBRUARY = datetime(2026, 2, 20, 9, 0, tzinfo=UTC)
DOLLAR = 1_000_000
PROCESSES = 4
OPERATIONS = 60
DAILY_BUDGET = 15 * DOLLAR
SHARED_EVENT_IDS = 12
SHARED_GRANT_KEYS = 4


def _context(url: str, schema: str) -> tuple[BillingContext, Any]:
    engine = make_engine(url, schema=schema)
    ctx = BillingContext(uow=sqlalchemy_uow_factory(engine), clock=FixedClock(NOW), catalog=load_catalog(),
                         payments=InMemoryPaymentProvider())
    return ctx, engine


# --------------------------------------------------------------------------- the worker process


def worker(url: str, schema: str, index: int, organizations: list[str], owner_secrets: list[str],
           service_secrets: list[str], results: Any) -> None:
    """Run OPERATIONS random operations; report what happened (and any error kinds) on ``results``."""
    ctx, engine = _context(url, schema)
    rng = random.Random(1000 + index)
    org_ids = [uuid.UUID(o) for o in organizations]
    owners = [services.organizations.authenticate(ctx, s) for s in owner_secrets]
    platforms = [services.organizations.authenticate(ctx, s) for s in service_secrets]
    debited: list[tuple[int, str]] = []
    quantities: dict[tuple[int, str], int] = {}
    counts: Counter[str] = Counter()
    try:
        for i in range(OPERATIONS):
            org = rng.randrange(len(org_ids))
            roll = rng.random()
            try:
                if index == 0 and i == OPERATIONS // 2:
                    report = services.invoicing.close_period(ctx, period="2026-02")
                    counts["close"] += 1
                    counts["invoices_created"] += report.invoices_created
                elif roll < 0.45:
                    choice, quantity = rng.random(), rng.randint(1, 60)
                    if choice < 0.2 and debited:
                        org, event_id = rng.choice(debited)
                        quantity = quantities[(org, event_id)]  # a retry of its own event: the same event
                    elif choice < 0.45:
                        event_id = f"shared-{rng.randrange(SHARED_EVENT_IDS)}"
                    else:
                        event_id = f"p{index}-{i}"
                    outcome = services.usage.report_usage(ctx, platforms[org], organization_id=org_ids[org],
                                                          event_id=event_id, product="compute",
                                                          quantity=quantity)
                    counts["replayed" if outcome.replayed else "allowed" if outcome.allowed else "denied"] += 1
                    if outcome.allowed:
                        debited.append((org, event_id))
                        quantities.setdefault((org, event_id), quantity)
                elif roll < 0.6:
                    services.payments.add_credits(ctx, owners[org], organization_id=org_ids[org],
                                                  amount_micros=rng.choice([5, 10, 25]) * DOLLAR)
                    counts["top_up"] += 1
                elif roll < 0.8:
                    if not debited:
                        continue
                    org, event_id = rng.choice(debited)
                    services.usage.refund_usage(ctx, platforms[org], organization_id=org_ids[org],
                                                event_id=event_id)
                    counts["refund"] += 1
                else:
                    key = f"grant-{rng.randrange(SHARED_GRANT_KEYS)}"
                    services.wallet.grant_credits(ctx, organization_id=org_ids[org], amount_micros=2 * DOLLAR,
                                                  description="Promotional credits", idempotency_key=key)
                    counts["grant"] += 1
            except NotFound:
                counts["not_found"] += 1  # a refund of an id another org owns, or a denied one
            except EventIdReused:
                counts["reused"] += 1  # a pool id another process reported with another quantity
            except BillingError as exc:
                counts[f"error:{type(exc).__name__}:{exc.code}"] += 1
        results.put((index, dict(counts)))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the test


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with migrated_database("postgresql", tmp_path) as database:
        yield database


def _seed(ctx: BillingContext) -> tuple[list[str], list[str], list[str]]:
    """Three organizations: funded, subscribed to compute, with February usage; org 0 has a daily
    budget, org 1 a plan (and so a credit line)."""
    orgs, owners, platforms = [], [], []
    for n in range(3):
        org = services.organizations.create_organization(ctx, name=f"Org {n}", owner_user_id=f"owner-{n}",
                                                         owner_email=f"owner-{n}@example.com")
        _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="owner",
                                                             user_id=f"owner-{n}")
        _, service_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                               scopes=frozenset({Permission.USAGE_WRITE}))
        owner = services.organizations.authenticate(ctx, owner_secret)
        platform = services.organizations.authenticate(ctx, service_secret)
        services.payment_methods.attach(ctx, owner, organization_id=org.id, provider_payment_method_id="pm_card_visa")
        services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="compute",
                                                         project_id=None, start_date=datetime(2026, 1, 1, tzinfo=UTC))
        services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=30 * DOLLAR,
                                      description="Free Trial Credits", idempotency_key="trial")
        services.usage.report_usage(ctx, platform, organization_id=org.id, event_id="february", product="compute",
                                    quantity=20, occurred_at=FEBRUARY)
        if n == 0:
            services.settings.update_spend_management(ctx, owner, organization_id=org.id,
                                                      spend=SpendManagement(enabled=True,
                                                                            daily_budget_micros=DAILY_BUDGET))
        if n == 1:
            session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="pro",
                                                       return_url="https://app.example.com/billing")
            assert session.provider_session_id is not None
            services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                                provider_subscription_id=f"sub_{org.id.hex}")
        orgs.append(str(org.id))
        owners.append(owner_secret)
        platforms.append(service_secret)
    return orgs, owners, platforms


def test_random_concurrent_operations_keep_the_books_consistent(database: tuple[str, str]) -> None:
    url, schema = database
    ctx, engine = _context(url, schema)
    try:
        orgs, owners, platforms = _seed(ctx)
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        processes = [spawn.Process(target=worker, args=(url, schema, index, orgs, owners, platforms, results))
                     for index in range(PROCESSES)]
        for process in processes:
            process.start()
        reports = dict(results.get(timeout=35) for _ in processes)
        for process in processes:
            process.join(timeout=10)
            assert process.exitcode == 0, f"worker exited with {process.exitcode}"
        totals: Counter[str] = Counter()
        for counts in reports.values():
            totals.update(counts)
        unexpected = {kind: n for kind, n in totals.items() if kind.startswith("error:")}
        assert not unexpected, (unexpected, reports)
        assert totals["allowed"] > 0 and totals["replayed"] > 0 and totals["top_up"] > 0, totals
        assert totals["close"] == 1 and totals["invoices_created"] == 3, totals
        _check_books(ctx, engine, [uuid.UUID(o) for o in orgs])
        again = services.invoicing.close_period(ctx, period="2026-02")
        assert again.invoices_created == 0
    finally:
        engine.dispose()


def _check_books(ctx: BillingContext, engine: Any, org_ids: list[uuid.UUID]) -> None:
    for org_id in org_ids:
        report = services.reconcile.reconcile(ctx, organization_id=org_id)
        assert report.clean, report
        with ctx.uow() as uow:
            wallet = uow.wallets.get(org_id)
        limits = wallet.limits
        floor = -limits.credit_line_micros + limits.minimum_production_credit_micros
        assert wallet.balance_micros >= floor, (wallet, floor)
        if limits.daily_budget_micros is not None:
            assert counters_at(wallet, NOW).today <= limits.daily_budget_micros, wallet
    with engine.connect() as connection:
        repeated = connection.execute(text(
            "SELECT organization_id, idempotency_key, count(*) FROM ledger_transactions "
            "GROUP BY organization_id, idempotency_key HAVING count(*) <> 1")).all()
        per_period = connection.execute(text(
            "SELECT organization_id, period_start, count(*) FROM invoices "
            "GROUP BY organization_id, period_start")).all()
        numbers = connection.execute(text("SELECT number FROM invoices WHERE number IS NOT NULL")).scalars().all()
    assert repeated == []
    assert sorted(o for o, _p, _n in per_period) == sorted(org_ids)
    assert all(n == 1 for _o, _p, n in per_period), per_period
    sequence = sorted(int(number.removeprefix(ctx.policy.invoice_number_prefix)) for number in numbers)
    assert sequence == list(range(1, len(org_ids) + 1)), numbers
