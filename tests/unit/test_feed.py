"""The usage feed and balance history: views of the one ledger. Refunds show as green + credit
entries with their reason, and the running balance reconciles with the balance shown."""

from __future__ import annotations

from datetime import timedelta

from adapters.fakes import InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import grant, top_up, usage_refund, usage_tx
from billing_core.feed import BALANCE_HISTORY_KINDS, FEED_KINDS, EntryTone, FeedEntry, entry
from billing_core.ledger import Account, EntryKind, LedgerTransaction, transfer
from billing_core.money import format_credits
from billing_core.wallet import WalletAccount
from tests.unit.domain_builders import DOLLAR, NOW, ORG


def stored(*txs: LedgerTransaction) -> list[LedgerTransaction]:
    """Post through the in-memory storage, which stamps each with the balance after it; oldest first."""
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        uow.wallets.create(WalletAccount(organization_id=ORG))
        posted = [uow.wallets.post(tx).transaction for tx in txs]
        uow.commit()
    return posted


def test_a_refund_is_a_green_plus_entry_with_its_reason() -> None:
    refund = stored(usage_refund(ORG, 1_250_000, "refund:evt-9", reason="failed generation reimbursed"))[0]
    row = entry(refund)
    assert row.tone is EntryTone.CREDIT and row.tone.value == "credit"
    assert row.sign == "+"
    assert row.amount_micros == 1_250_000
    assert row.amount_display == "+$1.250"
    assert row.reason == "failed generation reimbursed"
    assert row.kind is EntryKind.AUTOMATIC_REFUND
    assert (row.id, row.description, row.created_at) == (refund.id, "Automatic refund", NOW)


def test_a_charge_is_a_minus_entry() -> None:
    charge = stored(usage_tx(ORG, 400_000, "evt-1"))[0]
    row = entry(charge)
    assert (row.tone, row.sign, row.amount_micros, row.amount_display) == (EntryTone.CHARGE, "-", -400_000,
                                                                           "-$0.400")
    assert row.reference == "evt-1"


def test_the_running_balance_reconciles_with_every_entry() -> None:
    txs = stored(grant(ORG, 5 * DOLLAR, "g"), usage_tx(ORG, 400_000, "e1", at=NOW + timedelta(minutes=1)),
                 usage_tx(ORG, 1_250_000, "e2", at=NOW + timedelta(minutes=2)),
                 usage_refund(ORG, 1_250_000, "refund:e2", at=NOW + timedelta(minutes=3)),
                 top_up(ORG, 20 * DOLLAR, "t", at=NOW + timedelta(minutes=4)),
                 usage_tx(ORG, 3 * DOLLAR, "e3", at=NOW + timedelta(minutes=5)))
    rows = [entry(tx) for tx in txs if tx.kind in FEED_KINDS]
    balance = 0
    for row in rows:
        balance += row.amount_micros
        assert row.balance_after_micros == balance  # no unexplained jumps
    assert balance == 5 * DOLLAR - 400_000 + 20 * DOLLAR - 3 * DOLLAR
    assert format_credits(balance) == "$21.600"
    assert [r.sign for r in rows] == ["+", "-", "-", "+", "+", "-"]
    assert [r.tone for r in rows if r.kind is EntryKind.AUTOMATIC_REFUND] == [EntryTone.CREDIT]


def test_the_feed_shows_every_kind_but_invoice_payments() -> None:
    assert frozenset(EntryKind) - {EntryKind.INVOICE_PAYMENT} == FEED_KINDS
    assert EntryKind.AUTOMATIC_REFUND in FEED_KINDS and EntryKind.USAGE in FEED_KINDS


def test_the_balance_history_shows_settled_wallet_movements() -> None:
    assert EntryKind.USAGE not in BALANCE_HISTORY_KINDS
    assert EntryKind.AUTOMATIC_REFUND not in BALANCE_HISTORY_KINDS
    assert EntryKind.INVOICE_PAYMENT not in BALANCE_HISTORY_KINDS
    for kind in (EntryKind.TOP_UP, EntryKind.CREDIT_PACK, EntryKind.AUTO_RECHARGE, EntryKind.GRANT,
                 EntryKind.GRANT_EXPIRY, EntryKind.INVOICE_CREDIT_APPLIED, EntryKind.CREDIT_REFUND,
                 EntryKind.ADJUSTMENT, EntryKind.PAYMENT_REVERSAL):
        assert kind in BALANCE_HISTORY_KINDS


