"""Outbox retry backoff and dead-lettering."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing_core.outbox import OutboxMessage, OutboxStatus, OutboxTopic, new_message, next_attempt

CREATED = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def message(attempts: int) -> OutboxMessage:
    msg = new_message(organization_id=uuid.uuid4(), topic=OutboxTopic.WEBHOOK, payload={"a": 1},
                      created_at=CREATED, dedupe_key="k")
    msg.attempts = attempts
    return msg


def test_new_message_is_pending_and_due_now() -> None:
    msg = message(0)
    assert msg.status is OutboxStatus.PENDING
    assert msg.next_attempt_at == CREATED
    assert msg.attempts == 0


@pytest.mark.parametrize(("attempts", "delay"), [
    (0, timedelta(seconds=30)), (1, timedelta(seconds=30)), (2, timedelta(seconds=60)),
    (3, timedelta(seconds=120)), (8, timedelta(seconds=30 * 128)),
    (9, timedelta(hours=2)),  # 30 s * 256 = 2 h 8 min, capped
    (30, timedelta(hours=2)), (200, timedelta(hours=2)),
])
def test_backoff_doubles_from_30_seconds_capped_at_2_hours(attempts: int, delay: timedelta) -> None:
    now = CREATED + timedelta(minutes=5)
    assert next_attempt(message(attempts), now) == now + delay


def test_dead_after_24_hours() -> None:
    msg = message(12)
    last_chance = CREATED + timedelta(hours=24) - timedelta(seconds=1)
    assert next_attempt(msg, last_chance) == last_chance + timedelta(hours=2)
    assert next_attempt(msg, CREATED + timedelta(hours=24)) is None
    assert next_attempt(msg, CREATED + timedelta(days=3)) is None
