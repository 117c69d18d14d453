"""Side effects as messages, written in the same unit of work as the state they describe.

A dispatcher delivers them after commit (email, webhook, legal invoice, provider calls) with
retries and backoff, and dead-letters them after the limit. ``dedupe_key`` makes "exactly one per
kind per day" a storage constraint instead of a check.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec


class OutboxTopic(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    LEGAL_INVOICE = "legal_invoice"
    LEGAL_CREDIT_NOTE = "legal_credit_note"
    AUTO_RECHARGE = "auto_recharge"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class OutboxMessage(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID
    topic: OutboxTopic
    payload: dict[str, Any]
    created_at: datetime
    dedupe_key: str
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None


class OutboxDepth(msgspec.Struct, frozen=True, kw_only=True):
    """How much delivery work waits: what an operator watches."""

    pending: int
    oldest_pending_at: datetime | None
    """When the oldest undelivered message was written (None when nothing is pending)."""
    dead: int


def new_message(*, organization_id: uuid.UUID, topic: OutboxTopic, payload: dict[str, Any],
                created_at: datetime, dedupe_key: str) -> OutboxMessage:
    return OutboxMessage(id=uuid.uuid4(), organization_id=organization_id, topic=topic, payload=payload,
                         created_at=created_at, dedupe_key=dedupe_key, next_attempt_at=created_at)


# Exponential backoff: 30 s doubling, capped at 2 h, until 24 h have passed since the first try.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)
RETRY_HORIZON = timedelta(hours=24)


def next_attempt(message: OutboxMessage, now: datetime) -> datetime | None:
    """When to try again after a failed attempt, or None to dead-letter the message."""
    if now - message.created_at >= RETRY_HORIZON:
        return None
    # The exponent is bounded (2**8 * 30 s already exceeds the cap) so many attempts cannot overflow.
    delay: timedelta = min(BACKOFF_BASE * (2 ** min(max(message.attempts - 1, 0), 16)), BACKOFF_CAP)
    return now + delay
