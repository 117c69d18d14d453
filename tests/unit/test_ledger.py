"""The double-entry ledger: balanced transactions only, real amounts, deltas per account."""

from __future__ import annotations

import uuid

import pytest

from adapters.testing.builders import grant, top_up, usage_refund, usage_tx
from billing_core.errors import InvalidInput, LedgerImbalance
from billing_core.ledger import (
    BALANCE_ACCOUNTS,
    Account,
    EntryKind,
    LedgerTransaction,
    Posting,
    balances,
    check_balanced,
    credit_balance,
    transaction,
    transfer,
)
from billing_core.money import MAX_MICROS
from tests.unit.domain_builders import DOLLAR, NOW, ORG


def build(postings: list[tuple[Account, int]], key: str = "k") -> LedgerTransaction:
    return transaction(organization_id=ORG, idempotency_key=key, kind=EntryKind.ADJUSTMENT,
                       description="manual adjustment", created_at=NOW, postings=postings)


def test_a_balanced_transaction_keeps_everything_it_was_given() -> None:
    tx_id = uuid.uuid4()
    tx = transaction(organization_id=ORG, idempotency_key="close:2026-03", kind=EntryKind.INVOICE_CREDIT_APPLIED,
                     description="Applied credit balance to invoice INV-000001", created_at=NOW,
                     postings=[(Account.UNBILLED_USAGE, 30 * DOLLAR), (Account.WALLET, -20 * DOLLAR),
                               (Account.RECEIVABLE, -10 * DOLLAR)],
                     reason="period close", reference="inv-1", transaction_id=tx_id)
    assert tx.id == tx_id and tx.organization_id == ORG
    assert tx.idempotency_key == "close:2026-03" and tx.kind is EntryKind.INVOICE_CREDIT_APPLIED
    assert (tx.reason, tx.reference, tx.created_at) == ("period close", "inv-1", NOW)
    assert tx.postings == (Posting(Account.UNBILLED_USAGE, 30 * DOLLAR), Posting(Account.WALLET, -20 * DOLLAR),
                           Posting(Account.RECEIVABLE, -10 * DOLLAR))
    assert tx.wallet_balance_after is None  # storage stamps it
    # The wallet pays 20 of the 30 of usage and 10 is now owed in cash: the balance rises by those 10.
    assert tx.balance_delta == 10 * DOLLAR
    assert tx.delta(Account.WALLET) == -20 * DOLLAR
    assert tx.delta(Account.REVENUE) == 0


def test_each_transaction_gets_its_own_id() -> None:
    assert build([(Account.WALLET, 1), (Account.REVENUE, -1)]).id != build(
        [(Account.WALLET, 1), (Account.REVENUE, -1)]).id


@pytest.mark.parametrize(("postings", "total"), [
    ([(Account.WALLET, 5), (Account.REVENUE, -4)], 1),
    ([(Account.WALLET, 5), (Account.REVENUE, 5)], 10),
    ([(Account.WALLET, 5), (Account.REVENUE, -3), (Account.RECEIVABLE, -3)], -1),
])
def test_an_unbalanced_transaction_is_refused(postings: list[tuple[Account, int]], total: int) -> None:
    with pytest.raises(LedgerImbalance) as info:
        build(postings)
    assert info.value.total == total
    assert info.value.code == "ledger_imbalance"
    assert str(total) in str(info.value)


@pytest.mark.parametrize("postings", [
    [],
    [(Account.WALLET, 0)],
    [(Account.WALLET, 5)],
])
def test_a_transaction_needs_two_postings(postings: list[tuple[Account, int]]) -> None:
    with pytest.raises(InvalidInput) as info:
        build(postings)
    assert info.value.field == "postings"


@pytest.mark.parametrize("amount", [0, 1.0, True, "5", MAX_MICROS + 1])
def test_every_posting_is_a_non_zero_integer_in_range(amount: object) -> None:
    with pytest.raises(InvalidInput) as info:
        build([(Account.WALLET, amount), (Account.REVENUE, -5)])  # type: ignore[list-item]
    assert info.value.field == "postings"


