"""The spend guard: allow or deny a billable call before it runs.

Pure decision logic shared by every storage adapter: storage serializes debits on the wallet
record (row lock or conditional update) and calls :func:`decide` inside that critical section, so
the decision and the debit are one atomic step. The wallet carries its copy of the limits and
the subscription gate, derived here (:func:`limits_for`, :func:`gate_for`) whenever the plan
subscription or the spend settings change.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.billing_settings import BillingSettings
from billing_core.budgets import (
    BudgetBreach,
    BudgetPeriod,
    BudgetScope,
    ScopedBudget,
    apply_to,
    applying,
    breach_of,
    scoped_breach,
)
from billing_core.budgets import next_month_start as next_month_start  # re-exported: callers use spend_guard's
from billing_core.budgets import next_utc_midnight as next_utc_midnight
from billing_core.catalog import Catalog
from billing_core.grace_window import GraceState, GraceWindow, grace_window
from billing_core.ledger import LedgerTransaction
from billing_core.plan_subscription import DELINQUENT, INACTIVE, PlanSubscription, SubscriptionStatus
from billing_core.wallet import (
    SpendLimits,
    SubscriptionGate,
    WalletAccount,
    apply_spend,
    apply_transaction,
    counters_at,
)


class DenialReason(StrEnum):
    PAYMENT_FAILURE_GRACE_EXPIRED = "payment_failure_grace_expired"
    SUBSCRIPTION_INACTIVE = "subscription_inactive"
    INSUFFICIENT_CREDIT = "insufficient_credit"
    DAILY_BUDGET_REACHED = "daily_budget_reached"
    MONTHLY_BUDGET_REACHED = "monthly_budget_reached"
    PROJECT_DAILY_BUDGET_REACHED = "project_daily_budget_reached"
    PROJECT_MONTHLY_BUDGET_REACHED = "project_monthly_budget_reached"
    TOKEN_DAILY_BUDGET_REACHED = "token_daily_budget_reached"  # noqa: S105  # nosec B105 - a denial code, not a secret
    TOKEN_MONTHLY_BUDGET_REACHED = "token_monthly_budget_reached"  # noqa: S105  # nosec B105 - a denial code, not a secret


DENIAL_MESSAGES: dict[DenialReason, str] = {
    DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED:
        "Payment failed and the grace window has ended. Update your payment method to resume.",
    DenialReason.SUBSCRIPTION_INACTIVE: "The plan subscription is not active.",
    DenialReason.INSUFFICIENT_CREDIT: "Not enough credits. Add credits to resume.",
    DenialReason.DAILY_BUDGET_REACHED: "The daily credit budget is reached; usage resumes at the next UTC day.",
    DenialReason.MONTHLY_BUDGET_REACHED: "The monthly budget cap is reached; usage resumes next month.",
    DenialReason.PROJECT_DAILY_BUDGET_REACHED:
        "The project's daily budget is reached; its usage resumes at the next UTC day.",
    DenialReason.PROJECT_MONTHLY_BUDGET_REACHED:
        "The project's monthly budget is reached; its usage resumes next month.",
    DenialReason.TOKEN_DAILY_BUDGET_REACHED:
        "This API token's daily budget is reached; its usage resumes at the next UTC day.",
    DenialReason.TOKEN_MONTHLY_BUDGET_REACHED:
        "This API token's monthly budget is reached; its usage resumes next month.",
}

BUDGET_REASONS: dict[tuple[BudgetScope, BudgetPeriod], DenialReason] = {
    (BudgetScope.ORGANIZATION, BudgetPeriod.DAY): DenialReason.DAILY_BUDGET_REACHED,
    (BudgetScope.ORGANIZATION, BudgetPeriod.MONTH): DenialReason.MONTHLY_BUDGET_REACHED,
    (BudgetScope.PROJECT, BudgetPeriod.DAY): DenialReason.PROJECT_DAILY_BUDGET_REACHED,
    (BudgetScope.PROJECT, BudgetPeriod.MONTH): DenialReason.PROJECT_MONTHLY_BUDGET_REACHED,
    (BudgetScope.TOKEN, BudgetPeriod.DAY): DenialReason.TOKEN_DAILY_BUDGET_REACHED,
    (BudgetScope.TOKEN, BudgetPeriod.MONTH): DenialReason.TOKEN_MONTHLY_BUDGET_REACHED,
}
"""The denial a reached budget gives, by whose budget and which period."""


class SpendWarning(StrEnum):
    PAYMENT_FAILURE_GRACE_ACTIVE = "payment_failure_grace_active"


class Decision(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The answer for one billable call. ``retry_at`` says when a denial lifts by itself."""

    allowed: bool
    reason: DenialReason | None = None
    message: str | None = None
    retry_at: datetime | None = None
    warning: SpendWarning | None = None
    grace_ends_at: datetime | None = None
    budget: BudgetBreach | None = None
    """For a budget denial: which budget (the organization's, a project's, a token's), the
    period, its limit and what counts against it."""


