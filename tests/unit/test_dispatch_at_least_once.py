"""At-least-once outbox delivery made recognisable: every email names its outbox message in its
Message-ID, and the batch of a dispatcher that died comes back after the configured lease."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from adapters.fakes import in_memory_billing
from adapters.fakes.bundle import InMemoryBilling
from billing_core.outbox import OutboxStatus
from billing_core.ports import EmailMessage
from billing_core.services.context import BillingPolicy
from billing_core.services.dispatch import dispatch
from billing_core.services.notifications import enqueue_email

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def _queue_email(billing: InMemoryBilling, key: str) -> None:
    ctx = billing.ctx
    with ctx.uow() as uow:
        assert enqueue_email(uow, organization_id=uuid.uuid4(), to="ops@acme.test", subject="Low balance",
                             text="Top up.", now=NOW, dedupe_key=key)
        uow.commit()


def test_every_email_names_its_outbox_message() -> None:
    billing = in_memory_billing(NOW)
    _queue_email(billing, "a")
    _queue_email(billing, "b")
    assert dispatch(billing.ctx, billing.deliverers).sent == 2
    with billing.ctx.uow() as uow:
        ids = {f"outbox-{m.id}" for m in uow.outbox.list(status=OutboxStatus.SENT)}
    assert {m.message_id for m in billing.mailer.sent} == ids


def test_a_dead_dispatchers_batch_comes_back_after_the_policy_lease() -> None:
    billing = in_memory_billing(NOW, policy=BillingPolicy(outbox_lease=timedelta(seconds=15)))
    _queue_email(billing, "a")
    ctx = billing.ctx
    # A dispatcher claims the message and dies before delivering it: the claim is all it left.
    with ctx.uow() as uow:
        [message] = uow.outbox.due(NOW, 10)
        message.next_attempt_at = NOW + ctx.policy.outbox_lease
        uow.outbox.save(message)
        uow.commit()
    billing.clock.set(NOW + timedelta(seconds=14))
    assert dispatch(ctx, billing.deliverers).sent == 0
    billing.clock.set(NOW + timedelta(seconds=16))
    assert dispatch(ctx, billing.deliverers).sent == 1
    assert [m.message_id for m in billing.mailer.sent] == [f"outbox-{message.id}"]


class _SlowMailer:
    """The fake mailer behind a mail system that takes five seconds per message."""

    def __init__(self, billing: InMemoryBilling) -> None:
        self.billing = billing

    def send(self, message: EmailMessage) -> None:
        self.billing.mailer.send(message)
        self.billing.clock.set(self.billing.clock.now() + timedelta(seconds=5))


def test_a_slow_batch_stops_before_its_claim_lapses_and_the_rest_is_sent_once_later() -> None:
    billing = in_memory_billing(NOW, policy=BillingPolicy(outbox_lease=timedelta(seconds=15)))
    for key in "abc":
        _queue_email(billing, key)
    slow = dataclasses.replace(billing.deliverers, mailer=_SlowMailer(billing))
    # 0 s and 5 s into the lease: delivered; 10 s: past half of it, left for the claim to lapse.
    assert dispatch(billing.ctx, slow).sent == 2
    billing.clock.set(NOW + timedelta(seconds=14))
    assert dispatch(billing.ctx, slow).sent == 0, "still claimed by the first dispatcher"
    billing.clock.set(NOW + timedelta(seconds=16))
    assert dispatch(billing.ctx, slow).sent == 1
    assert len(billing.mailer.sent) == len({m.message_id for m in billing.mailer.sent}) == 3


class _MailerThatTimesOutPastTheLease:
    """A first attempt that hangs past the claim's lease, while a second dispatcher claims the
    message again and delivers it; then the first attempt fails (a timeout)."""

    def __init__(self, billing: InMemoryBilling) -> None:
        self.billing = billing
        self.calls = 0

    def send(self, message: EmailMessage) -> None:
        self.calls += 1
        if self.calls > 1:
            self.billing.mailer.send(message)
            return
        self.billing.clock.set(self.billing.clock.now() + timedelta(seconds=16))
        assert dispatch(self.billing.ctx, dataclasses.replace(self.billing.deliverers, mailer=self)).sent == 1
        raise TimeoutError("the mail system did not answer")


def test_a_stale_dispatcher_does_not_overwrite_the_outcome_of_the_one_that_claimed_the_message_after_it() -> None:
    billing = in_memory_billing(NOW, policy=BillingPolicy(outbox_lease=timedelta(seconds=15)))
    _queue_email(billing, "a")
    mailer = _MailerThatTimesOutPastTheLease(billing)
    stale = dispatch(billing.ctx, dataclasses.replace(billing.deliverers, mailer=mailer))
    # The stale failure counts nowhere and changes nothing: the message stays sent, once.
    assert (stale.sent, stale.retried, stale.dead) == (0, 0, 0)
    with billing.ctx.uow() as uow:
        [message] = uow.outbox.list()
    assert (message.status, message.attempts, message.last_error) == (OutboxStatus.SENT, 1, None)
    billing.clock.set(NOW + timedelta(hours=1))
    assert dispatch(billing.ctx, billing.deliverers).sent == 0
    assert len(billing.mailer.sent) == 1
