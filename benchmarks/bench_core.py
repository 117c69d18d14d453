"""Case 1: spend-guard authorize + debit in process with the fakes, next to a plain dict update
doing the same arithmetic (balance, credit line, daily counter, ledger append). The ratio is the
cost of the domain layer: validation, pricing, permissions, double-entry, unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.fakes import in_memory_billing
from benchmarks.harness import CaseResult, measure
from billing_core import Permission, services

N = 5000


def run() -> CaseResult:
    billing = in_memory_billing(datetime(2026, 6, 1, tzinfo=UTC))
    ctx = billing.ctx
    org = services.organizations.create_organization(ctx, name="Bench", owner_user_id="u", owner_email="b@bench.test")
    _, svc_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="svc",
                                                       scopes=frozenset({Permission.USAGE_WRITE}))
    _, own_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="own", user_id="u")
    svc = services.organizations.authenticate(ctx, svc_secret)
    owner = services.organizations.authenticate(ctx, own_secret)
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="storage",
                                                     project_id=None)
    services.wallet.grant_credits(ctx, organization_id=org.id, amount_micros=10**13, description="bench",
                                  idempotency_key="bench-grant")

    def project(round_no: int) -> None:
        for i in range(N):
            services.usage.report_usage(ctx, svc, organization_id=org.id, event_id=f"r{round_no}-{i}",
                                        product="storage", quantity=1)

    wallet = {"balance": 10**13, "today": 0, "credit_line": 0}
    ledger: list[tuple[str, int]] = []
    seen: set[str] = set()

    def baseline(round_no: int) -> None:
        for i in range(N):
            key = f"r{round_no}-{i}"
            if key in seen:
                continue
            amount = 150
            if wallet["balance"] - amount + wallet["credit_line"] < 0:
                continue
            wallet["balance"] -= amount
            wallet["today"] += amount
            seen.add(key)
            ledger.append((key, -amount))

    return CaseResult("1. authorize+debit, fakes vs dict", measure("project", N, project),
                      measure("baseline", N, baseline))