class ProductionHealth(StrEnum):
    """Why production runs or not. Payment failure (past_due after its grace window, unpaid) is told
    apart from a plan subscription that is simply not running (canceled, paused, incomplete,
    incomplete_expired): the first is fixed by updating the payment method, the second by
    resubscribing, resuming or completing checkout."""

    HEALTHY = "healthy"
    GRACE_ACTIVE = "grace_active"
    BLOCKED_BY_PAYMENT_FAILURE = "blocked_by_payment_failure"
    BLOCKED_BY_INACTIVE_SUBSCRIPTION = "blocked_by_inactive_subscription"
    BLOCKED_BY_LOW_CREDIT = "blocked_by_low_credit"
    BLOCKED_BY_BUDGET = "blocked_by_budget"


_GATE_REASONS = frozenset({DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED, DenialReason.SUBSCRIPTION_INACTIVE})


def limits_for(catalog: Catalog, subscription: PlanSubscription | None, settings: BillingSettings) -> SpendLimits:
    """The wallet's copy of the limits: the plan's credit line, the minimum, the spend settings' budgets."""
    credit_line = 0
    if subscription is not None and subscription.is_subscribed:
        credit_line = catalog.plan(subscription.plan).overage_credit_line_micros
    spend = settings.spend_management
    return SpendLimits(
        credit_line_micros=credit_line,
        minimum_production_credit_micros=catalog.wallet.minimum_production_credit_micros,
        daily_budget_micros=spend.daily_budget_micros if spend.enabled else None,
        monthly_cap_micros=spend.monthly_cap_micros if spend.enabled else None,
    )


def gate_for(catalog: Catalog, subscription: PlanSubscription | None) -> SubscriptionGate:
    """The wallet's copy of what the spend guard needs of the plan subscription."""
    if subscription is None:
        return SubscriptionGate()
    return SubscriptionGate(status=subscription.status.value, past_due_since=subscription.past_due_since,
                            grace_days=catalog.plan(subscription.plan).grace_days)


def _deny(reason: DenialReason, retry_at: datetime | None = None) -> Decision:
    return Decision(allowed=False, reason=reason, message=DENIAL_MESSAGES[reason], retry_at=retry_at)


def organization_breach(wallet: WalletAccount, now: datetime, *, reserving_micros: int = 0) -> BudgetBreach | None:
    """The organization's budgets (daily budget, monthly cap) under :func:`budget_reached`'s rule."""
    limits = wallet.limits
    if limits.daily_budget_micros is None and limits.monthly_cap_micros is None:
        return None
    counters = counters_at(wallet, now)
    return breach_of(scope=BudgetScope.ORGANIZATION, scope_id=wallet.organization_id,
                     daily=limits.daily_budget_micros, monthly=limits.monthly_cap_micros,
                     spent_today=counters.today, spent_month=counters.month, held=wallet.held_micros,
                     reserving_micros=reserving_micros, now=now)


def budget_reached(wallet: WalletAccount, now: datetime, *, reserving_micros: int = 0) -> DenialReason | None:
    """The budget rule, one for the day and the month. What counts as used is the day's (UTC) usage,
    or the month's, plus what active holds reserve (``wallet.held_micros``).

    A call is denied once that already reaches the daily budget (the monthly cap); the call's own
    amount plays no part: the call that crosses a budget still runs and is debited in full, and
    every later call is denied until 00:00 UTC (the first of next month for the cap). Refunded
    usage is given back to the counters (:func:`billing_core.wallet.give_back_spend`), so a refund
    can lift the block the same day. A hold reserves ``reserving_micros`` up front, so it must fit:
    it is denied when used + reserving would pass the budget (ADR 0011), and so a hold never takes
    a budget past its amount; only a plain call can cross it. Project and token budgets follow the
    same rule (:func:`billing_core.budgets.breach_of`, ADR 0017)."""
    breach = organization_breach(wallet, now, reserving_micros=reserving_micros)
    return None if breach is None else BUDGET_REASONS[(breach.scope, breach.period)]


def _deny_budget(breach: BudgetBreach) -> Decision:
    reason = BUDGET_REASONS[(breach.scope, breach.period)]
    return Decision(allowed=False, reason=reason, message=DENIAL_MESSAGES[reason], retry_at=breach.retry_at,
                    budget=breach)


