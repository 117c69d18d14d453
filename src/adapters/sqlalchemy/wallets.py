"""The wallet (the debit hot path) and the ledger it appends to.

Every balance change is one transaction-scoped critical section on the organization's wallet row:

1. ``SELECT ... FOR UPDATE`` the wallet (PostgreSQL); on SQLite the unit of work already holds
   the database's write lock (``BEGIN IMMEDIATE``), so the plain ``SELECT`` is just as exclusive.
2. :func:`billing_core.spend_guard.decide` (debits only), then
   :func:`billing_core.wallet.apply_spend` and :func:`~billing_core.wallet.apply_transaction` on
   the loaded struct: the same code the in-memory adapter runs, so the rules cannot drift.
3. ``INSERT`` the ledger transaction ``ON CONFLICT (organization_id, idempotency_key) DO NOTHING
   RETURNING seq``: no row back means the key was used before, and the replay is answered from the
   stored transaction with nothing written. The duplicate is detected by the write itself.
4. ``INSERT`` the postings and ``UPDATE`` the wallet row (guarded by its version).

A denied debit writes nothing; whether its key is a replay is then read while the wallet lock is
held, which no concurrent writer of that organization's ledger can pass.

The statements are built once per process and reused with bound parameters, which keeps the hot
path inside SQLAlchemy's compiled-statement cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapters.sqlalchemy import rows
from adapters.sqlalchemy.base import AnyRow, AnySelect, SqlAlchemyRepository
from adapters.sqlalchemy.tables import ledger_postings, ledger_transactions, wallets
from billing_core.errors import Conflict, InvalidInput, NotFound
from billing_core.ledger import Account, EntryKind, LedgerTransaction, check_balanced
from billing_core.ports import DebitOutcome, Page, Posted
from billing_core.spend_guard import Decision, decide
from billing_core.wallet import (
    SpendLimits,
    SubscriptionGate,
    WalletAccount,
    apply_spend,
    apply_transaction,
    check_debit,
)

_w, _t, _p = wallets.c, ledger_transactions.c, ledger_postings.c
_Rows = list[AnyRow]

_LOCK_WALLET = select(wallets).where(_w.organization_id == bindparam("org")).with_for_update()
_GET_WALLET = select(wallets).where(_w.organization_id == bindparam("org"))


def _insert_transaction(dialect: Any) -> Any:
    return (dialect.insert(ledger_transactions)
            .on_conflict_do_nothing(index_elements=["organization_id", "idempotency_key"])
            .returning(_t.seq))


_INSERT_TX = {"postgresql": _insert_transaction(postgresql), "sqlite": _insert_transaction(sqlite)}
# executemany of one cached statement: a multi-row VALUES would be recompiled on every call
# (SQLAlchemy cannot cache it); psycopg pipelines the executemany into one round trip.
_INSERT_POSTINGS = insert(ledger_postings)
_WHERE_WALLET = (_w.organization_id == bindparam("b_org")) & (_w.version == bindparam("b_version"))
_UPDATE_BALANCES = update(wallets).where(_WHERE_WALLET).values(
    wallet_micros=bindparam("b_wallet"), unbilled_micros=bindparam("b_unbilled"), version=bindparam("b_new_version"))
_UPDATE_AFTER_DEBIT = update(wallets).where(_WHERE_WALLET).values(
    wallet_micros=bindparam("b_wallet"), unbilled_micros=bindparam("b_unbilled"), version=bindparam("b_new_version"),
    spend_day=bindparam("b_spend_day"), spent_today_micros=bindparam("b_today"),
    spent_yesterday_micros=bindparam("b_yesterday"), spend_month=bindparam("b_month"),
    spent_month_micros=bindparam("b_month_micros"))
_TX_WITH_POSTINGS = (
    select(ledger_transactions, _p.account, _p.amount_micros)
    .join(ledger_postings, _p.transaction_seq == _t.seq)
    .where(_t.organization_id == bindparam("org"), _t.idempotency_key == bindparam("key"))
    .order_by(_p.line_no)
)


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

    def post(self, tx: LedgerTransaction) -> Posted:
        check_balanced(tx)
        wallet = rows.wallet_from_row(self._lock(tx.organization_id))
        version = wallet.version
        stored = apply_transaction(wallet, tx)
        seq = self._append(stored)
        if seq is None:
            return Posted(self._by_key(tx.organization_id, tx.idempotency_key), replayed=True)
        self._update(_UPDATE_BALANCES, _balance_params(wallet, version))
        return Posted(stored, replayed=False)

    def debit(self, organization_id: uuid.UUID, amount_micros: int, now: datetime,
              tx: LedgerTransaction) -> DebitOutcome:
        _check_same_organization(organization_id, tx)
        check_balanced(tx)
        check_debit(amount_micros, tx)
        row = self._lock(organization_id)
        wallet = rows.wallet_from_row(row)
        decision = decide(wallet, amount_micros, now)
        if not decision.allowed:
            first = self._find_by_key(organization_id, tx.idempotency_key)
            if first is not None:
                return DebitOutcome(decision=Decision(allowed=True), transaction=first, replayed=True, wallet=wallet)
            return DebitOutcome(decision=decision, transaction=None, replayed=False, wallet=wallet)
        version = wallet.version
        apply_spend(wallet, amount_micros, now)
        stored = apply_transaction(wallet, tx)
        seq = self._append(stored)
        if seq is None:
            return DebitOutcome(decision=Decision(allowed=True), replayed=True, wallet=rows.wallet_from_row(row),
                                transaction=self._by_key(organization_id, tx.idempotency_key))
        params = _balance_params(wallet, version)
        params.update(b_spend_day=wallet.spend_day, b_today=wallet.spent_today_micros,
                      b_yesterday=wallet.spent_yesterday_micros, b_month=wallet.spend_month,
                      b_month_micros=wallet.spent_month_micros)
        self._update(_UPDATE_AFTER_DEBIT, params)
        return DebitOutcome(decision=decision, transaction=stored, replayed=False, wallet=wallet)

    def set_limits(self, organization_id: uuid.UUID, limits: SpendLimits) -> None:
        self._set(organization_id, rows.limits_values(limits))

    def set_gate(self, organization_id: uuid.UUID, gate: SubscriptionGate) -> None:
        self._set(organization_id, rows.gate_values(gate))

    # ------------------------------------------------------------------ internals

    def _set(self, organization_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        with self._guarded():
            result = self._execute(update(wallets).where(_w.organization_id == organization_id).values(values))
        if result.rowcount == 0:
            raise NotFound("wallet", organization_id)

    def _lock(self, organization_id: uuid.UUID) -> AnyRow:
        row = self._execute(_LOCK_WALLET, {"org": organization_id}).first()
        if row is None:
            raise NotFound("wallet", organization_id)
        return row

    def _update(self, statement: Any, params: dict[str, Any]) -> None:
        if self._execute(statement, params).rowcount != 1:
            # The row changed under the lock we hold: only possible if something bypassed it.
            raise Conflict("the wallet changed concurrently; retry", code="concurrent_update")

    def _append(self, tx: LedgerTransaction) -> int | None:
        """Insert the transaction and its postings; None when the key was used before."""
        seq = self._execute(_INSERT_TX[self._uow.dialect], rows.transaction_values(tx)).scalar()
        if seq is None:
            return None
        self._execute(_INSERT_POSTINGS, rows.posting_values(seq, tx))
        return int(seq)

    def _find_by_key(self, organization_id: uuid.UUID, key: str) -> LedgerTransaction | None:
        found = self._execute(_TX_WITH_POSTINGS, {"org": organization_id, "key": key}).all()
        return rows.transaction_from_row(found[0], found) if found else None

    def _by_key(self, organization_id: uuid.UUID, key: str) -> LedgerTransaction:
        first = self._find_by_key(organization_id, key)
        if first is None:  # pragma: no cover - the conflicting row is visible under the wallet lock
            raise Conflict("the idempotency key is being used concurrently; retry", code="concurrent_update")
        return first


def _balance_params(wallet: WalletAccount, version: int) -> dict[str, Any]:
    return {"b_org": wallet.organization_id, "b_version": version, "b_wallet": wallet.wallet_micros,
            "b_unbilled": wallet.unbilled_micros, "b_new_version": wallet.version}


class SqlAlchemyLedgerRepository(SqlAlchemyRepository):
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
