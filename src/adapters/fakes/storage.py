"""In-memory storage: every repository and the unit of work, with real rollback.

One :class:`InMemoryStore` is the database; each :class:`InMemoryUnitOfWork` holds the store's lock
from ``with`` to exit, so units of work run one at a time, which makes every debit atomic. Every
write is journaled and undone when the unit of work ends without ``commit()``. Stored objects are
copies, so callers cannot change stored state behind the unit of work's back.
"""

from __future__ import annotations

import builtins
import copy
import threading
import uuid
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import msgspec

from billing_core.billing_settings import BillingSettings, TaxRegistration
from billing_core.budgets import SCOPED, BudgetScope, ScopedBudget
from billing_core.checkout import CheckoutSession, CheckoutStatus
from billing_core.einvoice import EInvoice
from billing_core.errors import (
    ConcurrentUpdate,
    Conflict,
    Duplicate,
    DuplicateInvoice,
    DuplicateTaxRegistration,
    InvalidInput,
    NotFound,
    PlanChangeExists,
)
from billing_core.grants import Grant, GrantTerms, MovementSpan
from billing_core.holds import Hold, HoldStatus
from billing_core.invoices import Invoice
from billing_core.ledger import Account, BalanceMove, EntryKind, LedgerTransaction, check_balanced
from billing_core.organization import ApiToken, Credential, Membership, Organization
from billing_core.outbox import OutboxDepth, OutboxMessage, OutboxStatus
from billing_core.payments import Payment, PaymentMethod
from billing_core.plan_change import PlanChange, PlanChangeStatus
from billing_core.plan_subscription import PlanSubscription
from billing_core.ports import (
    DebitChunk,
    DebitOutcome,
    DebitRequest,
    GrantCursor,
    Page,
    Posted,
    Sequenced,
    StoredResponse,
    UsageSnapshot,
)
from billing_core.product_subscription import ProductSubscription, covered
from billing_core.refund_policy import RefundRequest, RefundStatus
from billing_core.spend_guard import Decision, decide_and_apply
from billing_core.usage import HourlyUsage, UsageEvent, sort_buckets, truncate_to_hour
from billing_core.wallet import (
    SpendLimits,
    SubscriptionGate,
    WalletAccount,
    apply_spend,
    apply_transaction,
    check_debit,
    give_back_spend,
)

T = TypeVar("T")
_MISSING = object()


def _copy(value: T) -> T:
    """Stored rows are msgspec structs whose fields are immutable values (frozen structs, tuples,
    strings, datetimes), so a shallow copy isolates them; an outbox payload is a dict and is copied
    deeply."""
    if isinstance(value, msgspec.Struct) and not isinstance(value, OutboxMessage):
        return copy.copy(value)
    return copy.deepcopy(value)


def _page(items: list[T], limit: int, cursor: str | None) -> Page[T]:
    """Offset cursors over an already ordered list."""
    if limit < 1:
        raise InvalidInput("limit", "limit must be at least 1")
    try:
        start = int(cursor) if cursor else 0
    except ValueError as exc:
        raise InvalidInput("cursor", "cursor is not valid") from exc
    if start < 0:
        raise InvalidInput("cursor", "cursor is not valid")
    chunk = items[start:start + limit]
    nxt = str(start + limit) if start + limit < len(items) else None
    return Page(items=[_copy(i) for i in chunk], next_cursor=nxt)