def decide(wallet: WalletAccount, amount_micros: int, now: datetime, *, reserve: bool = False,
           budgets: Sequence[ScopedBudget] = ()) -> Decision:
    """Allow or deny debiting ``amount_micros`` (>= 0) now, or reserving it (``reserve``: a hold).
    What active holds reserve (``wallet.held_micros``, each budget's ``held_micros``) counts as
    spent against every cap and the balance. ``budgets``: the project's and the token's budgets
    that apply to the call (:func:`billing_core.budgets.applying`), loaded under the wallet lock.

    Order matters for the reason shown: payment failure first, then the subscription, then the
    budgets (they lift by themselves; :func:`budget_reached`: for a debit only what was already
    used counts, so the call that crosses a budget runs; a reservation must fit): the
    organization's, then the project's, then the token's; then credit. A zero amount asks "may I
    start a call?".
    """
    status = wallet.gate.status
    warning: SpendWarning | None = None
    grace_ends: datetime | None = None
    if status in DELINQUENT:
        return _deny(DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED)
    if status == SubscriptionStatus.PAST_DUE:
        window = grace_window(wallet.gate, now)
        if window.state == GraceState.EXPIRED:
            return _deny(DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED)
        warning, grace_ends = SpendWarning.PAYMENT_FAILURE_GRACE_ACTIVE, window.ends_at
    elif status in INACTIVE:
        return _deny(DenialReason.SUBSCRIPTION_INACTIVE)

    limits = wallet.limits
    reserving = amount_micros if reserve else 0
    if limits.daily_budget_micros is not None or limits.monthly_cap_micros is not None:
        breach = organization_breach(wallet, now, reserving_micros=reserving)
        if breach is not None:
            return _deny_budget(breach)
    for budget in budgets:
        breach = scoped_breach(budget, now, reserving_micros=reserving)
        if breach is not None:
            return _deny_budget(breach)
    # Held credits (active holds) are spent as far as the balance is concerned.
    balance_after = wallet.balance_micros - wallet.held_micros - amount_micros
    if balance_after + limits.credit_line_micros < limits.minimum_production_credit_micros:
        return _deny(DenialReason.INSUFFICIENT_CREDIT)
    return Decision(allowed=True, warning=warning, grace_ends_at=grace_ends)


def decide_and_apply(wallet: WalletAccount, amount_micros: int, now: datetime, tx: LedgerTransaction,
                     budgets: Sequence[ScopedBudget] = ()) -> tuple[Decision, LedgerTransaction | None]:
    """The debit step every storage adapter runs inside its critical section on the wallet (the
    row lock, the store's lock): :func:`decide`, and if allowed, the spend counters and balances
    moved on ``wallet`` (its version advanced), the same spend counted on each of ``budgets``
    (the call's project and token budgets, versions advanced) and ``tx`` stamped with the balance
    after it. A denial leaves ``wallet`` and ``budgets`` untouched and returns no transaction:
    nothing is to be written."""
    decision = decide(wallet, amount_micros, now, budgets=budgets)
    if not decision.allowed:
        return decision, None
    apply_spend(wallet, amount_micros, now)
    apply_to(budgets, amount_micros, now)
    return decision, apply_transaction(wallet, tx)


def available_micros(wallet: WalletAccount, now: datetime) -> int:
    """Credits usable right now: balance plus credit line above the minimum, less what active holds
    reserve, within the budgets (what can be used before the budget blocks later calls; the call
    that crosses it still runs);
    0 while the subscription gate blocks every call (payment failure, inactive subscription)."""
    if decide(wallet, 0, now).reason in _GATE_REASONS:
        return 0
    limits = wallet.limits
    counters = counters_at(wallet, now)
    held = wallet.held_micros
    room = wallet.balance_micros - held + limits.credit_line_micros - limits.minimum_production_credit_micros
    if limits.daily_budget_micros is not None:
        room = min(room, limits.daily_budget_micros - counters.today - held)
    if limits.monthly_cap_micros is not None:
        room = min(room, limits.monthly_cap_micros - counters.month - held)
    return max(room, 0)


def production_health(wallet: WalletAccount, now: datetime) -> tuple[ProductionHealth, GraceWindow]:
    """Why production runs or not, telling payment failure apart from low credit and budgets."""
    window = grace_window(wallet.gate, now)
    # One micro-dollar: could any billable call run right now?
    probe = decide(wallet, 1, now)
    if not probe.allowed:
        assert probe.reason is not None
        if probe.reason == DenialReason.INSUFFICIENT_CREDIT:
            return ProductionHealth.BLOCKED_BY_LOW_CREDIT, window
        if probe.budget is not None:
            return ProductionHealth.BLOCKED_BY_BUDGET, window
        if probe.reason == DenialReason.SUBSCRIPTION_INACTIVE:
            return ProductionHealth.BLOCKED_BY_INACTIVE_SUBSCRIPTION, window
        return ProductionHealth.BLOCKED_BY_PAYMENT_FAILURE, window
    if window.state == GraceState.ACTIVE:
        return ProductionHealth.GRACE_ACTIVE, window
    return ProductionHealth.HEALTHY, window


