"""The double-entry credit ledger.

Every change to credits is a :class:`LedgerTransaction` of two or more postings that sum to zero.
Each organization has the accounts of :class:`Account`. Signs are from the organization's side:
a positive ``wallet`` balance is credit it owns; ``unbilled_usage`` is negative while usage waits
for an invoice; ``receivable`` is negative while the organization owes cash.

The balance history and the usage feed are views of this one ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.errors import InvalidInput, LedgerImbalance
from billing_core.ids import time_ordered_id
from billing_core.money import MAX_MICROS


class Account(StrEnum):
    WALLET = "wallet"
    """Settled credits: purchases and grants in, invoice applications out ("Total Credits")."""
    UNBILLED_USAGE = "unbilled_usage"
    """Usage debited in real time and not yet invoiced ("Usage This Period", negative)."""
    RECEIVABLE = "receivable"
    """Cash the organization owes for overage placed on an invoice."""
    REVENUE = "revenue"
    PAYMENT_CLEARING = "payment_clearing"
    PROMOTIONAL_GRANTS = "promotional_grants"
    REFUNDS = "refunds"


# The accounts that make up the real-time credit balance the console shows.
BALANCE_ACCOUNTS = frozenset({Account.WALLET, Account.UNBILLED_USAGE})


class EntryKind(StrEnum):
    TOP_UP = "top_up"
    CREDIT_PACK = "credit_pack"
    AUTO_RECHARGE = "auto_recharge"
    GRANT = "grant"
    GRANT_EXPIRY = "grant_expiry"
    USAGE = "usage"
    AUTOMATIC_REFUND = "automatic_refund"
    INVOICE_CREDIT_APPLIED = "invoice_credit_applied"
    INVOICE_PAYMENT = "invoice_payment"
    PAYMENT_REVERSAL = "payment_reversal"
    CREDIT_REFUND = "credit_refund"
    ADJUSTMENT = "manual_adjustment"


class Posting(msgspec.Struct, frozen=True, gc=False):
    account: Account
    amount_micros: int


class LedgerTransaction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A balanced set of postings, applied at most once per ``idempotency_key`` and organization.

    ``wallet_balance_after`` is the real-time credit balance (wallet + unbilled usage) once the
    transaction is applied; storage fills it in when it appends the transaction.

    Like the other value structs kept by the million (postings, usage events, buckets, wallets),
    it is not tracked by the cyclic garbage collector (``gc=False``): its fields are values, so no
    cycle can form, and every tracked survivor makes each full collection rescan it.
    """

    id: uuid.UUID
    organization_id: uuid.UUID
    idempotency_key: str
    kind: EntryKind
    description: str
    reason: str | None
    created_at: datetime
    postings: tuple[Posting, ...]
    reference: str | None = None
    wallet_balance_after: int | None = None

    @property
    def balance_delta(self) -> int:
        """How much this transaction moves the real-time credit balance."""
        return sum(p.amount_micros for p in self.postings if p.account in BALANCE_ACCOUNTS)

    def delta(self, account: Account) -> int:
        return sum(p.amount_micros for p in self.postings if p.account == account)


class BalanceMove(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What the grant projection (:func:`billing_core.grants.allocate`, ADR 0016) reads of a ledger
    transaction: its place in the append order, identity, kind, time, reference and how much it
    moves the real-time balance, without its description or postings
    (:meth:`billing_core.ports.LedgerRepository.balance_moves`)."""

    sequence: int
    id: uuid.UUID
    idempotency_key: str
    kind: EntryKind
    created_at: datetime
    reference: str | None
    balance_delta: int
    """The sum of the transaction's postings to the balance accounts (wallet, unbilled usage)."""

    @classmethod
    def of(cls, sequence: int, tx: LedgerTransaction) -> BalanceMove:
        return cls(sequence=sequence, id=tx.id, idempotency_key=tx.idempotency_key, kind=tx.kind,
                   created_at=tx.created_at, reference=tx.reference, balance_delta=tx.balance_delta)


def transaction(*, organization_id: uuid.UUID, idempotency_key: str, kind: EntryKind, description: str,
                created_at: datetime, postings: Sequence[tuple[Account, int]], reason: str | None = None,
                reference: str | None = None, transaction_id: uuid.UUID | None = None) -> LedgerTransaction:
    """Build a transaction, refusing it unless it balances and every posting is a real amount. Its id,
    unless given, is time-ordered (:func:`~billing_core.ids.time_ordered_id`, ADR 0021)."""
    if not idempotency_key or len(idempotency_key) > 255:
        raise InvalidInput("idempotency_key", "idempotency key must be 1 to 255 characters")
    if len(postings) < 2:
        raise InvalidInput("postings", "a transaction needs at least two postings")
    built = []
    for account, amount in postings:
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_MICROS:
            raise InvalidInput("postings", f"posting to {account} must be a non-zero integer in range")
        # The enum's constructor is a slow Python call: skip it for what is an Account already.
        built.append(Posting(account if type(account) is Account else Account(account), amount))
    total = sum(p.amount_micros for p in built)
    if total != 0:
        raise LedgerImbalance(total)
    return LedgerTransaction(
        id=transaction_id or time_ordered_id(), organization_id=organization_id, idempotency_key=idempotency_key,
        kind=kind, description=description, reason=reason, created_at=created_at, postings=tuple(built),
        reference=reference,
    )


def transfer(*, organization_id: uuid.UUID, idempotency_key: str, kind: EntryKind, description: str,
             created_at: datetime, source: Account, target: Account, amount_micros: int,
             reason: str | None = None, reference: str | None = None) -> LedgerTransaction:
    """Move ``amount_micros`` from ``source`` to ``target``: the common two-posting transaction."""
    return transaction(organization_id=organization_id, idempotency_key=idempotency_key, kind=kind,
                       description=description, created_at=created_at, reason=reason, reference=reference,
                       postings=[(target, amount_micros), (source, -amount_micros)])


def balances(transactions: Iterable[LedgerTransaction]) -> dict[Account, int]:
    """Sum postings per account."""
    result: dict[Account, int] = dict.fromkeys(Account, 0)
    for tx in transactions:
        for posting in tx.postings:
            result[posting.account] += posting.amount_micros
    return result


def credit_balance(account_balances: Mapping[Account, int]) -> int:
    """The real-time credit balance: settled wallet plus (negative) unbilled usage."""
    return sum(account_balances.get(a, 0) for a in BALANCE_ACCOUNTS)


def check_balanced(tx: LedgerTransaction) -> None:
    """Raise :class:`LedgerImbalance` unless the postings sum to zero."""
    total = sum(p.amount_micros for p in tx.postings)
    if total != 0:
        raise LedgerImbalance(total)
