"""Notifications as outbox messages: emails and outbound webhooks, deduplicated by key.

The dedupe key names what the notification is about ("daily threshold, org X, day D"), so
concurrent debits or retries that all notice the same crossing store one message between them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from billing_core.outbox import OutboxTopic, new_message
from billing_core.ports import UnitOfWork


def enqueue_email(uow: UnitOfWork, *, organization_id: uuid.UUID, to: str | None, subject: str, text: str,
                  now: datetime, dedupe_key: str, invoice_id: uuid.UUID | None = None) -> bool:
    """Queue an email; False when there is no recipient or the same key was queued before."""
    if not to:
        return False
    payload: dict[str, Any] = {"to": to, "subject": subject, "text": text}
    if invoice_id is not None:
        payload["invoice_id"] = str(invoice_id)
    return uow.outbox.add(new_message(organization_id=organization_id, topic=OutboxTopic.EMAIL, payload=payload,
                                      created_at=now, dedupe_key=f"email:{dedupe_key}"))


def enqueue_webhook(uow: UnitOfWork, *, organization_id: uuid.UUID, url: str | None, event_type: str,
                    data: dict[str, Any], now: datetime, dedupe_key: str) -> bool:
    """Queue a signed outbound webhook; False when no URL is configured or it was queued before."""
    if not url:
        return False
    payload = {"url": url, "type": event_type, "event_id": f"evt_{uuid.uuid4().hex}", "created": now.isoformat(),
               "data": data}
    return uow.outbox.add(new_message(organization_id=organization_id, topic=OutboxTopic.WEBHOOK, payload=payload,
                                      created_at=now, dedupe_key=f"webhook:{dedupe_key}"))


def notify(uow: UnitOfWork, *, organization_id: uuid.UUID, email: str | None, webhook_url: str | None,
           event_type: str, subject: str, text: str, data: dict[str, Any], now: datetime, dedupe_key: str) -> None:
    """The same notice by email and by webhook, each at most once per ``dedupe_key``."""
    enqueue_email(uow, organization_id=organization_id, to=email, subject=subject, text=text, now=now,
                  dedupe_key=dedupe_key)
    enqueue_webhook(uow, organization_id=organization_id, url=webhook_url, event_type=event_type, data=data,
                    now=now, dedupe_key=dedupe_key)
