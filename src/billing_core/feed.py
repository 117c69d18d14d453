"""Views of the one ledger: balance history and the usage feed.

- The balance history lists movements of the settled wallet ("Total Credits"): payments, packs,
  auto-recharges, grants and their expiry, "Applied credit balance to invoice", refunds.
- The usage feed lists every movement of the real-time credit balance. Only refunds are green ``+``
  entries (tone ``credit``), with the reason that triggered them and the charge they reverse;
  payments and grants are ``+`` entries in the plain tone ``deposit``; moving usage onto an invoice
  is a ``settlement`` (it pays nothing back, it only moves what is owed). Every row names what it
  was for (``purpose``). Each entry carries the balance after it, so the feed reconciles with the
  balance shown.
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
    """A green ``+`` entry: in the usage feed, refunds only."""
    DEPOSIT = "deposit"
    """Money or a grant added to the balance: ``+``, not green (it is no refund)."""
    SETTLEMENT = "settlement"
    """Usage moved onto an invoice: what the credit balance paid and what the invoice bills."""


# The kinds a usage feed shows as green + entries: refunds, and nothing else.
REFUND_KINDS = frozenset({EntryKind.AUTOMATIC_REFUND})

_PURPOSE = {
    EntryKind.TOP_UP: "Credits you added to your balance",
    EntryKind.CREDIT_PACK: "Credit pack purchase",
    EntryKind.AUTO_RECHARGE: "Auto-recharge payment",
    EntryKind.GRANT: "Credits granted to your organization",
    EntryKind.GRANT_EXPIRY: "Granted credits that expired",
    EntryKind.USAGE: "Usage charge",
    EntryKind.PAYMENT_REVERSAL: "A payment reversed by the payment provider",
    EntryKind.CREDIT_REFUND: "Credits refunded to your payment method",
    EntryKind.ADJUSTMENT: "Manual adjustment",
}


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
    purpose: str = ""
    """What the row was for, in words (the usage feed fills it; the balance history leaves it empty)."""
    reverses: str | None = None
    """For a refund: the charge it reverses (its description and event id), when the ledger has it."""


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


def feed_row(tx: LedgerTransaction, *, reversed_charge: LedgerTransaction | None = None) -> FeedEntry:
    """A ledger transaction as one row of the usage feed: only refunds are green ``+`` entries.

    ``reversed_charge`` is the usage charge a refund gives back (looked up by the caller), so the
    row says which charge it reverses. Moving usage onto an invoice is no credit to the customer:
    it is a ``settlement`` row that says what the balance paid and what the invoice bills.
    """
    row = entry(tx)
    amount = row.amount_micros
    reverses = None
    if tx.kind in REFUND_KINDS:
        tone = EntryTone.CREDIT if amount > 0 else EntryTone.CHARGE
        what = reversed_charge.description if reversed_charge is not None else "usage"
        event = f" (event {tx.reference})" if tx.reference else ""
        reverses = f"{what}{event}"
        if reversed_charge is not None:
            reverses += f", charged {reversed_charge.created_at:%Y-%m-%d %H:%M} UTC"
        purpose = f"Refund of {what}{event}"
    elif tx.kind is EntryKind.INVOICE_CREDIT_APPLIED:
        tone = EntryTone.SETTLEMENT
        paid = -tx.delta(Account.WALLET)
        billed = -tx.delta(Account.RECEIVABLE)
        purpose = (f"Usage moved onto the invoice: {format_credits(paid)} paid from your credit balance, "
                   f"{format_credits(billed)} billed on the invoice")
    else:
        tone = EntryTone.CHARGE if amount < 0 else EntryTone.DEPOSIT
        purpose = _PURPOSE.get(tx.kind, tx.description)
        if tx.kind is EntryKind.USAGE:
            purpose = f"Usage charge: {tx.description}"
    return msgspec.structs.replace(row, tone=tone, purpose=purpose, reverses=reverses)
