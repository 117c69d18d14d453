"""The outbox: messages written with the state change, retried with doubling backoff capped at two
hours, and dead-lettered once a day has passed since they were written."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from billing_core.outbox import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    RETRY_HORIZON,
    OutboxMessage,
    OutboxStatus,
    OutboxTopic,
    new_message,
    next_attempt,
)
from tests.unit.domain_builders import NOW, ORG


def message(attempts: int, created_at: datetime = NOW) -> OutboxMessage:
    msg = new_message(organization_id=ORG, topic=OutboxTopic.WEBHOOK, payload={"type": "budget.reached"},
                      created_at=created_at, dedupe_key="budget:2026-03-14")
    msg.attempts = attempts
    return msg


def test_a_new_message_is_pending_and_due_at_once() -> None:
    msg = new_message(organization_id=ORG, topic=OutboxTopic.EMAIL, payload={"to": "ada@acme.test"},
                      created_at=NOW, dedupe_key="k")
    assert (msg.status, msg.attempts, msg.next_attempt_at, msg.sent_at, msg.last_error) == (
        OutboxStatus.PENDING, 0, NOW, None, None)
    assert (msg.organization_id, msg.topic, msg.dedupe_key) == (ORG, OutboxTopic.EMAIL, "k")
    assert msg.payload == {"to": "ada@acme.test"}
    other = new_message(organization_id=ORG, topic=OutboxTopic.EMAIL, payload={}, created_at=NOW, dedupe_key="k")
    assert other.id != msg.id


def test_constants() -> None:
    assert timedelta(seconds=30) == BACKOFF_BASE
    assert timedelta(hours=2) == BACKOFF_CAP
    assert timedelta(hours=24) == RETRY_HORIZON


@pytest.mark.parametrize(("attempts", "delay"), [
    (0, timedelta(seconds=30)), (1, timedelta(seconds=30)), (2, timedelta(minutes=1)), (3, timedelta(minutes=2)),
    (4, timedelta(minutes=4)), (5, timedelta(minutes=8)), (8, timedelta(minutes=64)),
    (9, timedelta(hours=2)),  # 128 minutes capped at 120
    (10, timedelta(hours=2)), (60, timedelta(hours=2)), (10**6, timedelta(hours=2)),
])
def test_backoff_doubles_and_caps_at_two_hours(attempts: int, delay: timedelta) -> None:
    now = NOW + timedelta(hours=1)
    assert next_attempt(message(attempts), now) == now + delay


def test_each_delay_doubles_the_previous_until_the_cap() -> None:
    now = NOW + timedelta(minutes=1)
    delays = []
    for attempts in range(1, 15):
        retry = next_attempt(message(attempts), now)
        assert retry is not None
        delays.append(retry - now)
    for before, after in itertools.pairwise(delays):
        assert after == min(before * 2, BACKOFF_CAP)
    assert max(delays) == BACKOFF_CAP


def test_dead_letter_after_24_hours_since_written() -> None:
    almost = NOW + RETRY_HORIZON - timedelta(microseconds=1)
    assert next_attempt(message(5), almost) == almost + timedelta(minutes=8)
    assert next_attempt(message(5), NOW + RETRY_HORIZON) is None
    assert next_attempt(message(1), NOW + timedelta(days=3)) is None


def test_a_failing_message_is_retried_for_a_day_then_dead() -> None:
    """Drive the schedule: fail at every due time until the message is dead-lettered."""
    msg = message(0)
    now = NOW
    tries = []
    while True:
        msg.attempts += 1
        retry = next_attempt(msg, now)
        tries.append(now)
        if retry is None:
            break
        assert retry > now
        now = retry
    assert now - NOW >= RETRY_HORIZON
    assert tries[-2] - NOW < RETRY_HORIZON
    assert len(tries) == 20  # 30 s, 1, 2, ... 64 min, then every 2 h until a day has passed
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] == BACKOFF_BASE and gaps[-1] == BACKOFF_CAP


def test_topics_and_statuses() -> None:
    assert {t.value for t in OutboxTopic} == {"email", "webhook", "legal_invoice", "legal_credit_note",
                                              "auto_recharge"}
    assert {s.value for s in OutboxStatus} == {"pending", "sent", "dead"}
