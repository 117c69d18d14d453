"""Views of the one ledger: balance history and the usage feed.

- The balance history lists movements of the settled wallet ("Total Credits"): payments, packs,
  auto-recharges, grants and their expiry, "Applied credit balance to invoice", refunds.
- The usage feed lists every movement of the real-time credit balance: usage charges and, as green
  ``+`` entries with the reason that triggered them, refunds and top-ups. Each entry carries the
  balance after it, so the feed reconciles with the balance shown.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.ledger import Account, EntryKind, LedgerTransaction
from billing_core.money import format_credits

# Kinds that can move the settled wallet; usage and invoice payments never do.
BALANCE_HISTORY_KINDS = frozenset(EntryKind) - {EntryKind.USAGE, EntryKind.AUTOMATIC_REFUND,
                                                EntryKind.INVOICE_PAYMENT}
# Kinds that can move the real-time balance; an invoice payment only settles cash owed.
FEED_KINDS = frozenset(EntryKind) - {EntryKind.INVOICE_PAYMENT}


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


def entry(tx: LedgerTransaction, *, settled: bool = False) -> FeedEntry:
    """A ledger transaction as one row: credits positive (green +), debits negative.

    ``settled`` rows (balance history) show the settled wallet's movement and no running balance.
    """
    amount = tx.delta(Account.WALLET) if settled else tx.balance_delta
    return FeedEntry(
        id=tx.id, kind=tx.kind, description=tx.description, reason=tx.reason, created_at=tx.created_at,
        amount_micros=amount, amount_display=("+" if amount > 0 else "") + format_credits(amount),
        sign="+" if amount > 0 else "-", tone=EntryTone.CREDIT if amount > 0 else EntryTone.CHARGE,
        balance_after_micros=None if settled else tx.wallet_balance_after, reference=tx.reference,
    )
