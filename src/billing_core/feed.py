"""Views of the one ledger: balance history and the usage feed.

The usage feed lists charges and refunds together; refunds are green ``+`` entries with the reason
that triggered them, and every entry carries the running balance so the feed reconciles with the
balance shown.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.ledger import EntryKind, LedgerTransaction
from billing_core.money import format_credits

# What the usage feed shows: usage charges and what gives usage credits back.
FEED_KINDS = frozenset({EntryKind.USAGE, EntryKind.AUTOMATIC_REFUND, EntryKind.INVOICE_CREDIT_APPLIED,
                        EntryKind.ADJUSTMENT})


class EntryTone(StrEnum):
    CHARGE = "charge"
    CREDIT = "credit"


class FeedEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: EntryKind
    description: str
    reason: str | None
    created_at: datetime
    amount_micros: int
    amount_display: str
    sign: str
    tone: EntryTone
    balance_after_micros: int | None
    reference: str | None


def entry(tx: LedgerTransaction) -> FeedEntry:
    """A ledger transaction as one row: credits positive (green +), debits negative."""
    amount = tx.balance_delta
    return FeedEntry(
        id=tx.id, kind=tx.kind, description=tx.description, reason=tx.reason, created_at=tx.created_at,
        amount_micros=amount, amount_display=("+" if amount > 0 else "") + format_credits(amount),
        sign="+" if amount > 0 else "-", tone=EntryTone.CREDIT if amount > 0 else EntryTone.CHARGE,
        balance_after_micros=tx.wallet_balance_after, reference=tx.reference,
    )
