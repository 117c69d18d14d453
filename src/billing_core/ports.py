"""The ports: every way the core reaches the outside world, as ``typing.Protocol``s.

Adapters implement these structurally (they do not inherit). Amounts are integers: micro-dollars
for credits (``*_micros``), cents for cash (``*_cents``). A repository method that takes an
``organization_id`` (or a row that carries one) is scoped by it: a row of another organization is
reported as :class:`~billing_core.errors.NotFound` or left out of lists. Methods that find a row by
a globally unique key (a provider id, a token hash, a checkout session id) or that work across
organizations (the period close, the outbox dispatcher, scheduled jobs) are not scoped. Lists page
with an opaque cursor; the ledger pages by its append sequence. Repositories never commit: the
:class:`UnitOfWork` does, once, for everything done inside it. ``adapters.testing.contracts`` holds
the suites every implementation passes.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import msgspec

from billing_core.billing_settings import BillingSettings, InvoiceAddress, TaxRegistration
from billing_core.budgets import BudgetScope, ScopedBudget
from billing_core.catalog import Plan
from billing_core.checkout import CheckoutSession
from billing_core.einvoice import EInvoice
from billing_core.errors import InvalidInput
from billing_core.grants import Grant, GrantTerms, MovementSpan
from billing_core.holds import Hold
from billing_core.invoices import Invoice
from billing_core.ledger import Account, BalanceMove, EntryKind, LedgerTransaction
from billing_core.organization import ApiToken, Credential, Membership, Organization
from billing_core.outbox import OutboxDepth, OutboxMessage
from billing_core.payment_events import PaymentEvent
from billing_core.payments import Payment, PaymentMethod, ProviderPaymentMethod
from billing_core.plan_change import PlanChange
from billing_core.plan_subscription import PlanSubscription
from billing_core.product_subscription import ProductSubscription
from billing_core.refund_policy import RefundRequest
from billing_core.spend_guard import DebitOutcome as DebitOutcome  # re-exported: the ports' vocabulary
from billing_core.spend_guard import DebitRequest as DebitRequest
from billing_core.usage import HourlyUsage, UsageEvent
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One page of a list. ``next_cursor`` is opaque; None on the last page."""

    items: list[T]
    next_cursor: str | None = None


MAX_PAGE_LIMIT = 200
"""The largest page a use case lists at once."""


