"""The demo organization's history is complete whatever the day it is seeded on: every month that has
ended is closed (the CLI's ``close-period`` then finds nothing to do) and the books reconcile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import in_memory_billing
from billing_core import services
from entrypoints.demo import DEMO_ORGANIZATION_ID, seed_demo


@pytest.mark.parametrize("now", [
    datetime(2026, 12, 1, 0, 30, tzinfo=UTC),  # minutes into a month: the loop never reaches the 1st's close
    datetime(2026, 12, 1, 18, 33, tzinfo=UTC),
    datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
    datetime(2027, 3, 15, 12, 0, tzinfo=UTC),
], ids=lambda at: at.strftime("%Y-%m-%dT%H:%M"))
def test_every_ended_month_is_closed_by_the_seed(now: datetime) -> None:
    billing = in_memory_billing(now)
    credentials = seed_demo(billing.ctx, billing.deliverers, months=2)
    assert credentials.created
    billing.clock.set(now + timedelta(minutes=1))
    report = services.invoicing.close_period(billing.ctx, organization_id=DEMO_ORGANIZATION_ID)
    assert report.invoices_created == 0, report
    assert report.already_closed == 1, report
    with billing.ctx.uow() as uow:
        invoices = uow.invoices.list(DEMO_ORGANIZATION_ID, limit=100).items
    assert len(invoices) >= 2
    assert services.reconcile.reconcile(billing.ctx, organization_id=DEMO_ORGANIZATION_ID).clean