def test_applied_credit_is_a_debit_in_the_balance_history() -> None:
    applied = stored(transfer(organization_id=ORG, idempotency_key="close", kind=EntryKind.INVOICE_CREDIT_APPLIED,
                              description="Applied credit balance to invoice INV-000001", created_at=NOW,
                              source=Account.WALLET, target=Account.UNBILLED_USAGE, amount_micros=3 * DOLLAR))[0]
    row = entry(applied, settled=True)
    assert (row.amount_micros, row.sign, row.tone, row.amount_display) == (-3 * DOLLAR, "-", EntryTone.CHARGE,
                                                                           "-$3.000")
    assert row.balance_after_micros is None  # the history has no running real-time balance
    assert row.description == "Applied credit balance to invoice INV-000001"
    # In the usage feed it moves nothing: credit paid usage that was already counted.
    assert entry(applied).amount_micros == 0


def test_a_grant_in_the_balance_history() -> None:
    row = entry(stored(grant(ORG, 5 * DOLLAR, "g"))[0], settled=True)
    assert isinstance(row, FeedEntry)
    assert (row.description, row.amount_display, row.sign, row.tone) == ("Free Trial Credits", "+$5.000", "+",
                                                                         EntryTone.CREDIT)
    assert row.balance_after_micros is None


# Issue 19, item 6: "refunds appear as green + entries", "Each one shows what it was for". Moving
# overage onto an invoice is no refund, and a refund names the charge it reverses.

def test_in_the_usage_feed_only_refunds_are_green_plus_entries() -> None:
    from billing_core.feed import feed_row

    txs = stored(grant(ORG, 5 * DOLLAR, "g"), top_up(ORG, 20 * DOLLAR, "t", at=NOW + timedelta(minutes=1)),
                 usage_tx(ORG, 1_250_000, "e2", at=NOW + timedelta(minutes=2)),
                 usage_refund(ORG, 1_250_000, "refund:e2", at=NOW + timedelta(minutes=3)))
    tones = {tx.kind: feed_row(tx).tone for tx in txs}
    assert tones == {EntryKind.GRANT: EntryTone.DEPOSIT, EntryKind.TOP_UP: EntryTone.DEPOSIT,
                     EntryKind.USAGE: EntryTone.CHARGE, EntryKind.AUTOMATIC_REFUND: EntryTone.CREDIT}
    assert all(feed_row(tx).purpose for tx in txs)  # every row names what it was for


def test_moving_overage_onto_an_invoice_is_a_settlement_not_a_green_entry() -> None:
    from billing_core.feed import feed_row
    from billing_core.ledger import transaction

    # $10 of usage closed onto an invoice: $4 paid from the credit balance, $6 owed on the invoice.
    close = transaction(organization_id=ORG, idempotency_key="close", kind=EntryKind.INVOICE_CREDIT_APPLIED,
                        description="Applied credit balance to invoice INV-000001", created_at=NOW,
                        postings=[(Account.UNBILLED_USAGE, 10 * DOLLAR), (Account.WALLET, -4 * DOLLAR),
                                  (Account.RECEIVABLE, -6 * DOLLAR)])
    txs = stored(top_up(ORG, 4 * DOLLAR, "t"), usage_tx(ORG, 10 * DOLLAR, "e1", at=NOW + timedelta(minutes=1)), close)
    row = feed_row(txs[-1])
    assert row.amount_micros == 6 * DOLLAR  # the real-time balance rises by what the invoice now bills
    assert row.tone is EntryTone.SETTLEMENT  # not CREDIT: no green + entry
    assert row.purpose == ("Usage moved onto the invoice: $4.000 paid from your credit balance, "
                           "$6.000 billed on the invoice")


def test_a_refund_row_names_the_charge_it_reverses() -> None:
    from billing_core.feed import feed_row

    compute = transfer(organization_id=ORG, idempotency_key="usage:evt-9", kind=EntryKind.USAGE,
                       description="Compute usage", created_at=NOW, source=Account.UNBILLED_USAGE,
                       target=Account.REVENUE, amount_micros=1_250_000, reference="evt-9")
    charge, refund = stored(compute,
                            transfer(organization_id=ORG, idempotency_key="usage-refund:evt-9",
                                     kind=EntryKind.AUTOMATIC_REFUND, description="Automatic refund",
                                     created_at=NOW + timedelta(minutes=5), source=Account.REVENUE,
                                     target=Account.UNBILLED_USAGE, amount_micros=1_250_000,
                                     reason="failed generation reimbursed", reference="evt-9"))
    row = feed_row(refund, reversed_charge=charge)
    assert row.tone is EntryTone.CREDIT and row.amount_display == "+$1.250"
    assert row.reverses == "Compute usage (event evt-9), charged 2026-01-15 10:00 UTC".replace(
        "2026-01-15 10:00", f"{NOW:%Y-%m-%d %H:%M}")
    assert row.purpose == "Refund of Compute usage (event evt-9)"
    assert row.reason == "failed generation reimbursed"