class InMemoryStore:
    """The tables. Shared by every unit of work made from it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.organizations: dict[uuid.UUID, Organization] = {}
        self.memberships: dict[tuple[uuid.UUID, str], Membership] = {}
        self.tokens: dict[str, ApiToken] = {}
        self.wallets: dict[uuid.UUID, WalletAccount] = {}
        self.holds: dict[uuid.UUID, Hold] = {}
        self.budgets: dict[tuple[uuid.UUID, BudgetScope, uuid.UUID], ScopedBudget] = {}
        self.grants: dict[uuid.UUID, Grant] = {}
        # Movements in append order (key: position), cursors and terms per organization.
        self.grant_movements: dict[int, MovementSpan] = {}
        self.grant_cursors: dict[uuid.UUID, GrantCursor] = {}
        self.grant_terms: dict[tuple[uuid.UUID, str], GrantTerms] = {}
        self.ledger: dict[uuid.UUID, LedgerTransaction] = {}
        self.ledger_keys: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        self.plan_subscriptions: dict[uuid.UUID, PlanSubscription] = {}
        self.product_subscriptions: dict[uuid.UUID, ProductSubscription] = {}
        self.usage_events: dict[tuple[uuid.UUID, str], UsageEvent] = {}
        self.buckets: dict[tuple[Any, ...], HourlyUsage] = {}
        self.invoices: dict[uuid.UUID, Invoice] = {}
        self.invoice_counters: dict[str, int] = {}
        self.issued_einvoices: dict[uuid.UUID, EInvoice] = {}
        self.payment_methods: dict[uuid.UUID, PaymentMethod] = {}
        self.settings: dict[uuid.UUID, BillingSettings] = {}
        self.tax_registrations: dict[uuid.UUID, TaxRegistration] = {}
        self.payments: dict[uuid.UUID, Payment] = {}
        self.refunds: dict[uuid.UUID, RefundRequest] = {}
        self.plan_changes: dict[uuid.UUID, PlanChange] = {}
        self.checkouts: dict[uuid.UUID, CheckoutSession] = {}
        self.outbox: dict[uuid.UUID, OutboxMessage] = {}
        self.outbox_keys: dict[str, uuid.UUID] = {}
        self.inbox: dict[tuple[str, str], datetime] = {}
        self.idempotency: dict[tuple[str, str], StoredResponse] = {}
        # job -> (period last completed, lease holder, lease end)
        self.scheduled_jobs: dict[str, tuple[str | None, str | None, datetime | None]] = {}
        self.commits = 0


class _Journal:
    """Old values of every written key, replayed backwards on rollback."""

    def __init__(self) -> None:
        self.entries: list[tuple[dict[Any, Any], Hashable, object]] = []

    def set(self, table: dict[Any, Any], key: Hashable, value: object) -> None:
        self.entries.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    def delete(self, table: dict[Any, Any], key: Hashable) -> None:
        self.entries.append((table, key, table.get(key, _MISSING)))
        table.pop(key, None)

    def undo(self) -> None:
        for table, key, old in reversed(self.entries):
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old
        self.entries.clear()


class _Repo:
    def __init__(self, store: InMemoryStore, journal: _Journal) -> None:
        self.s = store
        self.j = journal


def _owned(row: Any, organization_id: uuid.UUID, kind: str, key: object) -> Any:
    if row is None or row.organization_id != organization_id:
        raise NotFound(kind, key)
    return _copy(row)


class InMemoryOrganizationRepository(_Repo):
    def add(self, organization: Organization) -> None:
        if organization.id in self.s.organizations:
            raise Duplicate(f"organization {organization.id} exists")
        self.j.set(self.s.organizations, organization.id, _copy(organization))

    def get(self, organization_id: uuid.UUID) -> Organization:
        org = self.s.organizations.get(organization_id)
        if org is None:
            raise NotFound("organization", organization_id)
        return _copy(org)

    def save(self, organization: Organization) -> None:
        self.get(organization.id)
        customer = organization.provider_customer_id
        if customer is not None and any(o.provider_customer_id == customer and o.id != organization.id
                                        for o in self.s.organizations.values()):
            # The SQL schema's unique index: one organization per provider customer.
            raise Duplicate("the provider customer belongs to another organization")
        self.j.set(self.s.organizations, organization.id, _copy(organization))

    def by_provider_customer(self, customer_id: str) -> Organization | None:
        for org in self.s.organizations.values():
            if org.provider_customer_id == customer_id:
                return _copy(org)
        return None

    def ids(self) -> list[uuid.UUID]:
        return sorted(self.s.organizations, key=str)

    def add_membership(self, membership: Membership) -> None:
        self.j.set(self.s.memberships, (membership.organization_id, membership.user_id), membership)

    def membership(self, organization_id: uuid.UUID, user_id: str) -> Membership | None:
        return self.s.memberships.get((organization_id, user_id))

    def memberships_by_email(self, email: str) -> list[Membership]:
        wanted = email.casefold()
        return [m for m in self.s.memberships.values() if m.email.casefold() == wanted]

    def add_token(self, token: ApiToken) -> None:
        if token.token_hash in self.s.tokens:
            raise Duplicate("token exists")
        self.j.set(self.s.tokens, token.token_hash, token)

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        return self.s.tokens.get(token_hash)

    def find_token(self, organization_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
        for token in self.s.tokens.values():
            if token.id == token_id and token.organization_id == organization_id:
                return token
        return None

    def save_token(self, token: ApiToken) -> None:
        stored = self.s.tokens.get(token.token_hash)
        if stored is None or stored.organization_id != token.organization_id:
            raise NotFound("token", token.id)
        self.j.set(self.s.tokens, token.token_hash, token)

    def list_tokens(self, organization_id: uuid.UUID, *, limit: int = 50,
                    cursor: str | None = None) -> Page[ApiToken]:
        rows = sorted((t for t in self.s.tokens.values() if t.organization_id == organization_id),
                      key=lambda t: (t.created_at, str(t.id)))
        return _page(rows, limit, cursor)


class InMemoryWalletRepository(_Repo):
    def create(self, wallet: WalletAccount) -> None:
        if wallet.organization_id not in self.s.wallets:
            self.j.set(self.s.wallets, wallet.organization_id, _copy(wallet))

    def _wallet(self, organization_id: uuid.UUID) -> WalletAccount:
        wallet = self.s.wallets.get(organization_id)
        if wallet is None:
            raise NotFound("wallet", organization_id)
        return wallet

    def get(self, organization_id: uuid.UUID) -> WalletAccount:
        return _copy(self._wallet(organization_id))

    def lock(self, organization_id: uuid.UUID) -> WalletAccount:
        # The unit of work already holds the store's lock: units of work run one at a time.
        return self.get(organization_id)

    def _append(self, wallet: WalletAccount, tx: LedgerTransaction) -> LedgerTransaction:
        stored = apply_transaction(wallet, tx)
        self._store(stored)
        return stored

    def _store(self, stored: LedgerTransaction) -> None:
        self.j.set(self.s.ledger, stored.id, stored)
        self.j.set(self.s.ledger_keys, (stored.organization_id, stored.idempotency_key), stored.id)

    def post(self, tx: LedgerTransaction, *, gives_back_spend_of: datetime | None = None) -> Posted:
        check_balanced(tx)
        wallet = _copy(self._wallet(tx.organization_id))
        if gives_back_spend_of is not None:
            give_back_spend(wallet, tx.balance_delta, gives_back_spend_of, tx.created_at)
        first = self.s.ledger_keys.get((tx.organization_id, tx.idempotency_key))
        if first is not None:
            return Posted(self.s.ledger[first], replayed=True)
        stored = self._append(wallet, tx)
        self.j.set(self.s.wallets, wallet.organization_id, wallet)
        return Posted(stored, replayed=False)

    def debit(self, organization_id: uuid.UUID, amount_micros: int, now: datetime,
              tx: LedgerTransaction, *, project_id: uuid.UUID | None = None,
              token_id: uuid.UUID | None = None) -> DebitOutcome:
        _check_debit_request(organization_id, amount_micros, tx)
        first = self.s.ledger_keys.get((organization_id, tx.idempotency_key))
        if first is not None:
            return DebitOutcome(decision=Decision(allowed=True), transaction=self.s.ledger[first],
                                replayed=True, wallet=self.get(organization_id))
        wallet = _copy(self._wallet(organization_id))
        budgets = InMemoryBudgetRepository(self.s, self.j).for_call(organization_id, project_id, token_id) \
            if wallet.scoped_budgets else []
        decision, stored = decide_and_apply(wallet, amount_micros, now, tx, budgets)
        if stored is None:
            return DebitOutcome(decision=decision, transaction=None, replayed=False, wallet=wallet)
        self._store(stored)
        self.j.set(self.s.wallets, organization_id, wallet)
        InMemoryBudgetRepository(self.s, self.j).save(budgets)
        return DebitOutcome(decision=decision, transaction=stored, replayed=False, wallet=_copy(wallet))

    def debit_many(self, organization_id: uuid.UUID, debits: Sequence[DebitRequest],
                   now: datetime, *, locked: WalletAccount | None = None,
                   stored_keys: Collection[str] | None = None) -> list[DebitOutcome]:
        # The reference: the contract is "the same as debit() one by one", validated up front.
        for request in debits:
            _check_debit_request(organization_id, request.amount_micros, request.transaction)
        if locked is not None and locked.organization_id != organization_id:
            raise InvalidInput("locked", "the locked wallet is another organization's")
        if stored_keys is not None and locked is None:
            raise InvalidInput("stored_keys", "stored_keys are read under the lock of a locked wallet")
        if debits and locked is not None and locked.version != self._wallet(organization_id).version:
            raise ConcurrentUpdate("the wallet changed since it was locked; retry")
        if stored_keys is not None and any(
                (organization_id, r.transaction.idempotency_key) in self.s.ledger_keys
                and r.transaction.idempotency_key not in stored_keys for r in debits):
            raise ConcurrentUpdate("the idempotency key is being used concurrently; retry")
        return [self.debit(organization_id, r.amount_micros, now, r.transaction, project_id=r.project_id,
                           token_id=r.token_id) for r in debits]

    def set_limits(self, organization_id: uuid.UUID, limits: SpendLimits) -> None:
        wallet = _copy(self._wallet(organization_id))
        wallet.limits = limits
        self.j.set(self.s.wallets, organization_id, wallet)

    def set_gate(self, organization_id: uuid.UUID, gate: SubscriptionGate) -> None:
        wallet = _copy(self._wallet(organization_id))
        wallet.gate = gate
        self.j.set(self.s.wallets, organization_id, wallet)


class InMemoryBudgetRepository(_Repo):
    def list(self, organization_id: uuid.UUID) -> builtins.list[ScopedBudget]:
        found = [b for key, b in self.s.budgets.items() if key[0] == organization_id]
        found.sort(key=lambda b: (SCOPED.index(b.scope), str(b.scope_id)))
        return [_copy(b) for b in found]

    def find(self, organization_id: uuid.UUID, scope: BudgetScope, scope_id: uuid.UUID) -> ScopedBudget | None:
        budget = self.s.budgets.get((organization_id, scope, scope_id))
        return None if budget is None else _copy(budget)

    def for_call(self, organization_id: uuid.UUID, project_id: uuid.UUID | None,
                 token_id: uuid.UUID | None) -> builtins.list[ScopedBudget]:
        wanted = ((BudgetScope.PROJECT, project_id), (BudgetScope.TOKEN, token_id))
        return [_copy(self.s.budgets[(organization_id, scope, scope_id)]) for scope, scope_id in wanted
                if scope_id is not None and (organization_id, scope, scope_id) in self.s.budgets]

    def add(self, budget: ScopedBudget) -> bool:
        key = (budget.organization_id, budget.scope, budget.scope_id)
        wallet = self.s.wallets.get(budget.organization_id)
        if wallet is None:
            raise NotFound("wallet", budget.organization_id)
        if key in self.s.budgets:
            return False
        counted = _copy(wallet)
        counted.scoped_budgets += 1
        self.j.set(self.s.budgets, key, _copy(budget))
        self.j.set(self.s.wallets, budget.organization_id, counted)
        return True

    def save(self, budgets: Sequence[ScopedBudget]) -> None:
        for budget in budgets:
            key = (budget.organization_id, budget.scope, budget.scope_id)
            if key in self.s.budgets:
                self.j.set(self.s.budgets, key, _copy(budget))

    def remove(self, organization_id: uuid.UUID, scope: BudgetScope, scope_id: uuid.UUID) -> bool:
        key = (organization_id, scope, scope_id)
        if key not in self.s.budgets:
            return False
        wallet = _copy(self.s.wallets[organization_id])
        wallet.scoped_budgets -= 1
        self.j.delete(self.s.budgets, key)
        self.j.set(self.s.wallets, organization_id, wallet)
        return True


class InMemoryHoldRepository(_Repo):
    def _wallet(self, organization_id: uuid.UUID) -> WalletAccount:
        wallet = self.s.wallets.get(organization_id)
        if wallet is None:
            raise NotFound("wallet", organization_id)
        return _copy(wallet)

    def add(self, hold: Hold) -> bool:
        wallet = self._wallet(hold.organization_id)
        if hold.id in self.s.holds:
            return False
        wallet.held_micros += hold.amount_micros
        wallet.version += 1
        self.j.set(self.s.holds, hold.id, _copy(hold))
        self.j.set(self.s.wallets, hold.organization_id, wallet)
        return True

    def find(self, organization_id: uuid.UUID, hold_id: uuid.UUID) -> Hold | None:
        hold = self.s.holds.get(hold_id)
        return None if hold is None or hold.organization_id != organization_id else _copy(hold)

    def get(self, organization_id: uuid.UUID, hold_id: uuid.UUID) -> Hold:
        hold = self.find(organization_id, hold_id)
        if hold is None:
            raise NotFound("hold", hold_id)
        return hold

    def close(self, hold: Hold, *, now: datetime, charge: LedgerTransaction | None = None) -> bool:
        stored = self.s.holds.get(hold.id)
        if stored is None or stored.organization_id != hold.organization_id or stored.status != HoldStatus.ACTIVE:
            return False
        if charge is not None:
            _check_debit_request(hold.organization_id, -charge.balance_delta, charge)
            if (hold.organization_id, charge.idempotency_key) in self.s.ledger_keys:
                raise Conflict("the usage event id is in the ledger already", code="event_id_reused")
        wallet = self._wallet(hold.organization_id)
        wallet.held_micros -= stored.amount_micros
        wallet.version += 1
        if charge is not None:
            apply_spend(wallet, -charge.balance_delta, now)
            posted = apply_transaction(wallet, charge)
            self.j.set(self.s.ledger, posted.id, posted)
            self.j.set(self.s.ledger_keys, (charge.organization_id, charge.idempotency_key), posted.id)
        self.j.set(self.s.wallets, hold.organization_id, wallet)
        self.j.set(self.s.holds, hold.id, _copy(hold))
        return True

    def due(self, now: datetime, limit: int = 100) -> list[Hold]:
        rows = sorted((h for h in self.s.holds.values() if h.status == HoldStatus.ACTIVE and h.expires_at <= now),
                      key=lambda h: (h.expires_at, str(h.id)))
        return [_copy(h) for h in rows[:limit]]

    def active(self, organization_id: uuid.UUID) -> list[Hold]:
        rows = sorted((h for h in self.s.holds.values()
                       if h.organization_id == organization_id and h.status == HoldStatus.ACTIVE),
                      key=lambda h: (h.created_at, str(h.id)))
        return [_copy(h) for h in rows]

    def settled_by_event(self, organization_id: uuid.UUID, event_id: str) -> Hold | None:
        for hold in self.s.holds.values():
            if (hold.organization_id == organization_id and hold.status == HoldStatus.SETTLED
                    and hold.event_id == event_id):
                return _copy(hold)
        return None


def _check_debit_request(organization_id: uuid.UUID, amount_micros: int, tx: LedgerTransaction) -> None:
    if tx.organization_id != organization_id:
        raise InvalidInput("organization_id", "transaction belongs to another organization")
    check_balanced(tx)
    check_debit(amount_micros, tx)


class InMemoryGrantRepository(_Repo):
    def cursor(self, organization_id: uuid.UUID) -> GrantCursor:
        return self.s.grant_cursors.get(organization_id) or GrantCursor(organization_id=organization_id)

    def lock_cursor(self, organization_id: uuid.UUID) -> GrantCursor:
        # The unit of work already holds the store's lock: units of work run one at a time.
        return self.cursor(organization_id)

    def try_lock_cursor(self, organization_id: uuid.UUID) -> GrantCursor | None:
        return self.lock_cursor(organization_id)

    def _of(self, organization_id: uuid.UUID) -> list[Grant]:
        return [g for g in self.s.grants.values() if g.organization_id == organization_id]

    def open(self, organization_id: uuid.UUID) -> list[Grant]:
        return sorted((g for g in self._of(organization_id) if g.expired_by is None and g.remaining_micros > 0),
                      key=lambda g: (g.created_at, str(g.id)))

    def get_many(self, organization_id: uuid.UUID, grant_ids: Sequence[uuid.UUID]) -> list[Grant]:
        wanted = set(grant_ids)
        return [g for g in self._of(organization_id) if g.id in wanted]

    def list(self, organization_id: uuid.UUID) -> list[Grant]:
        # Newest first, then by id (the SQL adapter's order).
        by_id = sorted(self._of(organization_id), key=lambda g: str(g.id))
        return sorted(by_id, key=lambda g: g.created_at, reverse=True)

    def apply(self, cursor: GrantCursor, grants: Sequence[Grant], spans: Sequence[MovementSpan], *,
              expected_sequence: int) -> bool:
        org = cursor.organization_id
        if any(g.organization_id != org for g in grants) or any(m.organization_id != org for m in spans):
            raise InvalidInput("organization_id", "a grant row belongs to another organization")
        if cursor.uncovered_micros < 0 or any(not 0 <= g.remaining_micros <= g.amount_micros for g in grants):
            # The SQL schema's check constraints (translated as InvalidInput there too).
            raise InvalidInput("remaining_micros", "a grant's remaining must stay within its amount")
        if self.cursor(org).sequence != expected_sequence:
            return False
        if any(m.first_sequence > m.last_sequence for m in spans):  # the SQL schema's check
            raise InvalidInput("first_sequence", "a span covers append sequences from one to another")
        for grant in grants:  # checked before anything is written, as the SQL savepoint undoes all
            stored = self.s.grants.get(grant.id)
            if stored is not None and stored.organization_id != org:
                raise Conflict("grant id exists", code="constraint_violation")
        for grant in grants:
            self.j.set(self.s.grants, grant.id, grant)
        for span in spans:
            self.j.set(self.s.grant_movements, len(self.s.grant_movements) + 1, span)
        self.j.set(self.s.grant_cursors, org, cursor)
        return True

    def spans_at(self, organization_id: uuid.UUID, sequence: int) -> builtins.list[MovementSpan]:
        return [m for m in self.s.grant_movements.values()
                if m.organization_id == organization_id and m.first_sequence <= sequence <= m.last_sequence]

    def span_totals(self, organization_id: uuid.UUID) -> Mapping[tuple[int, int], int]:
        totals: dict[tuple[int, int], int] = {}
        for m in self.s.grant_movements.values():
            if m.organization_id == organization_id:
                key = (m.first_sequence, m.last_sequence)
                totals[key] = totals.get(key, 0) + m.amount_micros
        return totals

    def put_terms(self, terms: GrantTerms) -> None:
        key = (terms.organization_id, terms.idempotency_key)
        if key not in self.s.grant_terms:
            self.j.set(self.s.grant_terms, key, terms)

    def terms(self, organization_id: uuid.UUID, keys: Sequence[str]) -> dict[str, GrantTerms]:
        return {k: self.s.grant_terms[(organization_id, k)] for k in keys if (organization_id, k) in self.s.grant_terms}

    def due(self, now: datetime, limit: int = 100) -> builtins.list[Grant]:
        rows = sorted((g for g in self.s.grants.values() if g.expired_by is None and g.remaining_micros > 0
                       and g.expires_at is not None and g.expires_at <= now),
                      key=lambda g: (g.expires_at or now, str(g.id)))
        return rows[:limit]

    def behind(self, limit: int = 100) -> builtins.list[uuid.UUID]:
        last: dict[uuid.UUID, int] = {}
        for position, tx in enumerate(self.s.ledger.values(), start=1):
            last[tx.organization_id] = position
        late = [org for org, seq in last.items() if seq > self.cursor(org).sequence]
        return sorted(late, key=str)[:limit]


class InMemoryLedgerRepository(_Repo):
    def after(self, organization_id: uuid.UUID, sequence: int, limit: int = 500) -> list[Sequenced]:
        # The store's ledger is in append order: a transaction's position in it is its sequence
        # (units of work run one at a time, and a rollback only drops the newest rows).
        if type(limit) is not int or limit < 1:
            raise InvalidInput("limit", "limit must be at least 1")
        found: list[Sequenced] = []
        for position, tx in enumerate(self.s.ledger.values(), start=1):
            if position > sequence and tx.organization_id == organization_id:
                found.append(Sequenced(position, tx))
                if len(found) == limit:
                    break
        return found

    def balance_moves(self, organization_id: uuid.UUID, sequence: int, limit: int = 500) -> list[BalanceMove]:
        return [BalanceMove.of(s.sequence, s.transaction) for s in self.after(organization_id, sequence, limit)]

    def balance_move(self, organization_id: uuid.UUID, transaction_id: uuid.UUID) -> BalanceMove | None:
        for position, tx in enumerate(self.s.ledger.values(), start=1):
            if tx.id == transaction_id:
                return BalanceMove.of(position, tx) if tx.organization_id == organization_id else None
        return None

    def get_by_key(self, organization_id: uuid.UUID, idempotency_key: str) -> LedgerTransaction | None:
        tx_id = self.s.ledger_keys.get((organization_id, idempotency_key))
        return None if tx_id is None else self.s.ledger[tx_id]

    def _of(self, organization_id: uuid.UUID) -> list[LedgerTransaction]:
        return [tx for tx in self.s.ledger.values() if tx.organization_id == organization_id]

    def list(self, organization_id: uuid.UUID, *, kinds: frozenset[EntryKind] | None = None,
             limit: int = 50, cursor: str | None = None) -> Page[LedgerTransaction]:
        # Insertion order is append order; newest first is its reverse.
        rows = [tx for tx in reversed(self._of(organization_id)) if kinds is None or tx.kind in kinds]
        return _page(rows, limit, cursor)

    def account_sums(self, organization_id: uuid.UUID) -> Mapping[Account, int]:
        sums = dict.fromkeys(Account, 0)
        for tx in self._of(organization_id):
            for posting in tx.postings:
                sums[posting.account] += posting.amount_micros
        return sums

    def account_sums_by_kind(self, organization_id: uuid.UUID, account: Account) -> Mapping[EntryKind, int]:
        sums = dict.fromkeys(EntryKind, 0)
        for tx in self._of(organization_id):
            sums[tx.kind] += tx.delta(account)
        return sums


class InMemoryPlanSubscriptionRepository(_Repo):
    def add(self, subscription: PlanSubscription) -> None:
        if subscription.id in self.s.plan_subscriptions:
            raise Duplicate("subscription exists")
        provider_id = subscription.provider_subscription_id
        if provider_id is not None and self.by_provider_id(provider_id) is not None:
            raise Duplicate("duplicate value violates the provider subscription id's uniqueness")
        self.j.set(self.s.plan_subscriptions, subscription.id, _copy(subscription))

    def get(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> PlanSubscription:
        return _owned(self.s.plan_subscriptions.get(subscription_id), organization_id,  # type: ignore[no-any-return]
                      "subscription", subscription_id)

    def current(self, organization_id: uuid.UUID) -> PlanSubscription | None:
        rows = [s for s in self.s.plan_subscriptions.values() if s.organization_id == organization_id]
        return _copy(max(rows, key=lambda s: (s.created_at, str(s.id)))) if rows else None

    def by_provider_id(self, provider_subscription_id: str) -> PlanSubscription | None:
        for sub in self.s.plan_subscriptions.values():
            if sub.provider_subscription_id == provider_subscription_id:
                return _copy(sub)
        return None

    def list(self, organization_id: uuid.UUID) -> list[PlanSubscription]:
        rows = [s for s in self.s.plan_subscriptions.values() if s.organization_id == organization_id]
        return [_copy(s) for s in sorted(rows, key=lambda s: (s.created_at, str(s.id)))]

    def save(self, subscription: PlanSubscription) -> None:
        stored = self.s.plan_subscriptions.get(subscription.id)
        if stored is None or stored.organization_id != subscription.organization_id:
            raise NotFound("subscription", subscription.id)
        if stored.version != subscription.version:
            raise ConcurrentUpdate("the subscription changed meanwhile; retry")
        saved = msgspec.structs.replace(subscription, version=subscription.version + 1)
        self.j.set(self.s.plan_subscriptions, subscription.id, saved)
        subscription.version = saved.version


class InMemoryProductSubscriptionRepository(_Repo):
    def add(self, subscription: ProductSubscription) -> None:
        if subscription.id in self.s.product_subscriptions:
            raise Duplicate("subscription exists")
        self.j.set(self.s.product_subscriptions, subscription.id, _copy(subscription))

    def get(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> ProductSubscription:
        return _owned(self.s.product_subscriptions.get(subscription_id), organization_id,  # type: ignore[no-any-return]
                      "subscription", subscription_id)

    def list(self, organization_id: uuid.UUID, *, limit: int = 50,
             cursor: str | None = None) -> Page[ProductSubscription]:
        rows = sorted((s for s in self.s.product_subscriptions.values() if s.organization_id == organization_id),
                      key=lambda s: (s.start_date, str(s.id)))
        return _page(rows, limit, cursor)

    def save(self, subscription: ProductSubscription) -> None:
        self.get(subscription.organization_id, subscription.id)
        self.j.set(self.s.product_subscriptions, subscription.id, _copy(subscription))

    def active_for(self, organization_id: uuid.UUID, project_id: uuid.UUID | None, product_id: uuid.UUID,
                   at: datetime) -> bool:
        # The stored rows themselves, read only: no copy on every usage event's check.
        return covered(self._of_products(organization_id, {product_id}), project_id, product_id, at)

    def of_products(self, organization_id: uuid.UUID,
                    product_ids: Collection[uuid.UUID]) -> builtins.list[ProductSubscription]:
        return [_copy(s) for s in self._of_products(organization_id, set(product_ids))]

    def _of_products(self, organization_id: uuid.UUID, wanted: set[uuid.UUID]) -> Iterator[ProductSubscription]:
        return (s for s in self.s.product_subscriptions.values()
                if s.organization_id == organization_id and s.product_id in wanted)


class InMemoryUsageRepository(_Repo):
    def lock_for_event(self, organization_id: uuid.UUID, event_id: str, project_id: uuid.UUID | None,
                       product_id: uuid.UUID, at: datetime, *, ledger_keys: Sequence[str] = ()) -> UsageSnapshot:
        # The unit of work already holds the store's lock: units of work run one at a time.
        return UsageSnapshot(
            wallet=InMemoryWalletRepository(self.s, self.j).lock(organization_id),
            settings=InMemorySettingsRepository(self.s, self.j).get(organization_id),
            subscribed=InMemoryProductSubscriptionRepository(self.s, self.j).active_for(
                organization_id, project_id, product_id, at),
            event_stored=(organization_id, event_id) in self.s.usage_events,
            stored_keys=frozenset(key for key in ledger_keys if (organization_id, key) in self.s.ledger_keys))

    def record_debit(self, event: UsageEvent, tx: LedgerTransaction, wallet: WalletAccount,
                     old_version: int) -> bool:
        if (tx.organization_id, tx.idempotency_key) in self.s.ledger_keys:
            return False
        stored_wallet = self.s.wallets.get(wallet.organization_id)
        if stored_wallet is None or stored_wallet.version != old_version or (
                event.organization_id, event.event_id) in self.s.usage_events:
            raise ConcurrentUpdate("the wallet changed concurrently; retry")
        InMemoryWalletRepository(self.s, self.j)._store(tx)
        self.j.set(self.s.wallets, wallet.organization_id, _copy(wallet))
        self.record(event)
        return True

    def record_debits(self, chunks: Iterable[DebitChunk]) -> None:
        for chunk in chunks:
            self._record_chunk(chunk)

    def _record_chunk(self, chunk: DebitChunk) -> None:
        debits, wallet = chunk.debits, chunk.wallet
        if not debits:
            return
        stored_wallet = self.s.wallets.get(wallet.organization_id)
        keys = [(tx.organization_id, tx.idempotency_key) for _, tx in debits]
        event_ids = [(event.organization_id, event.event_id) for event, _ in debits]
        if (stored_wallet is None or stored_wallet.version != chunk.old_version
                or len(set(keys)) != len(keys) or len(set(event_ids)) != len(event_ids)
                or any(key in self.s.ledger_keys for key in keys)
                or any(event_id in self.s.usage_events for event_id in event_ids)):
            raise ConcurrentUpdate("the idempotency key, an event id or the wallet changed concurrently; retry")
        wallets = InMemoryWalletRepository(self.s, self.j)
        for event, tx in debits:
            wallets._store(tx)
            self.record(event)
        self.j.set(self.s.wallets, wallet.organization_id, _copy(wallet))

    def record(self, event: UsageEvent) -> bool:
        key = (event.organization_id, event.event_id)
        if key in self.s.usage_events:
            return False
        self.j.set(self.s.usage_events, key, event)
        hour = truncate_to_hour(event.occurred_at)
        bucket_key = (event.organization_id, event.project_id, event.product_id, hour, None)
        bucket = self.s.buckets.get(bucket_key)
        updated = HourlyUsage(organization_id=event.organization_id, project_id=event.project_id,
                              product_id=event.product_id, hour=hour,
                              quantity=(bucket.quantity if bucket else 0) + event.quantity,
                              amount_micros=(bucket.amount_micros if bucket else 0) + event.amount_micros)
        self.j.set(self.s.buckets, bucket_key, updated)
        return True

    def record_many(self, events: Sequence[UsageEvent]) -> list[bool]:
        return [self.record(event) for event in events]

    def get_event(self, organization_id: uuid.UUID, event_id: str) -> UsageEvent | None:
        return self.s.usage_events.get((organization_id, event_id))

    def buckets(self, organization_id: uuid.UUID, start: datetime, end: datetime) -> list[HourlyUsage]:
        wanted = organization_id.int  # ints compare in C; UUID.__eq__ is a Python call per row
        rows = [_copy(b) for b in self.s.buckets.values()
                if start <= b.hour < end and b.organization_id.int == wanted]
        sort_buckets(rows)
        return rows

    def uninvoiced(self, organization_id: uuid.UUID, before: datetime) -> list[HourlyUsage]:
        wanted = organization_id.int
        rows = [_copy(b) for b in self.s.buckets.values()
                if b.invoice_id is None and b.hour < before and b.organization_id.int == wanted]
        sort_buckets(rows)
        return rows

    def uninvoiced_totals(self, organization_id: uuid.UUID, before: datetime) -> list[HourlyUsage]:
        # Uninvoiced buckets all have invoice_id None, so the per-line sums are per (project, product).
        return _sum_per_line(self.uninvoiced(organization_id, before))

    def mark_invoiced(self, organization_id: uuid.UUID, before: datetime, invoice_id: uuid.UUID) -> int:
        return len(self._mark(organization_id, before, invoice_id))

    def put_on_invoice(self, organization_id: uuid.UUID, before: datetime,
                       invoice_id: uuid.UUID) -> list[HourlyUsage]:
        return _sum_per_line(self._mark(organization_id, before, invoice_id))

    def _mark(self, organization_id: uuid.UUID, before: datetime, invoice_id: uuid.UUID) -> list[HourlyUsage]:
        """Freeze the organization's open buckets before ``before`` under ``invoice_id``; copies of them."""
        marked: list[HourlyUsage] = []
        for key, bucket in list(self.s.buckets.items()):
            if bucket.organization_id == organization_id and bucket.invoice_id is None and bucket.hour < before:
                moved = _copy(bucket)
                moved.invoice_id = invoice_id
                self.j.delete(self.s.buckets, key)
                self.j.set(self.s.buckets, (*key[:4], invoice_id), moved)
                marked.append(_copy(moved))
        return marked

    def invoiced_totals(self, organization_id: uuid.UUID) -> list[HourlyUsage]:
        wanted = organization_id.int
        return _sum_per_line([_copy(b) for b in self.s.buckets.values()
                              if b.invoice_id is not None and b.organization_id.int == wanted])

    def scope_totals(self, organization_id: uuid.UUID) -> Mapping[tuple[BudgetScope, uuid.UUID], int]:
        totals: dict[tuple[BudgetScope, uuid.UUID], int] = {}
        for (org, _), event in self.s.usage_events.items():
            if org != organization_id:
                continue
            for scope, scope_id in ((BudgetScope.PROJECT, event.project_id), (BudgetScope.TOKEN, event.token_id)):
                if scope_id is not None:
                    totals[(scope, scope_id)] = totals.get((scope, scope_id), 0) + event.amount_micros
        return totals

    def organizations_with_uninvoiced(self, before: datetime) -> list[uuid.UUID]:
        return sorted({b.organization_id for b in self.s.buckets.values()
                       if b.invoice_id is None and b.hour < before}, key=str)