def test_the_largest_amount_is_allowed() -> None:
    tx = build([(Account.WALLET, MAX_MICROS), (Account.REVENUE, -MAX_MICROS)])
    assert tx.delta(Account.WALLET) == MAX_MICROS


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_idempotency_key_is_1_to_255_characters(key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        build([(Account.WALLET, 1), (Account.REVENUE, -1)], key=key)
    assert info.value.field == "idempotency_key"
    assert build([(Account.WALLET, 1), (Account.REVENUE, -1)], key="x" * 255).idempotency_key == "x" * 255


def test_transfer_moves_from_source_to_target() -> None:
    tx = transfer(organization_id=ORG, idempotency_key="k", kind=EntryKind.TOP_UP, description="Add Credits",
                  created_at=NOW, source=Account.PAYMENT_CLEARING, target=Account.WALLET, amount_micros=7,
                  reason="card", reference="pay_1")
    assert tx.postings == (Posting(Account.WALLET, 7), Posting(Account.PAYMENT_CLEARING, -7))
    assert (tx.reason, tx.reference) == ("card", "pay_1")
    with pytest.raises(InvalidInput):
        transfer(organization_id=ORG, idempotency_key="k", kind=EntryKind.TOP_UP, description="d", created_at=NOW,
                 source=Account.PAYMENT_CLEARING, target=Account.WALLET, amount_micros=0)


@pytest.mark.parametrize(("tx", "delta"), [
    (top_up(ORG, 5 * DOLLAR, "t"), 5 * DOLLAR),
    (grant(ORG, 5 * DOLLAR, "g"), 5 * DOLLAR),
    (usage_tx(ORG, 2 * DOLLAR, "u"), -2 * DOLLAR),
    (usage_refund(ORG, 2 * DOLLAR, "r"), 2 * DOLLAR),
    (transfer(organization_id=ORG, idempotency_key="x", kind=EntryKind.INVOICE_CREDIT_APPLIED, description="d",
              created_at=NOW, source=Account.WALLET, target=Account.UNBILLED_USAGE, amount_micros=DOLLAR), 0),
    (transfer(organization_id=ORG, idempotency_key="x", kind=EntryKind.INVOICE_PAYMENT, description="d",
              created_at=NOW, source=Account.PAYMENT_CLEARING, target=Account.RECEIVABLE, amount_micros=DOLLAR), 0),
    (transfer(organization_id=ORG, idempotency_key="x", kind=EntryKind.GRANT_EXPIRY, description="d",
              created_at=NOW, source=Account.WALLET, target=Account.PROMOTIONAL_GRANTS, amount_micros=DOLLAR),
     -DOLLAR),
    (transfer(organization_id=ORG, idempotency_key="x", kind=EntryKind.CREDIT_REFUND, description="d",
              created_at=NOW, source=Account.WALLET, target=Account.REFUNDS, amount_micros=DOLLAR), -DOLLAR),
], ids=["top-up", "grant", "usage", "automatic-refund", "credit-applied", "invoice-payment", "grant-expiry",
        "credit-refund"])
def test_balance_delta_counts_only_wallet_and_unbilled_usage(tx: LedgerTransaction, delta: int) -> None:
    assert {Account.WALLET, Account.UNBILLED_USAGE} == BALANCE_ACCOUNTS
    assert tx.balance_delta == delta


def test_balances_sum_postings_per_account_and_to_zero() -> None:
    txs = [top_up(ORG, 20 * DOLLAR, "t"), usage_tx(ORG, 3 * DOLLAR, "u1"), usage_tx(ORG, 2 * DOLLAR, "u2"),
           usage_refund(ORG, DOLLAR, "r"), grant(ORG, 5 * DOLLAR, "g")]
    sums = balances(txs)
    assert set(sums) == set(Account)
    assert sums[Account.WALLET] == 25 * DOLLAR
    assert sums[Account.UNBILLED_USAGE] == -4 * DOLLAR
    assert sums[Account.REVENUE] == 4 * DOLLAR
    assert sums[Account.PAYMENT_CLEARING] == -20 * DOLLAR
    assert sums[Account.PROMOTIONAL_GRANTS] == -5 * DOLLAR
    assert sums[Account.RECEIVABLE] == sums[Account.REFUNDS] == 0
    assert sum(sums.values()) == 0
    assert credit_balance(sums) == 21 * DOLLAR
    assert balances([]) == dict.fromkeys(Account, 0)
    assert credit_balance({}) == 0


def test_check_balanced_catches_a_hand_built_transaction() -> None:
    check_balanced(top_up(ORG, DOLLAR, "t"))
    forged = LedgerTransaction(id=uuid.uuid4(), organization_id=ORG, idempotency_key="f", kind=EntryKind.ADJUSTMENT,
                               description="forged", reason=None, created_at=NOW,
                               postings=(Posting(Account.WALLET, 10), Posting(Account.REVENUE, -9)))
    with pytest.raises(LedgerImbalance) as info:
        check_balanced(forged)
    assert info.value.total == 1


def test_transactions_are_frozen() -> None:
    tx = top_up(ORG, DOLLAR, "t")
    with pytest.raises(AttributeError):
        tx.description = "changed"  # type: ignore[misc]
