"""Spend counters when requests straddle midnight, and the outbox claim between dispatchers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from adapters.fakes import in_memory_billing
from billing_core import services
from billing_core.ports import EmailMessage
from billing_core.services.dispatch import Deliverers
from billing_core.wallet import WalletAccount, apply_spend, counters_at

BEFORE_MIDNIGHT = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)
AFTER_MIDNIGHT = datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC)


def test_a_late_debit_from_yesterday_keeps_todays_spend() -> None:
    wallet = WalletAccount(organization_id=uuid.uuid4())
    apply_spend(wallet, 100, BEFORE_MIDNIGHT)
    apply_spend(wallet, 7, AFTER_MIDNIGHT)
    apply_spend(wallet, 50, BEFORE_MIDNIGHT)  # started before midnight, committed after
    today = counters_at(wallet, AFTER_MIDNIGHT)
    assert (today.today, today.yesterday) == (7, 150)
    assert today.month == 7  # March so far; February's late spend stays February's
    assert counters_at(wallet, BEFORE_MIDNIGHT).today == 150


def test_counters_roll_over_days_and_months() -> None:
    wallet = WalletAccount(organization_id=uuid.uuid4())
    apply_spend(wallet, 10, datetime(2026, 12, 31, 12, tzinfo=UTC))
    new_year = counters_at(wallet, datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    assert (new_year.today, new_year.yesterday, new_year.month) == (0, 10, 0)
    two_days_later = counters_at(wallet, datetime(2027, 1, 2, 0, 0, tzinfo=UTC))
    assert (two_days_later.today, two_days_later.yesterday) == (0, 0)


class ReentrantMailer:
    """Runs a second dispatcher while delivering, as a concurrent worker would."""

    def __init__(self, again: object) -> None:
        self.sent: list[EmailMessage] = []
        self.again = again

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)
        if callable(self.again):
            self.again()


def test_a_claimed_message_is_not_delivered_by_another_dispatcher() -> None:
    billing = in_memory_billing(datetime(2026, 3, 2, tzinfo=UTC))
    ctx = billing.ctx
    org = services.organizations.create_organization(ctx, name="A", owner_user_id="u", owner_email="u@a.test")
    with ctx.uow() as uow:
        services.notifications.enqueue_email(uow, organization_id=org.id, to="u@a.test", subject="hello",
                                             text="hi", now=ctx.clock.now(), dedupe_key="hello")
        uow.commit()
    second_reports = []
    mailer = ReentrantMailer(None)
    deliverers = Deliverers(mailer=mailer, webhooks=billing.webhooks, legal=billing.legal)
    mailer.again = lambda: second_reports.append(services.dispatch.dispatch(ctx, deliverers))
    report = services.dispatch.dispatch(ctx, deliverers)
    assert report.sent == 1
    assert [r.sent for r in second_reports] == [0]
    assert len(mailer.sent) == 1
