"""The wallet (the debit hot path) and the ledger it appends to.

Every balance change is one transaction-scoped critical section on the organization's wallet row:

1. ``SELECT ... FOR UPDATE`` the wallet (PostgreSQL); on SQLite the unit of work already holds
   the database's write lock (``BEGIN IMMEDIATE``), so the plain ``SELECT`` is just as exclusive.
2. :func:`billing_core.spend_guard.decide_and_apply` (debits; ``post`` only
   :func:`~billing_core.wallet.apply_transaction`) on the loaded struct: the same function the
   in-memory adapter and ``report_usage`` run, so neither the rule nor the sequence can drift.
3. ``INSERT`` the ledger transaction ``ON CONFLICT (organization_id, idempotency_key) DO NOTHING
   RETURNING seq``: no row back means the key was used before, and the replay is answered from the
   stored transaction with nothing written. The duplicate is detected by the write itself.
4. ``INSERT`` the postings and ``UPDATE`` the wallet row (guarded by its version).

A denied debit writes nothing; whether its key is a replay is then read while the wallet lock is
held, which no concurrent writer of that organization's ledger can pass.

Steps 1, 3 and 4 run at the driver level (:mod:`adapters.sqlalchemy.driver`, ADR 0007); on
PostgreSQL steps 3 and 4 are one statement. Reads off the hot path (replays, lists, sums) stay
SQLAlchemy Core.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import bindparam, func, select, update

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import AnyRow, AnySelect, SqlAlchemyRepository
from adapters.sqlalchemy.budgets import SqlAlchemyBudgetRepository
from adapters.sqlalchemy.tables import ledger_postings, ledger_transactions, wallets
from billing_core.errors import ConcurrentUpdate, InvalidInput, NotFound
from billing_core.ledger import Account, BalanceMove, EntryKind, LedgerTransaction, check_balanced
from billing_core.ports import DebitOutcome, DebitRequest, Page, Posted, Sequenced
from billing_core.spend_guard import Decision, decide_and_apply, decide_many
from billing_core.wallet import (
    SpendLimits,
    SubscriptionGate,
    WalletAccount,
    apply_transaction,
    check_debit,
    give_back_spend,
)

_w, _t, _p = wallets.c, ledger_transactions.c, ledger_postings.c
_Rows = list[AnyRow]

_GET_WALLET = select(wallets).where(_w.organization_id == bindparam("org"))
_TX_WITH_POSTINGS = (
    select(ledger_transactions, _p.account, _p.amount_micros)
    .join(ledger_postings, _p.transaction_seq == _t.seq)
    .where(_t.organization_id == bindparam("org"), _t.idempotency_key == bindparam("key"))
    .order_by(_p.line_no)
)


_TXS_WITH_POSTINGS = (
    select(ledger_transactions, _p.account, _p.amount_micros)
    .join(ledger_postings, _p.transaction_seq == _t.seq)
    .where(_t.organization_id == bindparam("org"), _t.idempotency_key.in_(bindparam("keys", expanding=True)))
    .order_by(_t.seq, _p.line_no)
)
# Under SQLite's smallest compiled-in limit of bound parameters (999).
_KEYS_PER_QUERY = 500


def _check_same_organization(organization_id: uuid.UUID, tx: LedgerTransaction) -> None:
    if tx.organization_id != organization_id:
        raise InvalidInput("organization_id", "transaction belongs to another organization")


class SqlAlchemyWalletRepository(SqlAlchemyRepository):
    def create(self, wallet: WalletAccount) -> None:
        with self._guarded():
            self._execute(self._insert(wallets).on_conflict_do_nothing(index_elements=["organization_id"]),
                          rows.wallet_values(wallet))

    def get(self, organization_id: uuid.UUID) -> WalletAccount:
        row = self._execute(_GET_WALLET, {"org": organization_id}).first()
        if row is None:
            raise NotFound("wallet", organization_id)
        return rows.wallet_from_row(row)

    def lock(self, organization_id: uuid.UUID) -> WalletAccount:
        return self._lock(organization_id)

    def post(self, tx: LedgerTransaction, *, gives_back_spend_of: datetime | None = None) -> Posted:
        check_balanced(tx)
        wallet = self._lock(tx.organization_id)
        version = wallet.version
        if gives_back_spend_of is not None:
            # On the loaded wallet: a replay writes nothing, so it gives nothing back.
            give_back_spend(wallet, tx.balance_delta, gives_back_spend_of, tx.created_at)
        stored = apply_transaction(wallet, tx)
        if self._uow.driver.write(stored, wallet, version) is None:
            return Posted(self._by_key(tx.organization_id, tx.idempotency_key), replayed=True)
        return Posted(stored, replayed=False)

    def debit(self, organization_id: uuid.UUID, amount_micros: int, now: datetime,
              tx: LedgerTransaction, *, project_id: uuid.UUID | None = None,
              token_id: uuid.UUID | None = None) -> DebitOutcome:
        _check_same_organization(organization_id, tx)
        check_balanced(tx)
        check_debit(amount_micros, tx)
        wallet = self._lock(organization_id)
        before = copy.copy(wallet)
        budgets = self._budgets.for_call(organization_id, project_id, token_id) if wallet.scoped_budgets else []
        decision, stored = decide_and_apply(wallet, amount_micros, now, tx, budgets)
        if stored is None:
            first = self._find_by_key(organization_id, tx.idempotency_key)
            if first is not None:
                return DebitOutcome(decision=Decision(allowed=True), transaction=first, replayed=True, wallet=wallet)
            return DebitOutcome(decision=decision, transaction=None, replayed=False, wallet=wallet)
        if self._uow.driver.write(stored, wallet, before.version) is None:
            return DebitOutcome(decision=Decision(allowed=True), replayed=True, wallet=before,
                                transaction=self._by_key(organization_id, tx.idempotency_key))
        self._budgets.save(budgets)
        return DebitOutcome(decision=decision, transaction=stored, replayed=False, wallet=wallet)

    def debit_many(self, organization_id: uuid.UUID, debits: Sequence[DebitRequest],
                   now: datetime, *, locked: WalletAccount | None = None,
                   stored_keys: Collection[str] | None = None) -> list[DebitOutcome]:
        """:meth:`debit` in order under one lock: replays are read once for the whole batch while
        the lock is held (which every writer of the organization's ledger takes first), decisions
        run against the running wallet, and the rows are written in bulk at the end, the wallet
        update with them (one statement on PostgreSQL). With ``locked`` (read under this
        transaction's lock) the row is not locked and read again: the version-guarded update at the
        end refuses a wallet that is no longer the stored one; with ``stored_keys`` too (read under
        that lock) the replays are not read again, and the insert, which skips a used key, refuses
        a batch in which one was missing from them."""
        for request in debits:
            _check_same_organization(organization_id, request.transaction)
            check_balanced(request.transaction)
            check_debit(request.amount_micros, request.transaction)
        if locked is not None and locked.organization_id != organization_id:
            raise InvalidInput("locked", "the locked wallet is another organization's")
        if stored_keys is not None and locked is None:
            raise InvalidInput("stored_keys", "stored_keys are read under the lock of a locked wallet")
        if not debits:
            return []
        wallet = self._lock(organization_id) if locked is None else copy.copy(locked)
        version = wallet.version
        keys = [r.transaction.idempotency_key for r in debits]
        replays = self._uow.driver.stored_keys(organization_id, keys) if stored_keys is None \
            else set(stored_keys).intersection(keys)
        # Every budget of the organization once, when it has some; each debit decides on those of its scopes.
        batch = decide_many(wallet, debits, now, used=replays,
                            budgets=self._budgets.list(organization_id) if wallet.scoped_budgets else [])
        if batch.written:
            # A key the insert skips appeared although we hold the lock every ledger writer takes
            # (or was missing from ``stored_keys``): the driver refuses the batch.
            self._uow.driver.append_with_wallet(batch.written, wallet, version)
            self._budgets.save(batch.budgets)
        if not replays:
            return batch.outcomes
        earlier = self._by_keys(organization_id, sorted(replays))
        return [msgspec.structs.replace(outcome, transaction=earlier[request.transaction.idempotency_key])
                if outcome.replayed and outcome.transaction is None else outcome
                for request, outcome in zip(debits, batch.outcomes, strict=True)]

    def set_limits(self, organization_id: uuid.UUID, limits: SpendLimits) -> None:
        self._set(organization_id, rows.limits_values(limits))

    def set_gate(self, organization_id: uuid.UUID, gate: SubscriptionGate) -> None:
        self._set(organization_id, rows.gate_values(gate))

    # ------------------------------------------------------------------ internals

    @property
    def _budgets(self) -> SqlAlchemyBudgetRepository:
        return self._uow.budgets

    def _set(self, organization_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        with self._guarded():
            result = self._execute(update(wallets).where(_w.organization_id == organization_id).values(values))
        if result.rowcount == 0:
            raise NotFound("wallet", organization_id)

    def _lock(self, organization_id: uuid.UUID) -> WalletAccount:
        wallet = self._uow.driver.lock_wallet(organization_id)
        if wallet is None:
            raise NotFound("wallet", organization_id)
        return wallet

    def _find_by_key(self, organization_id: uuid.UUID, key: str) -> LedgerTransaction | None:
        found = self._execute(_TX_WITH_POSTINGS, {"org": organization_id, "key": key}).all()
        return rows.transaction_from_row(found[0], found) if found else None

    def _by_keys(self, organization_id: uuid.UUID, keys: Sequence[str]) -> dict[str, LedgerTransaction]:
        """The stored transactions among ``keys``, by key."""
        found: dict[str, LedgerTransaction] = {}
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            rows_by_key: dict[str, _Rows] = {}
            chunk = keys[start:start + _KEYS_PER_QUERY]
            for row in self._execute(_TXS_WITH_POSTINGS, {"org": organization_id, "keys": chunk}):
                rows_by_key.setdefault(row.idempotency_key, []).append(row)
            found.update((key, rows.transaction_from_row(group[0], group)) for key, group in rows_by_key.items())
        return found

    def _by_key(self, organization_id: uuid.UUID, key: str) -> LedgerTransaction:
        first = self._find_by_key(organization_id, key)
        if first is None:  # pragma: no cover - the conflicting row is visible under the wallet lock
            raise ConcurrentUpdate("the idempotency key is being used concurrently; retry")
        return first


class SqlAlchemyLedgerRepository(SqlAlchemyRepository):
    def after(self, organization_id: uuid.UUID, sequence: int, limit: int = 500) -> list[Sequenced]:
        """Oldest first from the (organization, seq) index."""
        if type(limit) is not int or limit < 1:
            raise InvalidInput("limit", "limit must be at least 1")
        query = (select(ledger_transactions).where(_t.organization_id == organization_id, _t.seq > sequence)
                 .order_by(_t.seq).limit(limit))
        found = self._execute(query).all()
        postings = self._postings([row.seq for row in found])
        return [Sequenced(int(row.seq), rows.transaction_from_row(row, postings.get(row.seq, ()))) for row in found]

    def balance_moves(self, organization_id: uuid.UUID, sequence: int, limit: int = 500) -> list[BalanceMove]:
        """One statement at the driver level (ADR 0007; the worker reads every usage debit once):
        the (organization, seq) index, and per row the sum of its postings to the balance accounts
        (their primary key starts with the transaction's seq)."""
        if type(limit) is not int or limit < 1:
            raise InvalidInput("limit", "limit must be at least 1")
        return self._uow.driver.balance_moves(organization_id, sequence, limit)

    def balance_move(self, organization_id: uuid.UUID, transaction_id: uuid.UUID) -> BalanceMove | None:
        return self._uow.driver.balance_move(organization_id, transaction_id)

    def get_by_key(self, organization_id: uuid.UUID, idempotency_key: str) -> LedgerTransaction | None:
        found = self._execute(_TX_WITH_POSTINGS, {"org": organization_id, "key": idempotency_key}).all()
        return rows.transaction_from_row(found[0], found) if found else None

    def list(self, organization_id: uuid.UUID, *, kinds: frozenset[EntryKind] | None = None,
             limit: int = 50, cursor: str | None = None) -> Page[LedgerTransaction]:
        """Newest first in append order. The cursor is the append sequence of the last item (keyset
        paging: a page costs the same however deep it is)."""
        if type(limit) is not int or limit < 1:
            raise InvalidInput("limit", "limit must be at least 1")
        query = select(ledger_transactions).where(_t.organization_id == organization_id)
        if cursor:
            if not cursor.isdigit() or not cursor.isascii():
                raise InvalidInput("cursor", "cursor is not valid")
            query = query.where(_t.seq < int(cursor))
        if kinds is not None:
            query = query.where(_t.kind.in_(sorted(k.value for k in kinds)))
        found = self._execute(query.order_by(_t.seq.desc()).limit(limit + 1)).all()
        page = found[:limit]
        postings = self._postings([row.seq for row in page])
        items = [rows.transaction_from_row(row, postings.get(row.seq, ())) for row in page]
        return Page(items=items, next_cursor=str(page[-1].seq) if len(found) > limit else None)

    def _postings(self, seqs: Sequence[int]) -> dict[int, _Rows]:
        grouped: dict[int, _Rows] = {}
        if not seqs:
            return grouped
        query = (select(_p.transaction_seq, _p.account, _p.amount_micros).where(_p.transaction_seq.in_(seqs))
                 .order_by(_p.transaction_seq, _p.line_no))
        for row in self._execute(query):
            grouped.setdefault(row.transaction_seq, []).append(row)
        return grouped

    def account_sums(self, organization_id: uuid.UUID) -> Mapping[Account, int]:
        sums = dict.fromkeys(Account, 0)
        query: AnySelect = (select(_p.account, func.sum(_p.amount_micros)).where(_p.organization_id == organization_id)
                 .group_by(_p.account))
        for row in self._execute(query):
            sums[Account(row[0])] = int(row[1])
        return sums

    def account_sums_by_kind(self, organization_id: uuid.UUID, account: Account) -> Mapping[EntryKind, int]:
        """Driven by the postings' (organization, account) index: only that account's postings are
        read (for the wallet: purchases, grants and invoices, never the usage rows), each joined to
        its transaction by primary key."""
        sums = dict.fromkeys(EntryKind, 0)
        query: AnySelect = (
            select(_t.kind, func.sum(_p.amount_micros))
            .select_from(ledger_postings.join(ledger_transactions, _t.seq == _p.transaction_seq))
            .where(_p.organization_id == organization_id, _p.account == account.value)
            .group_by(_t.kind))
        for row in self._execute(query):
            sums[EntryKind(row[0])] = int(row[1])
        return sums