def _sum_per_line(buckets: list[HourlyUsage]) -> list[HourlyUsage]:
    """Buckets (copies, changed here) summed per (invoice, project, product), with the earliest
    hour, in the storage ports' order of totals: invoice, project and product id as text."""
    totals: dict[tuple[uuid.UUID | None, uuid.UUID | None, uuid.UUID], HourlyUsage] = {}
    for bucket in buckets:
        key = (bucket.invoice_id, bucket.project_id, bucket.product_id)
        seen = totals.get(key)
        if seen is None:
            totals[key] = bucket
        else:
            seen.quantity += bucket.quantity
            seen.amount_micros += bucket.amount_micros
            seen.hour = min(seen.hour, bucket.hour)
    return sorted(totals.values(), key=lambda b: (str(b.invoice_id), str(b.project_id), str(b.product_id)))


class InMemoryInvoiceRepository(_Repo):
    def record_einvoice(self, organization_id: uuid.UUID, invoice_id: uuid.UUID, terms: EInvoice) -> bool:
        self.get(organization_id, invoice_id)
        if invoice_id in self.s.issued_einvoices:
            return False
        self.j.set(self.s.issued_einvoices, invoice_id, terms)
        return True

    def issued_einvoice(self, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> EInvoice | None:
        stored = self.s.invoices.get(invoice_id)
        if stored is None or stored.organization_id != organization_id:
            return None
        return self.s.issued_einvoices.get(invoice_id)

    def add(self, invoice: Invoice) -> None:
        if self.for_period(invoice.organization_id, invoice.period_start) is not None:
            raise DuplicateInvoice("an invoice for this period exists")
        self.j.set(self.s.invoices, invoice.id, _copy(invoice))

    def get(self, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
        return _owned(self.s.invoices.get(invoice_id), organization_id, "invoice", invoice_id)  # type: ignore[no-any-return]

    def for_period(self, organization_id: uuid.UUID, period_start: datetime) -> Invoice | None:
        for invoice in self.s.invoices.values():
            if invoice.organization_id == organization_id and invoice.period_start == period_start:
                return _copy(invoice)
        return None

    def organizations_for_period(self, period_start: datetime) -> list[uuid.UUID]:
        return sorted({i.organization_id for i in self.s.invoices.values() if i.period_start == period_start},
                      key=str)

    def list(self, organization_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None) -> Page[Invoice]:
        rows = sorted((i for i in self.s.invoices.values() if i.organization_id == organization_id),
                      key=lambda i: (i.period_start, str(i.id)), reverse=True)
        return _page(rows, limit, cursor)

    def save(self, invoice: Invoice) -> None:
        self.get(invoice.organization_id, invoice.id)
        self.j.set(self.s.invoices, invoice.id, _copy(invoice))

    def next_number(self, prefix: str) -> str:
        number = self.s.invoice_counters.get(prefix, 0) + 1
        self.j.set(self.s.invoice_counters, prefix, number)
        return f"{prefix}{number:06d}"


class InMemoryPaymentMethodRepository(_Repo):
    def list(self, organization_id: uuid.UUID) -> list[PaymentMethod]:
        rows = [m for m in self.s.payment_methods.values() if m.organization_id == organization_id]
        rows.sort(key=lambda m: (not m.default, -(m.created_at.timestamp() if m.created_at else 0), str(m.id)))
        return [_copy(m) for m in rows]

    def get(self, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> PaymentMethod:
        return _owned(self.s.payment_methods.get(payment_method_id), organization_id,  # type: ignore[no-any-return]
                      "payment method", payment_method_id)

    def by_provider_id(self, organization_id: uuid.UUID, provider_payment_method_id: str) -> PaymentMethod | None:
        for method in self.s.payment_methods.values():
            if (method.organization_id == organization_id
                    and method.provider_payment_method_id == provider_payment_method_id):
                return _copy(method)
        return None

    def add(self, method: PaymentMethod) -> None:
        if (method.id in self.s.payment_methods
                or self.by_provider_id(method.organization_id, method.provider_payment_method_id) is not None):
            raise Duplicate("payment method already attached")
        self._one_default(method)
        self.j.set(self.s.payment_methods, method.id, _copy(method))

    def save(self, method: PaymentMethod) -> None:
        self.get(method.organization_id, method.id)
        self._one_default(method)
        self.j.set(self.s.payment_methods, method.id, _copy(method))

    def _one_default(self, method: PaymentMethod) -> None:
        """The SQL schema's partial unique index: one default per organization."""
        if method.default and any(m.default and m.id != method.id and m.organization_id == method.organization_id
                                  for m in self.s.payment_methods.values()):
            raise Duplicate("the organization already has a default payment method")

    def remove(self, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> None:
        self.get(organization_id, payment_method_id)
        self.j.delete(self.s.payment_methods, payment_method_id)


class InMemorySettingsRepository(_Repo):
    def get(self, organization_id: uuid.UUID) -> BillingSettings:
        stored = self.s.settings.get(organization_id)
        return _copy(stored) if stored is not None else BillingSettings(organization_id=organization_id)

    def save(self, settings: BillingSettings) -> None:
        stored = self.s.settings.get(settings.organization_id)
        if stored is not None and stored.version != settings.version:
            raise ConcurrentUpdate("the settings changed meanwhile; retry")
        saved = msgspec.structs.replace(settings, version=settings.version + 1)
        self.j.set(self.s.settings, settings.organization_id, saved)
        settings.version = saved.version

    def tax_registrations(self, organization_id: uuid.UUID) -> list[TaxRegistration]:
        rows = [r for r in self.s.tax_registrations.values() if r.organization_id == organization_id]
        rows.sort(key=lambda r: (r.created_at, str(r.id)))
        return [_copy(r) for r in rows]

    def get_tax_registration(self, organization_id: uuid.UUID, registration_id: uuid.UUID) -> TaxRegistration:
        return _owned(self.s.tax_registrations.get(registration_id), organization_id,  # type: ignore[no-any-return]
                      "tax registration", registration_id)

    def add_tax_registration(self, registration: TaxRegistration) -> None:
        if registration.id in self.s.tax_registrations:
            raise DuplicateTaxRegistration("this tax registration exists already",
                                           field="value")
        for existing in self.s.tax_registrations.values():
            if (existing.organization_id, existing.country, existing.value) == (
                    registration.organization_id, registration.country, registration.value):
                raise DuplicateTaxRegistration("this tax registration exists already",
                                               field="value")
        self.j.set(self.s.tax_registrations, registration.id, _copy(registration))

    def save_tax_registration(self, registration: TaxRegistration) -> None:
        self.get_tax_registration(registration.organization_id, registration.id)
        self.j.set(self.s.tax_registrations, registration.id, _copy(registration))

    def remove_tax_registration(self, organization_id: uuid.UUID, registration_id: uuid.UUID) -> None:
        self.get_tax_registration(organization_id, registration_id)
        self.j.delete(self.s.tax_registrations, registration_id)


class InMemoryPaymentRepository(_Repo):
    def add(self, payment: Payment) -> None:
        if payment.id in self.s.payments:
            raise Duplicate(f"payment {payment.id} exists")
        self.j.set(self.s.payments, payment.id, _copy(payment))

    def get(self, organization_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
        return _owned(self.s.payments.get(payment_id), organization_id, "payment", payment_id)  # type: ignore[no-any-return]

    def by_provider_id(self, provider_payment_id: str) -> Payment | None:
        for payment in self.s.payments.values():
            if payment.provider_payment_id == provider_payment_id:
                return _copy(payment)
        return None

    def by_reference(self, payment_id: uuid.UUID) -> Payment | None:
        payment = self.s.payments.get(payment_id)
        return None if payment is None else _copy(payment)

    def save(self, payment: Payment) -> None:
        stored = self.get(payment.organization_id, payment.id)
        if stored.version != payment.version:
            raise ConcurrentUpdate("the payment changed meanwhile; retry")
        if not 0 <= payment.refunded_cents <= payment.amount_cents:
            # The SQL CHECK constraint's twin: refunded never exceeds paid.
            raise InvalidInput("refunded_cents", f"payment {payment.id} cannot have {payment.refunded_cents} of "
                               f"{payment.amount_cents} cents refunded", code="constraint_violation")
        saved = msgspec.structs.replace(payment, version=payment.version + 1)
        self.j.set(self.s.payments, payment.id, _copy(saved))
        payment.version = saved.version

    def list(self, organization_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None) -> Page[Payment]:
        rows = sorted((p for p in self.s.payments.values() if p.organization_id == organization_id),
                      key=lambda p: (p.created_at, str(p.id)), reverse=True)
        return _page(rows, limit, cursor)


class InMemoryRefundRepository(_Repo):
    def add(self, request: RefundRequest) -> None:
        if request.id in self.s.refunds:
            raise Duplicate(f"refund request {request.id} exists")
        self.j.set(self.s.refunds, request.id, _copy(request))

    def get(self, organization_id: uuid.UUID, request_id: uuid.UUID) -> RefundRequest:
        return _owned(self.s.refunds.get(request_id), organization_id,  # type: ignore[no-any-return]
                      "refund request", request_id)

    def complete(self, request: RefundRequest) -> bool:
        stored = self.get(request.organization_id, request.id)
        if stored.status != RefundStatus.PENDING:
            return False
        done = msgspec.structs.replace(stored, status=request.status, provider_refund_id=request.provider_refund_id,
                                       failure_message=request.failure_message, completed_at=request.completed_at)
        self.j.set(self.s.refunds, request.id, done)
        return True

    def list(self, organization_id: uuid.UUID) -> list[RefundRequest]:
        rows = sorted((r for r in self.s.refunds.values() if r.organization_id == organization_id),
                      key=lambda r: (r.created_at, str(r.id)), reverse=True)
        return [_copy(r) for r in rows]

    def pending(self, created_before: datetime, *, limit: int = 100) -> builtins.list[RefundRequest]:
        rows = sorted((r for r in self.s.refunds.values()
                       if r.status == RefundStatus.PENDING and r.created_at < created_before),
                      key=lambda r: (r.created_at, str(r.id)))
        return [_copy(r) for r in rows[:limit]]


class InMemoryPlanChangeRepository(_Repo):
    def add(self, change: PlanChange) -> None:
        if change.id in self.s.plan_changes:
            raise Duplicate(f"plan change {change.id} exists")
        if self.for_version(change.organization_id, change.subscription_id, change.subscription_version) is not None:
            raise PlanChangeExists("the subscription already changed plan at this version")
        self.j.set(self.s.plan_changes, change.id, _copy(change))

    def get(self, organization_id: uuid.UUID, change_id: uuid.UUID) -> PlanChange:
        return _owned(self.s.plan_changes.get(change_id), organization_id,  # type: ignore[no-any-return]
                      "plan change", change_id)

    def for_version(self, organization_id: uuid.UUID, subscription_id: uuid.UUID,
                    subscription_version: int) -> PlanChange | None:
        for change in self.s.plan_changes.values():
            if (change.organization_id, change.subscription_id, change.subscription_version) == (
                    organization_id, subscription_id, subscription_version):
                return _copy(change)
        return None

    def latest(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> PlanChange | None:
        rows = [c for c in self.s.plan_changes.values()
                if c.organization_id == organization_id and c.subscription_id == subscription_id]
        return _copy(max(rows, key=lambda c: c.subscription_version)) if rows else None

    def record_invoice(self, change: PlanChange) -> bool:
        stored = self.get(change.organization_id, change.id)
        if stored.status != PlanChangeStatus.PENDING:
            return False
        done = msgspec.structs.replace(stored, status=change.status, provider_invoice_id=change.provider_invoice_id,
                                       hosted_invoice_url=change.hosted_invoice_url,
                                       invoice_status=change.invoice_status, completed_at=change.completed_at)
        self.j.set(self.s.plan_changes, change.id, done)
        return True

    def list(self, organization_id: uuid.UUID) -> list[PlanChange]:
        rows = sorted((c for c in self.s.plan_changes.values() if c.organization_id == organization_id),
                      key=lambda c: (c.created_at, c.subscription_version, str(c.id)))
        return [_copy(c) for c in rows]

    def pending(self, created_before: datetime, *, limit: int = 100) -> builtins.list[PlanChange]:
        rows = sorted((c for c in self.s.plan_changes.values()
                       if c.status == PlanChangeStatus.PENDING and c.created_at < created_before),
                      key=lambda c: (c.created_at, str(c.id)))
        return [_copy(c) for c in rows[:limit]]


class InMemoryCheckoutRepository(_Repo):
    def add(self, session: CheckoutSession) -> None:
        if session.id in self.s.checkouts:
            raise Duplicate(f"checkout session {session.id} exists")
        self.j.set(self.s.checkouts, session.id, _copy(session))

    def get(self, session_id: uuid.UUID) -> CheckoutSession:
        session = self.s.checkouts.get(session_id)
        if session is None:
            raise NotFound("checkout session", session_id)
        return _copy(session)

    def by_provider_id(self, provider_session_id: str) -> CheckoutSession | None:
        for session in self.s.checkouts.values():
            if session.provider_session_id == provider_session_id:
                return _copy(session)
        return None

    def save(self, session: CheckoutSession) -> None:
        self.get(session.id)
        self.j.set(self.s.checkouts, session.id, _copy(session))

    def unclaimed_guest(self, email: str) -> list[CheckoutSession]:
        wanted = email.casefold()
        rows = [s for s in self.s.checkouts.values()
                if s.organization_id is None and s.status == CheckoutStatus.COMPLETE and s.claimed_at is None
                and s.guest_email is not None and s.guest_email.casefold() == wanted]
        return [_copy(s) for s in sorted(rows, key=lambda s: (s.created_at, str(s.id)))]

    def _move(self, session_id: uuid.UUID, expected: Callable[[CheckoutSession], bool], **changes: Any) -> bool:
        session = self.s.checkouts.get(session_id)
        if session is None or not expected(session):
            return False
        self.j.set(self.s.checkouts, session_id, msgspec.structs.replace(session, **changes))
        return True

    def complete(self, session_id: uuid.UUID, *, completed_at: datetime,
                 provider_subscription_id: str | None) -> bool:
        return self._move(session_id, lambda s: s.status == CheckoutStatus.OPEN, status=CheckoutStatus.COMPLETE,
                          completed_at=completed_at, provider_subscription_id=provider_subscription_id)

    def expire(self, session_id: uuid.UUID) -> bool:
        return self._move(session_id, lambda s: s.status == CheckoutStatus.OPEN, status=CheckoutStatus.EXPIRED)

    def claim(self, session_id: uuid.UUID, *, organization_id: uuid.UUID, claimed_at: datetime) -> bool:
        return self._move(session_id, lambda s: (s.status == CheckoutStatus.COMPLETE and s.organization_id is None
                                                 and s.claimed_at is None),
                          organization_id=organization_id, claimed_at=claimed_at)

    def for_organization(self, organization_id: uuid.UUID) -> list[CheckoutSession]:
        rows = [s for s in self.s.checkouts.values() if s.organization_id == organization_id]
        return [_copy(s) for s in sorted(rows, key=lambda s: (s.created_at, str(s.id)))]


class InMemoryOutboxRepository(_Repo):
    def add(self, message: OutboxMessage) -> bool:
        if message.dedupe_key in self.s.outbox_keys:
            return False
        self.j.set(self.s.outbox_keys, message.dedupe_key, message.id)
        self.j.set(self.s.outbox, message.id, _copy(message))
        return True

    def due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        rows = [m for m in self.s.outbox.values() if m.status == OutboxStatus.PENDING
                and (m.next_attempt_at is None or m.next_attempt_at <= now)]
        rows.sort(key=lambda m: (m.created_at, str(m.id)))
        return [_copy(m) for m in rows[:limit]]

    def depth(self) -> OutboxDepth:
        pending = [m.created_at for m in self.s.outbox.values() if m.status == OutboxStatus.PENDING]
        dead = sum(1 for m in self.s.outbox.values() if m.status == OutboxStatus.DEAD)
        return OutboxDepth(pending=len(pending), oldest_pending_at=min(pending, default=None), dead=dead)

    def save(self, message: OutboxMessage) -> None:
        if message.id not in self.s.outbox:
            raise NotFound("outbox message", message.id)
        self.j.set(self.s.outbox, message.id, _copy(message))

    def save_claimed(self, message: OutboxMessage, claimed_until: datetime) -> bool:
        stored = self.s.outbox.get(message.id)
        if stored is None or stored.status != OutboxStatus.PENDING or stored.next_attempt_at != claimed_until:
            return False
        self.j.set(self.s.outbox, message.id, _copy(message))
        return True

    def requeue(self, message_id: uuid.UUID, now: datetime) -> bool:
        stored = self.s.outbox.get(message_id)
        if stored is None or stored.status != OutboxStatus.DEAD:
            return False
        self.j.set(self.s.outbox, message_id, msgspec.structs.replace(stored, status=OutboxStatus.PENDING,
                                                                     next_attempt_at=now))
        return True

    def list(self, *, status: str | None = None, organization_id: uuid.UUID | None = None,
             limit: int = 100) -> list[OutboxMessage]:
        rows = [m for m in self.s.outbox.values()
                if (status is None or m.status == status)
                and (organization_id is None or m.organization_id == organization_id)]
        rows.sort(key=lambda m: (m.created_at, str(m.id)))
        return [_copy(m) for m in rows[:limit]]


class InMemoryInboxRepository(_Repo):
    def seen(self, source: str, event_id: str) -> bool:
        return (source, event_id) in self.s.inbox

    def remember(self, source: str, event_id: str, received_at: datetime) -> bool:
        if (source, event_id) in self.s.inbox:
            return False
        self.j.set(self.s.inbox, (source, event_id), received_at)
        return True


class InMemoryIdempotencyRepository(_Repo):
    def get(self, scope: str, key: str) -> StoredResponse | None:
        return self.s.idempotency.get((scope, key))

    def put(self, response: StoredResponse) -> bool:
        if (response.scope, response.key) in self.s.idempotency:
            return False
        self.j.set(self.s.idempotency, (response.scope, response.key), response)
        return True

    def _claim(self, scope: str, key: str, claimed_at: datetime, request_hash: str | None) -> bool:
        row = self.s.idempotency.get((scope, key))
        return (row is not None and row.in_progress and row.created_at == claimed_at
                and (request_hash is None or row.request_hash == request_hash))

    def complete(self, response: StoredResponse, *, claimed_at: datetime) -> bool:
        if not self._claim(response.scope, response.key, claimed_at, response.request_hash):
            return False
        self.j.set(self.s.idempotency, (response.scope, response.key), response)
        return True

    def release(self, scope: str, key: str, *, claimed_at: datetime) -> bool:
        if not self._claim(scope, key, claimed_at, None):
            return False
        self.j.delete(self.s.idempotency, (scope, key))
        return True


class InMemoryScheduledJobRepository(_Repo):
    def claim(self, job: str, period: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        done, current, until = self.s.scheduled_jobs.get(job, (None, None, None))
        if done == period or (current is not None and current != holder and until is not None and until >= now):
            return False
        self.j.set(self.s.scheduled_jobs, job, (done, holder, lease_until))
        return True

    def complete(self, job: str, period: str, holder: str) -> bool:
        _, current, _ = self.s.scheduled_jobs.get(job, (None, None, None))
        if current != holder:
            return False
        self.j.set(self.s.scheduled_jobs, job, (period, None, None))
        return True

    def last_completed(self, job: str) -> str | None:
        return self.s.scheduled_jobs.get(job, (None, None, None))[0]


class InMemoryUnitOfWork:
    """A unit of work over an :class:`InMemoryStore`. Records ``committed`` for tests."""

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store or InMemoryStore()
        self._journal = _Journal()
        self._active = False
        self.committed = False
        j, s = self._journal, self.store
        self.organizations = InMemoryOrganizationRepository(s, j)
        self.wallets = InMemoryWalletRepository(s, j)
        self.holds = InMemoryHoldRepository(s, j)
        self.budgets = InMemoryBudgetRepository(s, j)
        self.grants = InMemoryGrantRepository(s, j)
        self.ledger = InMemoryLedgerRepository(s, j)
        self.plan_subscriptions = InMemoryPlanSubscriptionRepository(s, j)
        self.product_subscriptions = InMemoryProductSubscriptionRepository(s, j)
        self.usage = InMemoryUsageRepository(s, j)
        self.invoices = InMemoryInvoiceRepository(s, j)
        self.payment_methods = InMemoryPaymentMethodRepository(s, j)
        self.settings = InMemorySettingsRepository(s, j)
        self.payments = InMemoryPaymentRepository(s, j)
        self.refunds = InMemoryRefundRepository(s, j)
        self.plan_changes = InMemoryPlanChangeRepository(s, j)
        self.checkouts = InMemoryCheckoutRepository(s, j)
        self.outbox = InMemoryOutboxRepository(s, j)
        self.inbox = InMemoryInboxRepository(s, j)
        self.idempotency = InMemoryIdempotencyRepository(s, j)
        self.scheduled_jobs = InMemoryScheduledJobRepository(s, j)

    def __enter__(self) -> Self:
        if self._active:
            raise RuntimeError("unit of work is already in use")
        self.store.lock.acquire()
        self._active = True
        self.committed = False
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.rollback()
        finally:
            self._active = False
            self.store.lock.release()

    def commit(self) -> None:
        self._journal.entries.clear()
        self.committed = True
        self.store.commits += 1

    def rollback(self) -> None:
        self._journal.undo()


def in_memory_uow_factory(store: InMemoryStore) -> Callable[[], InMemoryUnitOfWork]:
    """A factory of units of work sharing one store: what services take as ``uow``."""
    return lambda: InMemoryUnitOfWork(store)


class InMemoryTokenReader:
    """A :class:`~billing_core.ports.TokenReader` on a store. It takes the store's lock, so it waits
    for a running unit of work and sees only what was committed (or never written)."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def credential(self, token_hash: str) -> Credential | None:
        with self._store.lock:
            token = self._store.tokens.get(token_hash)
            if token is None:
                return None
            membership = None if token.user_id is None else self._store.memberships.get(
                (token.organization_id, token.user_id))
            return Credential(token=token, membership=membership)


def all_transactions(store: InMemoryStore, organization_id: uuid.UUID) -> Iterable[LedgerTransaction]:
    return [tx for tx in store.ledger.values() if tx.organization_id == organization_id]
