"""Feed and balance-history rows built from ledger transactions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from billing_core.feed import BALANCE_HISTORY_KINDS, FEED_KINDS, EntryTone, entry
from billing_core.ledger import Account, EntryKind, LedgerTransaction, transfer

AT = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def tx(kind: EntryKind, source: Account, target: Account, micros: int, balance_after: int) -> LedgerTransaction:
    built = transfer(organization_id=uuid.uuid4(), idempotency_key=f"k-{kind}", kind=kind, description="d",
                     created_at=AT, source=source, target=target, amount_micros=micros, reason="r", reference="ref")
    return msgspec.structs.replace(built, wallet_balance_after=balance_after)


def test_credit_entry_is_green_plus() -> None:
    refund = tx(EntryKind.AUTOMATIC_REFUND, Account.REVENUE, Account.UNBILLED_USAGE, 800_000, 10_800_000)
    row = entry(refund)
    assert row.tone is EntryTone.CREDIT
    assert row.sign == "+"
    assert row.amount_display == "+$0.800"
    assert row.amount_micros == 800_000
    assert row.balance_after_micros == 10_800_000
    assert (row.kind, row.reason, row.reference, row.id) == (EntryKind.AUTOMATIC_REFUND, "r", "ref", refund.id)


def test_charge_entry_is_minus() -> None:
    usage = tx(EntryKind.USAGE, Account.UNBILLED_USAGE, Account.REVENUE, 12_480_000, -2_480_000)
    row = entry(usage)
    assert row.tone is EntryTone.CHARGE
    assert row.sign == "-"
    assert row.amount_display == "-$12.480"
    assert row.amount_micros == -12_480_000
    assert row.balance_after_micros == -2_480_000


def test_settled_entry_shows_wallet_delta_without_running_balance() -> None:
    applied = tx(EntryKind.INVOICE_CREDIT_APPLIED, Account.WALLET, Account.UNBILLED_USAGE, 5_000_000, 7_000_000)
    settled = entry(applied, settled=True)
    assert settled.amount_micros == -5_000_000
    assert settled.amount_display == "-$5.000"
    assert settled.balance_after_micros is None
    # In the real-time feed the same transaction does not move the balance.
    assert entry(applied).amount_micros == 0
    top_up = tx(EntryKind.TOP_UP, Account.PAYMENT_CLEARING, Account.WALLET, 25_000_000, 30_000_000)
    row = entry(top_up, settled=True)
    assert (row.amount_display, row.sign, row.tone, row.balance_after_micros) == (
        "+$25.000", "+", EntryTone.CREDIT, None)


def test_view_kinds() -> None:
    assert EntryKind.USAGE not in BALANCE_HISTORY_KINDS
    assert EntryKind.INVOICE_PAYMENT not in BALANCE_HISTORY_KINDS | FEED_KINDS
    assert {EntryKind.USAGE, EntryKind.AUTOMATIC_REFUND, EntryKind.TOP_UP} <= FEED_KINDS
    assert {EntryKind.TOP_UP, EntryKind.CREDIT_PACK, EntryKind.INVOICE_CREDIT_APPLIED} <= BALANCE_HISTORY_KINDS