def check_page_limit(limit: object) -> int:
    """A page size as a caller asked for it: a whole number from 1 to :data:`MAX_PAGE_LIMIT`."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InvalidInput("limit", f"limit must be between 1 and {MAX_PAGE_LIMIT}")
    return limit


def iterate_pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of a paged list, page by page: ``fetch(cursor)`` returns the page at ``cursor``
    (None: the first); iteration stops after the page whose ``next_cursor`` is None."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


# --------------------------------------------------------------------------- repositories


class OrganizationRepository(Protocol):
    def add(self, organization: Organization) -> None:
        """Store a new organization. Raises Conflict if the id exists."""
        ...

    def get(self, organization_id: uuid.UUID) -> Organization:
        """Raises NotFound."""
        ...

    def save(self, organization: Organization) -> None:
        """Persist changed fields (provider customer id, webhook secret, name)."""
        ...

    def by_provider_customer(self, customer_id: str) -> Organization | None:
        """The organization the payment provider knows as ``customer_id``, or None. Not scoped: provider ids
        are global."""
        ...

    def ids(self) -> list[uuid.UUID]:
        """Every organization id, in a stable order (period close walks them)."""
        ...

    def add_membership(self, membership: Membership) -> None:
        """Idempotent per (organization, user): a second add replaces the role."""
        ...

    def membership(self, organization_id: uuid.UUID, user_id: str) -> Membership | None:
        """The user's membership of the organization, or None when they are not a member."""
        ...

    def memberships_by_email(self, email: str) -> list[Membership]:
        """Case-insensitive email match, across organizations (guest checkout claims)."""
        ...

    def add_token(self, token: ApiToken) -> None:
        """Store a new API token (only its hash). A token id that exists is a ``Conflict``."""
        ...

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, or None. Not scoped: the hash is what identifies the caller."""
        ...

    def find_token(self, organization_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken | None:
        """The organization's API token with this id (revoked or expired ones too), or None
        (also for another organization's token)."""
        ...

    def save_token(self, token: ApiToken) -> None:
        """Persist revocation."""
        ...

    def list_tokens(self, organization_id: uuid.UUID, *, limit: int = 50,
                    cursor: str | None = None) -> Page[ApiToken]:
        """The organization's API tokens (revoked and expired ones too; never another organization's),
        ordered by created_at then id, ``limit`` (at least 1) at a time. A cursor that is not one this
        method returned is ``InvalidInput``. Reads only."""
        ...


class TokenReader(Protocol):
    """Authentication's read of a token, outside any unit of work (one statement, no transaction).

    Implementations never cache: every call reads what units of work have committed, so a token
    revoked (or a membership removed) by a committed unit of work is refused by the very next call.
    """

    def credential(self, token_hash: str) -> Credential | None:
        """The token stored under ``token_hash`` with its user's membership of the token's
        organization (None when it has no user, or the user is no longer a member); None when no
        token has this hash. Reads committed state only; not scoped (the hash identifies the caller).
        Raises ``StorageUnavailable`` when storage cannot be reached."""
        ...


class Posted(msgspec.Struct, frozen=True):
    """A transaction as stored (with its balance after), and whether it had been stored before."""

    transaction: LedgerTransaction
    replayed: bool


class WalletRepository(Protocol):
    def create(self, wallet: WalletAccount) -> None:
        """Create the organization's wallet; a second create for the same organization is a no-op."""
        ...

    def get(self, organization_id: uuid.UUID) -> WalletAccount:
        """Raises NotFound."""
        ...

    def lock(self, organization_id: uuid.UUID) -> WalletAccount:
        """Lock the organization's wallet until the unit of work ends and return it as locked.

        The organization's money lock (ADR 0009): every unit of work that moves money or grants
        value for an organization takes it first, before reading the state it decides on, so
        decisions of concurrent requests serialize and every such transaction takes its locks in
        one order (wallet first). Raises NotFound.
        """
        ...

    def post(self, tx: LedgerTransaction, *, gives_back_spend_of: datetime | None = None) -> Posted:
        """Append a balanced transaction and move the stored balances, atomically.

        Idempotent per (organization, ``tx.idempotency_key``): a replay stores nothing and returns
        the first transaction with ``replayed=True`` (the duplicate is detected by the write, not by
        a racy read). Never refuses for lack of credit: only :meth:`debit` enforces limits.

        ``gives_back_spend_of``: ``tx`` refunds usage that was debited at that time; its balance
        delta (micro-dollars, >= 0) leaves the spend counters as
        :func:`billing_core.wallet.give_back_spend` says, in the same atomic step (``tx.created_at``
        is its ``now``). A replay gives nothing back. ``InvalidInput`` if ``tx`` takes credit away.
        """
        ...

    def debit(self, organization_id: uuid.UUID, amount_micros: int, now: datetime,
              tx: LedgerTransaction, *, project_id: uuid.UUID | None = None,
              token_id: uuid.UUID | None = None) -> DebitOutcome:
        """The hot path: decide with :func:`billing_core.spend_guard.decide_and_apply` and, if
        allowed, apply.

        One atomic step per call: the decision, the balance change, today's and this month's spend
        counters and the ledger rows move together or not at all; concurrent calls serialize on the
        wallet so no limit can be exceeded. When the wallet counts scoped budgets, the budgets of
        ``project_id`` and ``token_id`` are loaded under the same lock, decided with the
        organization's and their counters stored in the same step. A replayed
        ``tx.idempotency_key`` returns the first outcome as allowed with ``replayed=True`` and
        changes nothing.
        """
        ...

    def debit_many(self, organization_id: uuid.UUID, debits: Sequence[DebitRequest],
                   now: datetime, *, locked: WalletAccount | None = None,
                   stored_keys: Collection[str] | None = None) -> list[DebitOutcome]:
        """Exactly what calling :meth:`debit` for each request, in order, would give, as one atomic
        step: the same outcomes, ledger rows and stored wallet.

        ``locked``: the wallet as this unit of work already read it under its lock
        (:meth:`UsageRepository.lock_for_event`), with nothing written to it since; storage then
        decides on it instead of locking and reading the row again (it is not changed). Its version
        still guards the write: a wallet that is no longer the stored one is ``ConcurrentUpdate``
        with nothing written (storage may not notice it when the batch writes nothing).
        ``stored_keys`` (only with ``locked``): which of the requests' idempotency keys the ledger
        held, read under that same lock (``lock_for_event``'s ``ledger_keys``); storage then does
        not look them up again; a request whose key the ledger holds but ``stored_keys`` lacks is
        ``ConcurrentUpdate``.

        Each debit is decided against the wallet as the earlier ones left it, so some may be
        denied mid-batch while later, smaller ones pass; a key already in the ledger, or allowed
        earlier in the same batch, answers as a replay and writes nothing; a denied debit writes
        nothing. Every request is validated before anything is written (``InvalidInput`` or
        ``LedgerImbalance`` as :meth:`debit` raises them); ``NotFound`` if the wallet is missing and
        ``debits`` is not empty. Amounts are micro-dollars.
        """
        ...

    def set_limits(self, organization_id: uuid.UUID, limits: SpendLimits) -> None:
        """Replace the wallet's spend limits (the debit decides on them). An unknown wallet is ``NotFound``."""
        ...

    def set_gate(self, organization_id: uuid.UUID, gate: SubscriptionGate) -> None:
        """Replace the wallet's subscription gate (status, past_due_since, grace days) that the debit
        decides on. An unknown wallet is ``NotFound``."""
        ...


class BudgetRepository(Protocol):
    """Project and token budgets (ADR 0017), and the wallet's ``scoped_budgets`` count of them,
    moved together. Storage only loads and stores them: the spend guard decides
    (:func:`billing_core.spend_guard.decide`). Callers hold the organization's wallet lock
    (:meth:`WalletRepository.lock`, :meth:`UsageRepository.lock_for_event`) for every write and
    for every read a decision is made on. Amounts are micro-dollars."""

    def list(self, organization_id: uuid.UUID) -> builtins.list[ScopedBudget]:
        """The organization's budgets, projects first then tokens, each by id (as text)."""
        ...

    def find(self, organization_id: uuid.UUID, scope: BudgetScope, scope_id: uuid.UUID) -> ScopedBudget | None:
        """The budget of this scope, or None (also for another organization's)."""
        ...

    def for_call(self, organization_id: uuid.UUID, project_id: uuid.UUID | None,
                 token_id: uuid.UUID | None) -> builtins.list[ScopedBudget]:
        """The budgets that apply to a call of this project and token, the project's first; only
        those that exist (none for a None id). One read."""
        ...

    def add(self, budget: ScopedBudget) -> bool:
        """Store a new budget and count it on the wallet (``scoped_budgets`` + 1), in one step.
        False (nothing written) when the scope has a budget. NotFound if the wallet is missing."""
        ...

    def save(self, budgets: Sequence[ScopedBudget]) -> None:
        """Store each budget as given (caps, counters, ``held_micros``, version) over the stored
        one of its scope. Budgets not stored are skipped (removed meanwhile: nothing to count)."""
        ...

    def remove(self, organization_id: uuid.UUID, scope: BudgetScope, scope_id: uuid.UUID) -> bool:
        """Delete the scope's budget and uncount it on the wallet; False when there was none."""
        ...


class HoldRepository(Protocol):
    """Holds (ADR 0011) and the wallet's ``held_micros`` they add up to, moved together.

    Callers take the wallet lock first (:meth:`WalletRepository.lock`) and decide on the locked
    wallet; these writes keep ``held_micros`` equal to the sum of the organization's active holds."""

    def add(self, hold: Hold) -> bool:
        """Store a new active hold and add its amount to the wallet's ``held_micros``, in one step.
        False (nothing written) when a hold with this id exists (in any organization). NotFound if
        the wallet is missing."""
        ...

    def get(self, organization_id: uuid.UUID, hold_id: uuid.UUID) -> Hold:
        """Raises NotFound (also for another organization's hold)."""
        ...

    def find(self, organization_id: uuid.UUID, hold_id: uuid.UUID) -> Hold | None:
        """The organization's hold with this id, or None."""
        ...

    def close(self, hold: Hold, *, now: datetime, charge: LedgerTransaction | None = None) -> bool:
        """Close an active hold as ``hold`` describes it (status settled, released or expired, and
        the settle fields) and take its ``amount_micros`` off the wallet's ``held_micros``; with a
        ``charge`` (a settle), also append that usage transaction, moving the balance and today's
        and this month's spend counters by what it takes off the balance, as an allowed debit does,
        without asking the spend guard again (the hold was the decision). One atomic step, a
        conditional write on the stored hold still being active: False (nothing written) when it is
        not. A ``charge`` whose idempotency key is in the ledger already is a ``Conflict``."""
        ...

    def due(self, now: datetime, limit: int = 100) -> list[Hold]:
        """Active holds with ``expires_at <= now``, soonest expiry first (then id), across every
        organization (the background worker releases them). Not scoped."""
        ...

    def active(self, organization_id: uuid.UUID) -> list[Hold]:
        """The organization's active holds, oldest first (then id)."""
        ...

    def settled_by_event(self, organization_id: uuid.UUID, event_id: str) -> Hold | None:
        """The organization's hold that a settle closed as usage event ``event_id`` (its
        ``event_id``), or None: how an explanation of the event finds the hold it settled. Reads
        only; another organization's hold is None."""
        ...


class Sequenced(msgspec.Struct, frozen=True):
    """A stored transaction with its place in the ledger's append order (``sequence``, increasing
    with every append; an organization's transactions are appended under its wallet lock, so their
    sequence order is their commit order)."""

    sequence: int
    transaction: LedgerTransaction


class GrantCursor(msgspec.Struct, frozen=True, kw_only=True):
    """How far an organization's grants are allocated (ADR 0016): every ledger transaction up to
    append ``sequence``; ``uncovered_micros`` is the usage the grants could not pay (>= 0)."""

    organization_id: uuid.UUID
    sequence: int = 0
    uncovered_micros: int = 0


class GrantRepository(Protocol):
    """Credit grants, the projection of the ledger (ADR 0016): grants, their movements (stored as
    :class:`~billing_core.grants.MovementSpan` rows), the per-organization cursor, and the terms of
    credits posted with non-default ones.

    Written only by ``billing_core.services.grants``, by one catch-up of an organization at a time
    (each holds :meth:`lock_cursor`); amounts are micro-dollars."""

    def cursor(self, organization_id: uuid.UUID) -> GrantCursor:
        """The organization's cursor; sequence 0 and nothing uncovered when nothing was allocated yet."""
        ...

    def lock_cursor(self, organization_id: uuid.UUID) -> GrantCursor:
        """:meth:`cursor`, locked until the unit of work ends: a second catch-up of the organization
        waits here, then reads where the first left the cursor. Never waits for the wallet lock
        (the usage path does not take this one): the worker catches up without stopping usage."""
        ...

    def try_lock_cursor(self, organization_id: uuid.UUID) -> GrantCursor | None:
        """:meth:`lock_cursor` without waiting: None at once when another unit of work holds the
        cursor (that catch-up is doing the work). The worker's sweep takes it this way, so a worker
        that stalls while holding a cursor (paused, swapped out) never stalls the other workers.
        An organization's very first cursor is created by the first taker, and a second one waits
        for that insert to end."""
        ...

    def open(self, organization_id: uuid.UUID) -> builtins.list[Grant]:
        """The organization's grants not expired by an entry that have something left, oldest first
        (then by id)."""
        ...

    def get_many(self, organization_id: uuid.UUID, grant_ids: Sequence[uuid.UUID]) -> builtins.list[Grant]:
        """The organization's grants among ``grant_ids`` (unknown ids and other organizations' are left out)."""
        ...

    def list(self, organization_id: uuid.UUID) -> builtins.list[Grant]:
        """Every grant of the organization, newest first (then by id)."""
        ...

    def apply(self, cursor: GrantCursor, grants: Sequence[Grant], spans: Sequence[MovementSpan], *,
              expected_sequence: int) -> bool:
        """Store one allocation, atomically within the unit of work: insert or replace ``grants`` (by
        id), append ``spans`` and move the organization's cursor to ``cursor``. Conditional on the
        stored cursor being at ``expected_sequence``: False, nothing written, when it is not (another
        catch-up got there first). ``InvalidInput`` for a row of another organization than the cursor's."""
        ...

    def spans_at(self, organization_id: uuid.UUID, sequence: int) -> builtins.list[MovementSpan]:
        """The stored spans that cover the ledger append ``sequence`` (the movements of the
        transaction appended there, or the run it is part of), in the order they were allocated;
        empty before catch-up, or for a transaction that moved no balance."""
        ...

    def span_totals(self, organization_id: uuid.UUID) -> Mapping[tuple[int, int], int]:
        """The organization's stored movements summed per ``(first_sequence, last_sequence)``
        (reconcile)."""
        ...

    def put_terms(self, terms: GrantTerms) -> None:
        """Record the terms of the credit posted with ``terms.idempotency_key``. Idempotent: the
        first terms for an (organization, key) stay."""
        ...

    def terms(self, organization_id: uuid.UUID, keys: Sequence[str]) -> dict[str, GrantTerms]:
        """The stored terms among ``keys``, by key."""
        ...

    def due(self, now: datetime, limit: int = 100) -> builtins.list[Grant]:
        """Grants not expired by an entry, with something left (as last allocated), whose
        ``expires_at <= now``, soonest expiry first (then id), across organizations. Not scoped."""
        ...

    def behind(self, limit: int = 100) -> builtins.list[uuid.UUID]:
        """Organizations whose ledger has transactions after their cursor, in a stable order. Not scoped."""
        ...


class LedgerRepository(Protocol):
    def after(self, organization_id: uuid.UUID, sequence: int, limit: int = 500) -> builtins.list[Sequenced]:
        """The organization's transactions appended after ``sequence``, oldest first, at most
        ``limit``."""
        ...

    def balance_moves(self, organization_id: uuid.UUID, sequence: int, limit: int = 500) -> builtins.list[BalanceMove]:
        """What :meth:`after` answers, reduced to what the grant projection reads
        (:class:`~billing_core.ledger.BalanceMove`: no description, no postings, the balance delta
        summed): the organization's transactions appended after ``sequence``, oldest first, at
        most ``limit``. How the catch-up reads the ledger forward from its cursor (ADR 0016)."""
        ...

    def balance_move(self, organization_id: uuid.UUID, transaction_id: uuid.UUID) -> BalanceMove | None:
        """The organization's transaction ``transaction_id`` as :meth:`balance_moves` reads it (with
        its append sequence), or None: how a transaction's grant movements are found (ADR 0016)."""
        ...

    def get_by_key(self, organization_id: uuid.UUID, idempotency_key: str) -> LedgerTransaction | None:
        """The organization's transaction with this idempotency key, or None: how a retry finds what it
        posted."""
        ...

    def list(self, organization_id: uuid.UUID, *, kinds: frozenset[EntryKind] | None = None,
             limit: int = 50, cursor: str | None = None) -> Page[LedgerTransaction]:
        """Newest first, in the order the transactions were posted (the append sequence, not the id);
        the opaque cursor continues after the last transaction of the previous page."""
        ...

    def account_sums(self, organization_id: uuid.UUID) -> Mapping[Account, int]:
        """Sum of postings per account, from the ledger rows themselves (reconciliation)."""
        ...

    def account_sums_by_kind(self, organization_id: uuid.UUID, account: Account) -> Mapping[EntryKind, int]:
        """Sum of the organization's postings to ``account`` per kind of the transaction they belong
        to, in micro-dollars (Total Credits is the wallet's, see
        :func:`billing_core.overview.gross_credits`). Every kind is a key, 0 when nothing posted;
        the values add up to ``account_sums(...)[account]``. Reads only."""
        ...


class PlanSubscriptionRepository(Protocol):
    def add(self, subscription: PlanSubscription) -> None:
        """Store a new subscription. Raises Conflict (``duplicate``) when its id, or its provider
        subscription id, is stored already: one plan subscription per provider subscription."""
        ...

    def get(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> PlanSubscription:
        """Raises NotFound."""
        ...

    def current(self, organization_id: uuid.UUID) -> PlanSubscription | None:
        """The most recently created subscription of the organization, whatever its status."""
        ...

    def by_provider_id(self, provider_subscription_id: str) -> PlanSubscription | None:
        """The plan subscription with this provider subscription id (unique), or None. Not scoped."""
        ...

    def list(self, organization_id: uuid.UUID) -> list[PlanSubscription]:
        """Every subscription of the organization, whatever its status, oldest first (then by id)."""
        ...

    def save(self, subscription: PlanSubscription) -> None:
        """Persist changes of a copy loaded at ``subscription.version`` and bump its version.

        Raises Conflict (``concurrent_update``) when the stored version is no longer the loaded one
        (someone saved in between: nothing is written), NotFound when it does not exist.
        """
        ...


class ProductSubscriptionRepository(Protocol):
    def add(self, subscription: ProductSubscription) -> None:
        """Store a new product subscription. An id that exists is a ``Conflict``."""
        ...

    def get(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> ProductSubscription:
        """Raises NotFound."""
        ...

    def list(self, organization_id: uuid.UUID, *, limit: int = 50,
             cursor: str | None = None) -> Page[ProductSubscription]:
        """Ordered by start_date then id."""
        ...

    def save(self, subscription: ProductSubscription) -> None:
        """Overwrite a stored product subscription (its end date). An unknown one is ``NotFound``."""
        ...

    def active_for(self, organization_id: uuid.UUID, project_id: uuid.UUID | None,
                   product_id: uuid.UUID, at: datetime) -> bool:
        """True if an org-level or this project's subscription to the product is active at ``at``."""
        ...

    def of_products(self, organization_id: uuid.UUID, product_ids: Collection[uuid.UUID]
                    ) -> builtins.list[ProductSubscription]:
        """Every subscription of the organization to one of ``product_ids`` (for any project, ended or
        not), unordered: what deciding many usage events' coverage at once reads
        (:func:`~billing_core.product_subscription.covered` answers as :meth:`active_for` does)."""
        ...


class UsageSnapshot(msgspec.Struct, kw_only=True):
    """What reporting one usage event reads, all under the wallet lock (:meth:`UsageRepository.lock_for_event`)."""

    wallet: WalletAccount
    """The locked wallet, the caller's to change and hand back to :meth:`UsageRepository.record_debit`."""
    settings: BillingSettings
    """The organization's billing settings (defaults when none are stored), for the after-debit notices."""
    subscribed: bool
    """Whether an org-level or the project's subscription to the product is active at the event's time."""
    event_stored: bool
    """Whether the event id is stored already (the report is a replay)."""
    stored_keys: frozenset[str] = frozenset()
    """Which of the ``ledger_keys`` asked for the organization's ledger holds (a batch's replays)."""


class DebitChunk(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a usage batch's write (:meth:`UsageRepository.record_debits`): the allowed debits
    of a run of the batch's events, in order, and the wallet as they leave it."""

    debits: Sequence[tuple[UsageEvent, LedgerTransaction]]
    """Each event with its stamped usage transaction."""
    wallet: WalletAccount
    """The wallet after these debits, to be stored."""
    old_version: int
    """The version of the stored wallet this part's write replaces: the wallet as the part before
    left it (as the lock read it, for the first part)."""


class UsageRepository(Protocol):
    def lock_for_event(self, organization_id: uuid.UUID, event_id: str, project_id: uuid.UUID | None,
                       product_id: uuid.UUID, at: datetime, *, ledger_keys: Sequence[str] = ()) -> UsageSnapshot:
        """Lock the organization's wallet as :meth:`WalletRepository.lock` does and read, under that
        lock and in the same step, what reporting one event needs (:class:`UsageSnapshot`), and
        which of ``ledger_keys`` (a batch's idempotency keys) the ledger holds.
        The live usage path's first step (one round trip on SQL storage). ``NotFound`` without a wallet."""
        ...

    def record_debit(self, event: UsageEvent, tx: LedgerTransaction, wallet: WalletAccount,
                     old_version: int) -> bool:
        """The live usage path's write, under :meth:`lock_for_event`'s lock, after
        :func:`billing_core.spend_guard.decide_and_apply` allowed the debit: append the stamped
        usage transaction ``tx`` with its postings, store ``wallet`` over ``old_version``, store
        ``event`` and add it to its open hourly bucket, all or nothing (one statement on
        PostgreSQL). False, with nothing written, if ``tx``'s idempotency key is used already;
        ``Conflict(concurrent_update)`` if the stored wallet is no longer at ``old_version`` or the
        event id is stored although the key was not."""
        ...

    def record_debits(self, chunks: Iterable[DebitChunk]) -> None:
        """A batch's write (:func:`billing_core.services.usage.report_usage_batch`), under
        :meth:`lock_for_event`'s lock, after :func:`billing_core.spend_guard.decide_many` allowed
        the debits, in parts: for each part in order, append each stamped usage transaction in
        order with its postings, store the part's ``wallet`` over its ``old_version``, store each
        event and add it to its open hourly bucket (one statement per part on PostgreSQL). The keys
        and event ids were read as unused under that lock, so a used key or stored event id (or one
        given twice), or a stored wallet no longer at a part's ``old_version``, is
        ``Conflict(concurrent_update)`` (the unit of work is then rolled back). Every check has
        run when this returns; an error raised by ``chunks`` itself is raised unchanged.
        ``chunks`` may be lazy: storage may send a part to the database before it asks for the
        next, so the work that produces the next part overlaps the database's work on this one.
        Nothing to write for a part without debits."""
        ...

    def record(self, event: UsageEvent) -> bool:
        """Store the event and add it to its hourly bucket; False (nothing changed) on a replayed id.

        A bucket already on an invoice is never changed: late usage for that hour opens a new,
        uninvoiced bucket.
        """
        ...

    def record_many(self, events: Sequence[UsageEvent]) -> list[bool]:
        """Exactly what calling :meth:`record` for each event, in order, would give: per event,
        whether it was stored (False for an id stored before or earlier in ``events``), and the
        same events and buckets stored."""
        ...

    def get_event(self, organization_id: uuid.UUID, event_id: str) -> UsageEvent | None:
        """The usage event with this client-supplied id in the organization, or None (replays are no-ops)."""
        ...

    def buckets(self, organization_id: uuid.UUID, start: datetime, end: datetime) -> list[HourlyUsage]:
        """Buckets with ``start <= hour < end``."""
        ...

    def uninvoiced(self, organization_id: uuid.UUID, before: datetime) -> list[HourlyUsage]:
        """Buckets not on an invoice with ``hour < before``."""
        ...

    def uninvoiced_totals(self, organization_id: uuid.UUID, before: datetime) -> list[HourlyUsage]:
        """The uninvoiced buckets with ``hour < before`` summed per (project, product), one row each,
        with ``hour`` the earliest hour summed: what a period close needs, aggregated by storage."""
        ...

    def mark_invoiced(self, organization_id: uuid.UUID, before: datetime, invoice_id: uuid.UUID) -> int:
        """Put every uninvoiced bucket with ``hour < before`` on the invoice; returns how many."""
        ...

    def put_on_invoice(self, organization_id: uuid.UUID, before: datetime,
                       invoice_id: uuid.UUID) -> list[HourlyUsage]:
        """Put every uninvoiced bucket with ``hour < before`` on the invoice in one atomic step and
        return exactly the buckets it marked, summed per (project, product) as
        :meth:`uninvoiced_totals` sums them (``hour`` the earliest, ``invoice_id`` set).

        What a period close invoices: the marked buckets and the totals it is given are the same
        rows by construction, so usage recorded concurrently is either in both or in neither (it
        stays uninvoiced for the next invoice). Amounts in micro-dollars; ``[]`` when nothing was
        uninvoiced. Not idempotent: a second call finds nothing left to mark.
        """
        ...

    def invoiced_totals(self, organization_id: uuid.UUID) -> list[HourlyUsage]:
        """The buckets on an invoice, summed per (invoice, project, product): ``invoice_id`` set,
        ``hour`` the earliest hour summed, quantities and micro-dollars summed. What reconcile
        compares with the invoices' lines."""
        ...

    def organizations_with_uninvoiced(self, before: datetime) -> list[uuid.UUID]:
        """Every organization with hourly buckets before ``before`` on no invoice yet, for the period
        close. Not scoped: it lists organizations."""
        ...

    def scope_totals(self, organization_id: uuid.UUID) -> Mapping[tuple[BudgetScope, uuid.UUID], int]:
        """Net usage (micro-dollars, refunds included) of the organization's events per project and
        per API token they name: what reconcile holds the scoped budgets' counters against."""
        ...


class InvoiceRepository(Protocol):
    def add(self, invoice: Invoice) -> None:
        """Raises Conflict if an invoice for the same organization and period start exists."""
        ...

    def get(self, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
        """Raises NotFound."""
        ...

    def for_period(self, organization_id: uuid.UUID, period_start: datetime) -> Invoice | None:
        """The organization's invoice whose period starts at ``period_start``, or None (one per period)."""
        ...

    def organizations_for_period(self, period_start: datetime) -> list[uuid.UUID]:
        """The organizations that have an invoice for the period starting at ``period_start``,
        ordered by id as text: those a period close reports as already closed."""
        ...

    def list(self, organization_id: uuid.UUID, *, limit: int = 50,
             cursor: str | None = None) -> Page[Invoice]:
        """Newest period first."""
        ...

    def save(self, invoice: Invoice) -> None:
        """Overwrite a stored invoice (status, number, dates). An unknown one is ``NotFound``."""
        ...

    def next_number(self, prefix: str) -> str:
        """The next legal invoice number, gapless per prefix: taken under a lock, rolled back with
        the unit of work if it does not commit, so numbers are never skipped nor repeated."""
        ...

    def record_einvoice(self, organization_id: uuid.UUID, invoice_id: uuid.UUID, terms: EInvoice) -> bool:
        """Keep the EN 16931 terms of the legal invoice as issued, once: False (nothing written)
        when terms are kept for it already (the first issue stands). NotFound for an unknown invoice."""
        ...

    def issued_einvoice(self, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> EInvoice | None:
        """The terms kept by :meth:`record_einvoice`, or None (not issued, or issued before they were kept)."""
        ...


class PaymentMethodRepository(Protocol):
    def list(self, organization_id: uuid.UUID) -> list[PaymentMethod]:
        """Default first, then newest."""
        ...

    def get(self, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> PaymentMethod:
        """Raises NotFound."""
        ...

    def by_provider_id(self, organization_id: uuid.UUID, provider_payment_method_id: str) -> PaymentMethod | None:
        """The organization's payment method with this provider id, or None."""
        ...

    def add(self, method: PaymentMethod) -> None:
        """Store a newly attached payment method. The same provider method attached twice is a
        ``Conflict``."""
        ...

    def save(self, method: PaymentMethod) -> None:
        """Overwrite a stored payment method (default flag, details). An unknown one is ``NotFound``."""
        ...

    def remove(self, organization_id: uuid.UUID, payment_method_id: uuid.UUID) -> None:
        """Raises NotFound."""
        ...


class SettingsRepository(Protocol):
    def get(self, organization_id: uuid.UUID) -> BillingSettings:
        """Defaults when nothing was saved yet."""
        ...

    def save(self, settings: BillingSettings) -> None:
        """Store the organization's settings at the version they were loaded at; a concurrent change in
        between is a ``Conflict`` (``concurrent_update``): reload and retry."""
        ...

    def tax_registrations(self, organization_id: uuid.UUID) -> list[TaxRegistration]:
        """Oldest first."""
        ...

    def get_tax_registration(self, organization_id: uuid.UUID, registration_id: uuid.UUID) -> TaxRegistration:
        """Raises NotFound."""
        ...

    def add_tax_registration(self, registration: TaxRegistration) -> None:
        """Raises Conflict when the organization already has this country and value."""
        ...

    def save_tax_registration(self, registration: TaxRegistration) -> None:
        """Overwrite a stored tax registration (its status after verification). An unknown one is
        ``NotFound``."""
        ...

    def remove_tax_registration(self, organization_id: uuid.UUID, registration_id: uuid.UUID) -> None:
        """Raises NotFound."""
        ...


class PaymentRepository(Protocol):
    def add(self, payment: Payment) -> None:
        """Store a new payment: the recorded intent, before the provider is called (ADR 0009). An id that
        exists is a ``Conflict``. Amounts in cents (cash) and micro-dollars (credits)."""
        ...

    def get(self, organization_id: uuid.UUID, payment_id: uuid.UUID) -> Payment:
        """Raises NotFound."""
        ...

    def by_provider_id(self, provider_payment_id: str) -> Payment | None:
        """The payment with this provider payment id, or None. Not scoped: provider ids are global."""
        ...

    def by_reference(self, payment_id: uuid.UUID) -> Payment | None:
        """A payment by our own id, whatever its organization: only for inbound provider events,
        which carry our id as their reference and are verified by signature."""
        ...

    def save(self, payment: Payment) -> None:
        """Persist changes of a copy loaded at ``payment.version`` and bump its version.

        Raises Conflict (``concurrent_update``) when the stored version is no longer the loaded one
        (someone saved in between: nothing is written), NotFound when it does not exist. Storage
        refuses ``refunded_cents`` outside ``0..amount_cents`` (a CHECK on SQL) whatever the caller.
        """
        ...

    def list(self, organization_id: uuid.UUID, *, limit: int = 50,
             cursor: str | None = None) -> Page[Payment]:
        """Newest first."""
        ...


class RefundRepository(Protocol):
    def add(self, request: RefundRequest) -> None:
        """Record a new request (denied, or approved and pending). Raises Conflict (``duplicate``)
        if its id exists."""
        ...

    def get(self, organization_id: uuid.UUID, request_id: uuid.UUID) -> RefundRequest:
        """Raises NotFound."""
        ...

    def complete(self, request: RefundRequest) -> bool:
        """Store the outcome of a pending request: its ``status`` (SUCCEEDED or FAILED),
        ``provider_refund_id``, ``failure_message`` and ``completed_at``, as one conditional write
        on the stored request still being PENDING. True if this call completed it; False (nothing
        written) if it was completed before: a request completes exactly once. Raises NotFound.
        """
        ...

    def list(self, organization_id: uuid.UUID) -> list[RefundRequest]:
        """Newest first."""
        ...

    def pending(self, created_before: datetime, *, limit: int = 100) -> builtins.list[RefundRequest]:
        """Requests of every organization still PENDING that were recorded before
        ``created_before``, oldest first, at most ``limit`` (the background sweeper finishes them)."""
        ...


class PlanChangeRepository(Protocol):
    def add(self, change: PlanChange) -> None:
        """Record a plan change. Raises Conflict (``plan_change_exists``) when the subscription
        already has one for ``change.subscription_version`` (UNIQUE on SQL): one plan change, and so
        one hosted invoice, per subscription version."""
        ...

    def get(self, organization_id: uuid.UUID, change_id: uuid.UUID) -> PlanChange:
        """Raises NotFound."""
        ...

    def for_version(self, organization_id: uuid.UUID, subscription_id: uuid.UUID,
                    subscription_version: int) -> PlanChange | None:
        """The change decided on that version of the subscription, if any."""
        ...

    def latest(self, organization_id: uuid.UUID, subscription_id: uuid.UUID) -> PlanChange | None:
        """The subscription's most recent change (highest version), if any."""
        ...

    def record_invoice(self, change: PlanChange) -> bool:
        """Store the hosted invoice of a pending change (``status`` INVOICED, the invoice's id, URL
        and status, ``completed_at``) as one conditional write on the stored change still being
        PENDING. True if this call recorded it; False (nothing written) if it was recorded before.
        Raises NotFound."""
        ...

    def list(self, organization_id: uuid.UUID) -> list[PlanChange]:
        """Oldest first."""
        ...

    def pending(self, created_before: datetime, *, limit: int = 100) -> builtins.list[PlanChange]:
        """Changes of every organization whose invoice is still PENDING, recorded before
        ``created_before``, oldest first, at most ``limit`` (the background sweeper finishes them)."""
        ...


class CheckoutRepository(Protocol):
    def add(self, session: CheckoutSession) -> None:
        """Store a new checkout session. An id that exists is a ``Conflict``."""
        ...

    def get(self, session_id: uuid.UUID) -> CheckoutSession:
        """Raises NotFound. Not organization-scoped: guest sessions have no organization yet."""
        ...

    def by_provider_id(self, provider_session_id: str) -> CheckoutSession | None:
        """The checkout session with this provider session id, or None. Not scoped: provider ids are
        global."""
        ...

    def save(self, session: CheckoutSession) -> None:
        """Overwrite a stored checkout session. An unknown one is ``NotFound``; completion, expiry and
        claims go through the conditional writes instead."""
        ...

    def unclaimed_guest(self, email: str) -> list[CheckoutSession]:
        """Completed guest sessions for this email (case-insensitive) not claimed yet."""
        ...

    def complete(self, session_id: uuid.UUID, *, completed_at: datetime,
                 provider_subscription_id: str | None) -> bool:
        """Move an open session to complete, recording when and the provider's subscription.

        A conditional write on the session still being open (ADR 0009): of concurrent completions
        and expiries exactly one succeeds. True if this call moved it; False (nothing written) when
        it was not open any more or does not exist.
        """
        ...

    def expire(self, session_id: uuid.UUID) -> bool:
        """Move an open session to expired: conditional like :meth:`complete`. True if this call
        moved it; False (nothing written) when it was not open or does not exist."""
        ...

    def claim(self, session_id: uuid.UUID, *, organization_id: uuid.UUID, claimed_at: datetime) -> bool:
        """Give a completed guest session to ``organization_id``, once: a conditional write on its
        being complete, without an organization and not claimed (``claimed_at IS NULL``). True if
        this call claimed it; False (nothing written) when another claim came first."""
        ...

    def for_organization(self, organization_id: uuid.UUID) -> list[CheckoutSession]:
        """The organization's sessions (opened by it or claimed by it), oldest first (then by id)."""
        ...


class OutboxRepository(Protocol):
    def add(self, message: OutboxMessage) -> bool:
        """Store the message; False (nothing stored) if its ``dedupe_key`` was used before."""
        ...

    def due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        """Pending messages whose next attempt is due, oldest first. Storage that serves several
        dispatchers skips rows another dispatcher holds (SKIP LOCKED)."""
        ...

    def save(self, message: OutboxMessage) -> None:
        """Overwrite a stored message (attempts, status, next attempt). An unknown one is ``NotFound``."""
        ...

    def list(self, *, status: str | None = None, organization_id: uuid.UUID | None = None,
             limit: int = 100) -> list[OutboxMessage]:
        """Messages (of one status, of one organization), oldest first, at most ``limit``."""
        ...

    def depth(self) -> OutboxDepth:
        """Counts across every organization: pending messages, the oldest one's time, dead letters."""
        ...

    def save_claimed(self, message: OutboxMessage, claimed_until: datetime) -> bool:
        """Overwrite a message this dispatcher claimed (:meth:`save` with ``next_attempt_at =
        claimed_until``), as one conditional write: False (nothing written) when the claim is no
        longer its own: the stored message is not pending, or is due at another time (its claim
        lapsed and another dispatcher claimed it again, or recorded its outcome already)."""
        ...

    def requeue(self, message_id: uuid.UUID, now: datetime) -> bool:
        """Make a dead-lettered message pending again, due at ``now`` (its attempts and last error
        kept), as one conditional write: False (nothing written) when the message is not dead:
        unknown, never dead, or requeued (and perhaps sent) by a concurrent call already."""
        ...


class InboxRepository(Protocol):
    def seen(self, source: str, event_id: str) -> bool:
        """Whether the event id was remembered before (committed, or earlier in this unit of work)."""
        ...

    def remember(self, source: str, event_id: str, received_at: datetime) -> bool:
        """Record an inbound event id; False if it was seen before (process it only when True)."""
        ...


class ScheduledJobRepository(Protocol):
    """Leases on scheduled jobs, so that any number of workers run each job once per period."""

    def claim(self, job: str, period: str, holder: str, now: datetime, lease_until: datetime) -> bool:
        """Take ``job`` for ``period`` until ``lease_until``. False (nothing changed) when the job
        was completed for ``period`` already or another holder's lease has not expired at ``now``;
        a holder may renew its own lease. The claim is one conditional write, never a read first."""
        ...

    def complete(self, job: str, period: str, holder: str) -> bool:
        """Record ``job`` done for ``period`` and release the lease; False (nothing changed) when
        ``holder`` no longer holds it (its lease expired and another worker took the job)."""
        ...

    def last_completed(self, job: str) -> str | None:
        """The period ``job`` was last completed for, or None."""
        ...


IDEMPOTENCY_IN_PROGRESS = 0
"""``StoredResponse.status_code`` of a claim: a request with this key is running somewhere."""


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The first answer to a request sent with an idempotency key, or (``status_code`` 0,
    :data:`IDEMPOTENCY_IN_PROGRESS`) the claim of the request that is producing it."""

    scope: str
    key: str
    request_hash: str
    status_code: int
    body: bytes
    content_type: str
    created_at: datetime

    @property
    def in_progress(self) -> bool:
        return self.status_code == IDEMPOTENCY_IN_PROGRESS


class IdempotencyRepository(Protocol):
    """Idempotency keys across every process on one database: the first request claims the key
    (:meth:`put` of an in-progress row), runs, and then :meth:`complete`s its claim with its
    answer or :meth:`release`s it; a request that finds a claim waits or is told to retry."""

    def get(self, scope: str, key: str) -> StoredResponse | None:
        """The stored answer or claim for (scope, key), or None."""
        ...

    def put(self, response: StoredResponse) -> bool:
        """Store the first answer or claim for (scope, key); False if a row exists already (the
        caller did not get the key; a unique key makes this hold across processes)."""
        ...

    def complete(self, response: StoredResponse, *, claimed_at: datetime) -> bool:
        """Replace this caller's in-progress claim (the one created at ``claimed_at`` for
        ``response.request_hash``) with the finished answer. False when that claim is gone
        (released as stale and taken by another request): nothing is written then."""
        ...

    def release(self, scope: str, key: str, *, claimed_at: datetime) -> bool:
        """Delete the in-progress claim of (scope, key) created at ``claimed_at``: the request was
        not answered in a way worth replaying, or its process died (a stale claim). False when no
        such claim exists (finished, or released by someone else)."""
        ...


class UnitOfWork(Protocol):
    """One transaction over every repository. Leaving the ``with`` block without :meth:`commit`
    rolls back everything done inside it."""

    @property
    def organizations(self) -> OrganizationRepository:
        ...

    @property
    def wallets(self) -> WalletRepository:
        ...

    @property
    def ledger(self) -> LedgerRepository:
        ...

    @property
    def holds(self) -> HoldRepository:
        ...

    @property
    def budgets(self) -> BudgetRepository:
        ...

    @property
    def grants(self) -> GrantRepository:
        ...

    @property
    def plan_subscriptions(self) -> PlanSubscriptionRepository:
        ...

    @property
    def product_subscriptions(self) -> ProductSubscriptionRepository:
        ...

    @property
    def usage(self) -> UsageRepository:
        ...

    @property
    def invoices(self) -> InvoiceRepository:
        ...

    @property
    def payment_methods(self) -> PaymentMethodRepository:
        ...

    @property
    def settings(self) -> SettingsRepository:
        ...

    @property
    def payments(self) -> PaymentRepository:
        ...

    @property
    def refunds(self) -> RefundRepository:
        ...

    @property
    def plan_changes(self) -> PlanChangeRepository:
        ...

    @property
    def checkouts(self) -> CheckoutRepository:
        ...

    @property
    def outbox(self) -> OutboxRepository:
        ...

    @property
    def inbox(self) -> InboxRepository:
        ...

    @property
    def idempotency(self) -> IdempotencyRepository:
        ...

    @property
    def scheduled_jobs(self) -> ScheduledJobRepository:
        ...


    def __enter__(self) -> Self:
        ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        ...

    def commit(self) -> None:
        """Make everything done in this unit of work durable, at once. A broken constraint raises
        (``Conflict``) and leaves nothing written."""
        ...

    def rollback(self) -> None:
        """Discard everything done in this unit of work (leaving it without a commit does the same)."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


# --------------------------------------------------------------------------- payment provider


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    FAILED = "failed"


class ChargeResult(msgspec.Struct, frozen=True, kw_only=True):
    provider_payment_id: str
    status: ChargeStatus
    failure_message: str | None = None
    client_secret: str | None = None


class ProviderCheckout(msgspec.Struct, frozen=True, kw_only=True):
    provider_session_id: str
    client_secret: str
    url: str | None = None


class HostedInvoice(msgspec.Struct, frozen=True, kw_only=True):
    provider_invoice_id: str
    hosted_invoice_url: str | None
    status: str


class PaymentProvider(Protocol):
    def ensure_customer(self, organization: Organization, email: str | None) -> str:
        """The provider customer id for the organization, created on first need.

        Idempotent: repeated calls for the same organization never create a second customer.
        Raises PaymentError subclasses (ProviderUnavailable is retryable).
        """
        ...

    def create_checkout_session(self, *, customer_id: str | None, guest_email: str | None, plan: Plan,
                                trial_days: int | None, return_url: str, reference: str,
                                idempotency_key: str) -> ProviderCheckout:
        """An embedded checkout for a plan subscription; ``reference`` is our checkout id."""
        ...

    def create_crypto_checkout(self, *, customer_id: str, amount_cents: int, currency_iso: str,
                               return_url: str, reference: str, idempotency_key: str) -> ProviderCheckout:
        """An embedded checkout paying ``amount_cents`` with crypto; ``reference`` is our payment id."""
        ...

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        """URL of the provider's billing portal for the customer."""
        ...

    def checkout_status(self, provider_session_id: str) -> str:
        """The provider's status of a checkout session right now: ``open``, ``complete`` or
        ``expired`` (the customer may come back before the completion event arrives). Raises
        NotFound for a session the provider does not know."""
        ...

    def change_subscription_plan(self, *, provider_subscription_id: str, plan: Plan, proration_at: datetime,
                                 reference: str, idempotency_key: str) -> HostedInvoice | None:
        """Swap the provider subscription's price for ``plan``'s, prorated as of ``proration_at``,
        and invoice the proration at once; returns that invoice (None when the provider made none).

        The same ``idempotency_key`` never swaps or invoices twice: a retry returns the first answer."""
        ...

    def create_setup_intent(self, *, customer_id: str, idempotency_key: str) -> str:
        """Client secret of a setup intent (``seti_..._secret_...``) for collecting a method."""
        ...

    def attach_payment_method(self, *, customer_id: str, provider_payment_method_id: str) -> ProviderPaymentMethod:
        """Attach the method to the customer and describe it. Raises InvalidInput for unknown ids."""
        ...

    def set_default_payment_method(self, *, customer_id: str, provider_payment_method_id: str) -> None:
        ...

    def detach_payment_method(self, *, provider_payment_method_id: str) -> None:
        """Idempotent: detaching a detached method succeeds."""
        ...

    def charge(self, *, customer_id: str, provider_payment_method_id: str | None, amount_cents: int,
               currency_iso: str, description: str, reference: str, idempotency_key: str) -> ChargeResult:
        """An off-session payment of ``amount_cents``. The same ``idempotency_key`` never charges twice.

        Declines and authentication needs come back as FAILED / REQUIRES_ACTION results, not
        exceptions; ProviderUnavailable is raised when the provider could not be reached.
        """
        ...

    def refund(self, *, provider_payment_id: str, amount_cents: int, idempotency_key: str) -> str:
        """Refund part or all of a payment; returns the provider's refund id.

        The same ``idempotency_key`` never refunds twice: a retry returns the first refund's id.
        ProviderUnavailable (retryable) when the provider could not be reached; other PaymentErrors
        are definitive refusals."""
        ...

    def issue_invoice(self, *, customer_id: str, amount_cents: int, currency_iso: str, description: str,
                      reference: str, idempotency_key: str) -> HostedInvoice:
        """A finalized hosted invoice for ``amount_cents`` (plan changes, settled periods).

        The same ``idempotency_key`` never issues a second invoice: a retry returns the first."""
        ...

    def is_payment_method_id(self, value: str) -> bool:
        """Whether ``value`` has the shape of this provider's payment-method ids. No call is made:
        a well-shaped id may still be unknown (``attach_payment_method`` says so)."""
        ...

    def parse_event(self, payload: bytes, signature_header: str | None) -> PaymentEvent:
        """Verify the signature and translate the event into the core's terms
        (:mod:`billing_core.payment_events`); an event the core does not act on, or whose object
        lacks what acting on it needs, comes back as an ``UnhandledEvent``.

        Raises InvalidInput(code=invalid_signature) when the signature does not verify and when a
        signed body is not an event (no id, type, integer ``created`` or object). A payload nested
        deeper than :data:`billing_core.payloads.MAX_JSON_DEPTH` raises
        :class:`~billing_core.errors.MalformedBody` (signed or not), found before it is decoded."""
        ...


# --------------------------------------------------------------------------- delivery ports


class LegalDocument(msgspec.Struct, frozen=True, kw_only=True):
    document_id: str
    number: str | None
    pdf_available: bool = True


class LegalInvoicing(Protocol):
    def issue(self, invoice: Invoice, organization: Organization, address: InvoiceAddress | None,
              billing_email: str | None, buyer_tax_id: str | None = None,
              terms: EInvoice | None = None) -> LegalDocument:
        """Create and finalize the legal document for ``invoice``; ``buyer_tax_id`` is the buyer's
        verified VAT number, printed on the document (a reverse-charge invoice must show it).
        ``terms`` are the invoice's EN 16931 terms, checked by the core already: an adapter that
        produces a structured e-invoice (Factur-X, XRechnung) renders it from them, and raises
        EInvoiceInvalid, creating nothing, when its XML does not validate.

        Idempotent per invoice id: a retry finds the document made before instead of a second one.
        Raises ProviderUnavailable on rate limits and outages (the outbox retries).
        """
        ...

    def pdf(self, document_id: str) -> bytes:
        """The document's PDF. Raises NotFound."""
        ...

    def credit_note(self, document_id: str, *, amount_cents: int, reason: str,
                    idempotency_key: str) -> LegalDocument:
        """A cancellation or credit document for ``amount_cents`` of the given document."""
        ...


class EInvoiceSyntax(StrEnum):
    """The XML syntaxes an e-invoice is rendered in."""

    CII = "cii"
    """UN/CEFACT CII as embedded in Factur-X / ZUGFeRD (EN 16931 profile)."""
    XRECHNUNG_UBL = "xrechnung-ubl"
    """OASIS UBL 2.1, declared as XRechnung 3.0."""


class EInvoiceRenderer(Protocol):
    def render(self, document: EInvoice, syntax: EInvoiceSyntax) -> bytes:
        """The document as XML in ``syntax``, validated against that syntax's XSD. Raises
        EInvoiceInvalid (naming ``XSD``) when it does not validate."""
        ...


class Attachment(msgspec.Struct, frozen=True):
    filename: str
    content_type: str
    content: bytes


class EmailMessage(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    message_id: str | None = None
    """The left part of the ``Message-ID`` header (``<message_id@sender-domain>``): the same for every
    attempt to send one notice, so a repeated send is recognisable as a duplicate. None: a random one."""


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand the message to the mail system. Raises ProviderUnavailable when it cannot."""
        ...


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    created: datetime
    data: dict[str, Any]


class WebhookSender(Protocol):
    def send(self, *, url: str, secret: str, event: WebhookDelivery) -> int:
        """POST the signed event; return the HTTP status. Raises ProviderUnavailable on network
        errors and non-2xx answers (the outbox retries)."""
        ...


class TaxIdVerifier(Protocol):
    def verify(self, country: str, value: str) -> bool:
        """True when the registry confirms the tax id. Raises ProviderUnavailable when unreachable."""
        ...