class DebitRequest(msgspec.Struct, frozen=True, gc=False):
    """One debit of a batch: what :meth:`~billing_core.ports.WalletRepository.debit` takes besides
    the organization and time."""

    amount_micros: int
    transaction: LedgerTransaction
    project_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    """The call's project and API token: their budgets (ADR 0017) are decided with the organization's."""


class DebitOutcome(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What one debit of a batch came to: the decision, the stamped transaction (None for a denial,
    and for a replay whose transaction the caller did not have), whether it replayed a key, and the
    wallet right after it."""

    decision: Decision
    transaction: LedgerTransaction | None
    replayed: bool
    wallet: WalletAccount


class DecidedBatch(msgspec.Struct, frozen=True, kw_only=True):
    """:func:`decide_many`'s answer: the outcome of each debit, in order, and what is to be written."""

    outcomes: list[DebitOutcome]
    written: list[LedgerTransaction]
    """The stamped transactions of the allowed debits, in order: the ledger rows to append."""
    budgets: list[ScopedBudget]
    """The scoped budgets that counted at least one allowed debit: to be stored."""


def decide_many(wallet: WalletAccount, debits: Sequence[DebitRequest], now: datetime, *,
                used: Collection[str] = (), budgets: Sequence[ScopedBudget] = ()) -> DecidedBatch:
    """A batch of debits under one lock, as :func:`decide_and_apply` one after the other: each is
    decided against ``wallet`` as the earlier ones left it (``wallet`` is changed in place) and on
    those of ``budgets`` that are its project's and token's. A key in ``used`` (in the ledger
    before the batch) or allowed earlier in the batch answers as a replay and changes nothing; the
    first has no transaction in its outcome (storage has it), the second the one the batch stamped.
    Written once for the usage batch and the SQL adapter's ``debit_many``; the in-memory adapter's
    ``debit_many`` calls ``debit`` one by one, the reference the contract compares them with."""
    sequence = DebitSequence(wallet, now, used=used, budgets=budgets)
    outcomes = sequence.decide(debits)
    return DecidedBatch(outcomes=outcomes, written=sequence.written, budgets=sequence.budgets)


class DebitSequence:
    """:func:`decide_many` in steps: each :meth:`decide` call continues the sequence where the
    previous one left ``wallet``, the budgets and the keys stamped so far, so a batch decided in
    parts is decided exactly as in one call. The usage batch decides its next part while storage
    writes the one before (:meth:`billing_core.ports.UsageRepository.record_debits`)."""

    def __init__(self, wallet: WalletAccount, now: datetime, *, used: Collection[str] = (),
                 budgets: Sequence[ScopedBudget] = ()) -> None:
        self.wallet = wallet
        """Changed in place by every allowed debit."""
        self._now = now
        self._used = used
        self._budgets = budgets
        self._stamped: dict[str, LedgerTransaction] = {}
        self._touched: dict[tuple[BudgetScope, uuid.UUID], ScopedBudget] = {}
        self.written: list[LedgerTransaction] = []
        """The stamped transactions of the allowed debits so far, in order: the ledger rows to append."""

    @property
    def budgets(self) -> list[ScopedBudget]:
        """The scoped budgets that counted at least one allowed debit so far: to be stored."""
        return list(self._touched.values())

    def decide(self, debits: Sequence[DebitRequest]) -> list[DebitOutcome]:
        """The outcome of each of ``debits``, in order, after those decided before."""
        wallet, now, used, budgets, stamped = self.wallet, self._now, self._used, self._budgets, self._stamped
        outcomes: list[DebitOutcome] = []
        for request in debits:
            key = request.transaction.idempotency_key
            if key in used or key in stamped:
                outcomes.append(DebitOutcome(decision=Decision(allowed=True), transaction=stamped.get(key),
                                             replayed=True, wallet=copy.copy(wallet)))
                continue
            scoped = applying(budgets, request.project_id, request.token_id) if budgets else []
            decision, stored = decide_and_apply(wallet, request.amount_micros, now, request.transaction, scoped)
            if stored is not None:
                stamped[key] = stored
                self.written.append(stored)
                self._touched.update((budget.key, budget) for budget in scoped)
            outcomes.append(DebitOutcome(decision=decision, transaction=stored, replayed=False,
                                         wallet=copy.copy(wallet)))
        return outcomes
