"""The served app's own background work: the outbox is delivered and last month is closed, once,
however many workers run cycles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from billing_core import Permission, services
from billing_core.outbox import OutboxStatus
from billing_core.services.background import CLOSE_PERIOD_JOB, JOB_LEASE, close_last_period, run_cycle

MARCH = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
APRIL_FIRST = datetime(2026, 4, 1, 0, 0, 5, tzinfo=UTC)


def _organization_with_usage(billing: InMemoryBilling) -> uuid.UUID:
    """A subscribed organization with one usage event now."""
    ctx = billing.ctx
    org = services.organizations.create_organization(ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@acme.test")
    _, owner_secret = services.organizations.issue_token(ctx, organization_id=org.id, name="ada", user_id="ada")
    owner = services.organizations.authenticate(ctx, owner_secret)
    session = services.checkout.start_checkout(ctx, owner, organization_id=org.id, plan="pro",
                                               return_url="https://app.test/billing")
    assert session.provider_session_id is not None
    services.checkout.complete_checkout(ctx, provider_session_id=session.provider_session_id,
                                        provider_subscription_id=f"sub_{org.id.hex}")
    services.product_subscriptions.subscribe_product(ctx, owner, organization_id=org.id, product="compute",
                                                     project_id=None)
    _, secret = services.organizations.issue_token(ctx, organization_id=org.id, name="platform",
                                                   scopes=frozenset({Permission.USAGE_WRITE}))
    platform = services.organizations.authenticate(ctx, secret)
    assert services.usage.report_usage(ctx, platform, organization_id=org.id, event_id="e1", product="compute",
                                       quantity=10, project_id=None).allowed
    return org.id


def _pending(billing: InMemoryBilling) -> int:
    with billing.ctx.uow() as uow:
        return len(uow.outbox.list(status=OutboxStatus.PENDING))


def test_a_cycle_closes_last_month_on_the_first_and_delivers_what_that_queued() -> None:
    billing = in_memory_billing(MARCH)
    org_id = _organization_with_usage(billing)
    ctx = billing.ctx
    first = run_cycle(ctx, billing.deliverers, holder="w1")
    assert first.closed is not None and first.closed.period == "2026-02" and first.closed.invoices_created == 0

    billing.clock.set(APRIL_FIRST)
    report = run_cycle(ctx, billing.deliverers, holder="w1")
    assert report.closed is not None and report.closed.period == "2026-03"
    assert report.closed.invoices_created == 1
    with ctx.uow() as uow:
        invoice = uow.invoices.for_period(org_id, datetime(2026, 3, 1, tzinfo=UTC))
    assert invoice is not None and invoice.number is not None
    # The close queued the legal invoice; the next cycle issues it and queues its email, the one
    # after sends that: nothing waits for an operator.
    run_cycle(ctx, billing.deliverers, holder="w1")
    run_cycle(ctx, billing.deliverers, holder="w1")
    assert _pending(billing) == 0
    assert any(invoice.number in m.subject for m in billing.mailer.sent)
    assert str(invoice.id) in billing.legal.issued, "the legal invoice was issued"


def test_each_period_is_closed_by_one_worker_once() -> None:
    billing = in_memory_billing(MARCH)
    _organization_with_usage(billing)
    billing.clock.set(APRIL_FIRST)
    ctx = billing.ctx
    reports = [close_last_period(ctx, holder=f"w{n}") for n in range(3)]
    assert [r is not None for r in reports] == [True, False, False]
    assert close_last_period(ctx, holder="w0") is None, "done for 2026-03"
    with ctx.uow() as uow:
        assert uow.scheduled_jobs.last_completed(CLOSE_PERIOD_JOB) == "2026-03"


def test_a_worker_that_died_holding_the_job_leaves_it_to_another_after_the_lease() -> None:
    billing = in_memory_billing(APRIL_FIRST)
    ctx = billing.ctx
    with ctx.uow() as uow:
        assert uow.scheduled_jobs.claim(CLOSE_PERIOD_JOB, "2026-03", "dead", APRIL_FIRST, APRIL_FIRST + JOB_LEASE)
        uow.commit()
    assert close_last_period(ctx, holder="w2") is None
    billing.clock.set(APRIL_FIRST + JOB_LEASE + timedelta(seconds=1))
    report = close_last_period(ctx, holder="w2")
    assert report is not None and report.period == "2026-03"
