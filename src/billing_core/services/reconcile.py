"""Reconciliation: proof that an organization's books are consistent with everything that made them.

Beyond the balances (the stored wallet equals the sum of its postings, the ledger sums to zero, the
unbilled-usage account equals the uninvoiced hourly buckets), each check in :data:`CHECKS` repeats
one invariant of a money mutation that is applied exactly once (ADR 0009) and names what breaks it,
so a doubled refund, a doubled grant or a bucket invoiced twice cannot reconcile clean.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import msgspec

from billing_core import budgets as scoped
from billing_core.checkout import CheckoutStatus
from billing_core.errors import ReconciliationFailed
from billing_core.grants import unexplained_moves
from billing_core.ledger import Account, EntryKind, LedgerTransaction
from billing_core.payments import PaymentStatus
from billing_core.ports import UnitOfWork, iterate_pages
from billing_core.services.context import BillingContext
from billing_core.services.grants import catch_up
from billing_core.services.plan_subscriptions import PLAN_GRANT, TRIAL_GRANT
from billing_core.wallet import counters_at

Check = Callable[[BillingContext, UnitOfWork, uuid.UUID], list[str]]
"""An invariant check: reads through the unit of work and returns one line per problem found."""


class ReconcileReport(msgspec.Struct, frozen=True, kw_only=True):
    organization_id: uuid.UUID
    stored_wallet_micros: int
    ledger_wallet_micros: int
    stored_unbilled_micros: int
    ledger_unbilled_micros: int
    uninvoiced_usage_micros: int
    ledger_total_micros: int
    problems: tuple[str, ...] = ()
    """What the invariant checks found, one line each; empty when the books are consistent."""

    @property
    def balances_clean(self) -> bool:
        return (self.stored_wallet_micros == self.ledger_wallet_micros
                and self.stored_unbilled_micros == self.ledger_unbilled_micros
                and -self.ledger_unbilled_micros == self.uninvoiced_usage_micros
                and self.ledger_total_micros == 0)

    @property
    def clean(self) -> bool:
        return self.balances_clean and not self.problems


def refunds_match_payments(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Reconcile check (ADR 0009): per payment, the approved, not failed refund requests add up to
    its ``refunded_cents``, which never exceeds what was paid, and the ledger's refund entries for it
    move exactly those requests' credits out of the wallet."""
    problems: list[str] = []
    held_cents: dict[uuid.UUID, int] = {}
    held_micros: dict[uuid.UUID, int] = {}
    for request in uow.refunds.list(organization_id):
        if request.holds_money:
            held_cents[request.payment_id] = held_cents.get(request.payment_id, 0) + request.decision.amount_cents
            held_micros[request.payment_id] = (held_micros.get(request.payment_id, 0)
                                               + request.decision.credits_micros)
    booked: dict[str, int] = {}
    refunds = frozenset({EntryKind.CREDIT_REFUND})
    for tx in iterate_pages(lambda cursor: uow.ledger.list(organization_id, kinds=refunds, limit=200, cursor=cursor)):
        if tx.reference is not None:
            booked[tx.reference] = booked.get(tx.reference, 0) - tx.delta(Account.WALLET)
    for payment in iterate_pages(lambda cursor: uow.payments.list(organization_id, limit=200, cursor=cursor)):
        held = held_cents.get(payment.id, 0)
        if payment.refunded_cents != held:
            problems.append(f"payment {payment.id}: refunded_cents {payment.refunded_cents} but its approved "
                            f"refund requests add up to {held}")
        if not 0 <= payment.refunded_cents <= payment.amount_cents:
            problems.append(f"payment {payment.id}: refunded {payment.refunded_cents} of "
                            f"{payment.amount_cents} cents")
        credits = booked.get(str(payment.id), 0)
        if credits != held_micros.get(payment.id, 0):
            problems.append(f"payment {payment.id}: the ledger's refund entries move {credits} µ$ but its "
                            f"approved refund requests {held_micros.get(payment.id, 0)} µ$")
    return problems


def failed_payments_not_credited(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Reconcile check (ADR 0009): a payment that failed (or has not settled yet) has no credits in
    the wallet: no ledger entry under its key ``payment:<id>``, or one that its reversal
    ``payment-reversal:<id>`` took back in full. A settlement that lost a race to the failure, or
    a failure recorded after the credits without reversing them, cannot reconcile clean."""
    problems: list[str] = []
    for payment in iterate_pages(lambda cursor: uow.payments.list(organization_id, limit=200, cursor=cursor)):
        if payment.status not in (PaymentStatus.FAILED, PaymentStatus.PENDING):
            continue
        credited = uow.ledger.get_by_key(organization_id, f"payment:{payment.id}")
        if credited is None:
            continue
        reversal = uow.ledger.get_by_key(organization_id, f"payment-reversal:{payment.id}")
        left = credited.delta(Account.WALLET) + (reversal.delta(Account.WALLET) if reversal else 0)
        if left != 0:
            problems.append(f"payment {payment.id} is {payment.status} but {left} µ$ of its credits are "
                            "in the wallet")
    return problems

# --------------------------------------------------------------------------- checkouts and their grants


def _grants(uow: UnitOfWork, organization_id: uuid.UUID) -> list[LedgerTransaction]:
    grants = frozenset({EntryKind.GRANT})
    return list(iterate_pages(lambda cursor: uow.ledger.list(organization_id, kinds=grants, limit=200,
                                                             cursor=cursor)))


def subscription_grants(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Trial and plan-credit grants against the subscriptions they were made for: each names a
    subscription of this organization, a trial grant (one per subscription, by its key) only one
    that had a trial, a plan-credit grant (one per subscription period, by its key) only a period
    the subscription has begun."""
    subscriptions = {sub.id: sub for sub in uow.plan_subscriptions.list(organization_id)}
    problems = []
    for grant in _grants(uow, organization_id):
        prefix, _, rest = grant.idempotency_key.partition(":")
        if prefix not in (TRIAL_GRANT, PLAN_GRANT):
            continue
        named, _, period = rest.partition(":")
        try:
            sub = subscriptions.get(uuid.UUID(named))
        except ValueError:
            sub = None
        if sub is None:
            problems.append(f"grant {grant.idempotency_key} names no subscription of the organization")
        elif prefix == TRIAL_GRANT and sub.trial_end is None:
            problems.append(f"trial grant {grant.idempotency_key} for subscription {sub.id}, which had no trial")
        elif prefix == PLAN_GRANT and not _begun(period, sub.current_period_start):
            problems.append(f"plan-credit grant {grant.idempotency_key} for a period subscription {sub.id} "
                            "has not begun")
    return problems


def _begun(period_start: str, current_period_start: datetime) -> bool:
    try:
        start = datetime.fromisoformat(period_start)
    except ValueError:
        return False
    return start.tzinfo is not None and start <= current_period_start


def one_subscription_per_provider_id(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """One plan subscription per provider subscription id (the database's UNIQUE says so too)."""
    problems = []
    counted = Counter(sub.provider_subscription_id for sub in uow.plan_subscriptions.list(organization_id)
                      if sub.provider_subscription_id is not None)
    for provider_id, count in sorted(counted.items()):
        first = uow.plan_subscriptions.by_provider_id(provider_id)
        if count > 1 or first is None or first.organization_id != organization_id:
            problems.append(f"provider subscription {provider_id} has {count} plan subscriptions here"
                            + ("" if first is None or first.organization_id == organization_id
                               else " and belongs to another organization"))
    return problems


def checkout_subscriptions(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Every completed checkout of the organization (its own, or a guest checkout it claimed)
    activated exactly one subscription of it, no other checkout activated that one, and every plan
    subscription comes from one completed checkout."""
    subscriptions = {sub.id for sub in uow.plan_subscriptions.list(organization_id)}
    activated: Counter[uuid.UUID] = Counter()
    problems = []
    for session in uow.checkouts.for_organization(organization_id):
        if session.status != CheckoutStatus.COMPLETE:
            if session.subscription_id is not None:
                problems.append(f"checkout {session.id} is {session.status} but names a subscription")
        elif session.subscription_id is None or session.subscription_id not in subscriptions:
            problems.append(f"completed checkout {session.id} has no subscription of the organization")
        else:
            activated[session.subscription_id] += 1
    for subscription_id in sorted(subscriptions, key=str):
        if activated[subscription_id] != 1:
            problems.append(f"subscription {subscription_id} comes from {activated[subscription_id]} "
                            "completed checkouts, not one")
    return problems


def invoices_count_their_buckets(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Every invoice counts exactly the usage buckets marked with it, in total and per line, and no
    bucket is marked with an invoice that does not exist (issue 14: a close marked buckets its
    invoice did not count)."""
    marked: dict[uuid.UUID | None, dict[tuple[uuid.UUID, uuid.UUID | None], tuple[int, int]]] = {}
    for line in uow.usage.invoiced_totals(organization_id):
        marked.setdefault(line.invoice_id, {})[(line.product_id, line.project_id)] = (line.quantity,
                                                                                       line.amount_micros)
    problems: list[str] = []
    for invoice in iterate_pages(lambda cursor: uow.invoices.list(organization_id, limit=200, cursor=cursor)):
        lines = marked.pop(invoice.id, {})
        counted = sum(amount for _quantity, amount in lines.values())
        name = f"invoice {invoice.number or invoice.id}"
        if counted != invoice.usage_micros:
            problems.append(f"{name} counts {invoice.usage_micros} µ$ of usage; the buckets marked with it "
                            f"sum to {counted} µ$")
        items = {(i.product_id, i.project_id): (i.quantity, i.amount_micros) for i in invoice.items}
        if items != lines:
            problems.append(f"{name}: its lines {sorted(items.values())} differ from the buckets marked with "
                            f"it {sorted(lines.values())} (quantity, µ$ per product and project)")
    for invoice_id, lines in marked.items():
        problems.append(f"usage buckets of {sum(a for _q, a in lines.values())} µ$ are marked with invoice "
                        f"{invoice_id}, which does not exist")
    return problems


def held_matches_active_holds(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """The wallet's ``held_micros`` is the sum of the organization's active holds (ADR 0011)."""
    problems: list[str] = []
    active = uow.holds.active(organization_id)
    held = uow.wallets.get(organization_id).held_micros
    if held != sum(h.amount_micros for h in active):
        problems.append(f"the wallet holds {held} µ$ but its active holds add up to "
                        f"{sum(h.amount_micros for h in active)} µ$")
    return problems


def scope_counters_explained(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Every project and token budget's counters are explained by usage (ADR 0017): the wallet
    counts its budgets; what a scope holds is what its active holds reserve, and what it counts as
    spent this day and month by the net usage its events recorded (a budget counts from its
    creation, so it may count less, never more)."""
    problems: list[str] = []
    budgets = uow.budgets.list(organization_id)
    if uow.wallets.get(organization_id).scoped_budgets != len(budgets):
        problems.append(f"the wallet counts {uow.wallets.get(organization_id).scoped_budgets} scoped budgets "
                        f"but {len(budgets)} are stored")
    if not budgets:
        return problems
    now = ctx.clock.now()
    totals = uow.usage.scope_totals(organization_id)
    active = uow.holds.active(organization_id)
    for budget in budgets:
        name = f"{budget.scope.value} budget {budget.scope_id}"
        in_scope = sum(h.amount_micros for h in active if scoped.in_scope(budget, h))
        if budget.held_micros != in_scope:
            problems.append(f"{name} holds {budget.held_micros} µ$ but its active holds add up to {in_scope} µ$")
        counters = counters_at(budget, now)
        used = totals.get((budget.scope, budget.scope_id), 0)
        if max(counters.today, counters.month) > max(used, 0):
            problems.append(f"{name} counts {counters.month} µ$ this month ({counters.today} µ$ today) but its "
                            f"events record {used} µ$ of usage")
    return problems


def grants_explain_wallet(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Every micro-dollar of the wallet is explained by grants (ADR 0016): after a catch-up (under
    the wallet lock, in the reconcile's unit of work, which is not committed), the grants not
    expired by an entry less the usage no grant paid equal the real-time balance; each ledger
    transaction's movements add up to its balance delta (a debit's draws plus its uncovered part
    are its amount; a run of draws stored as one adds up to its debits: ``unexplained_moves``);
    no grant's remaining is negative or above its amount; each expired grant has its expiry entry."""
    problems: list[str] = []
    uow.wallets.lock(organization_id)
    state = catch_up(uow, organization_id)
    balance = uow.wallets.get(organization_id).balance_micros
    every = uow.grants.list(organization_id)
    explained = sum(g.remaining_micros for g in every if g.expired_by is None) - state.uncovered_micros
    if explained != balance:
        problems.append(f"the grants explain {explained} µ$ (uncovered {state.uncovered_micros} µ$) "
                        f"but the balance is {balance} µ$")
    for grant in every:
        if not 0 <= grant.remaining_micros <= grant.amount_micros:
            problems.append(f"grant {grant.id} has {grant.remaining_micros} µ$ left of {grant.amount_micros} µ$")
    expiries: dict[uuid.UUID, str | None] = {}
    ledger: list[tuple[int, str, int]] = []
    sequence = 0
    while batch := uow.ledger.after(organization_id, sequence):
        for item in batch:
            tx = item.transaction
            ledger.append((item.sequence, tx.idempotency_key, tx.balance_delta))
            if tx.kind == EntryKind.GRANT_EXPIRY:
                expiries[tx.id] = tx.reference
        sequence = batch[-1].sequence
    problems += unexplained_moves(uow.grants.span_totals(organization_id), ledger)
    for grant in every:
        if grant.expired_by is not None and grant.expired_by not in expiries:
            problems.append(f"grant {grant.id} is expired by {grant.expired_by}, which is no expiry entry")
    return problems


UNGUARDED_KINDS = frozenset({EntryKind.PAYMENT_REVERSAL, EntryKind.CREDIT_REFUND})
"""Entries that take credit out of the wallet without the spend guard's decision: a chargeback or a
refund of a payment takes its credits back even when they were spent."""


def balance_within_credit_line(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """The real-time balance is not below the credit line (``-credit_line_micros``) but by what
    entries outside the spend guard took (:data:`UNGUARDED_KINDS`). Every debit is decided with
    active holds counted as spent, and a grant's expiry never takes credit a hold reserves (ADR
    0016), so a settle cannot overdraw the wallet; an expiry that took reserved credit would leave
    the balance below the line here, with every other check clean."""
    wallet = uow.wallets.get(organization_id)
    floor = -wallet.limits.credit_line_micros
    if wallet.balance_micros >= floor:
        return []
    taken = -sum(tx.delta(Account.WALLET) for tx in iterate_pages(
        lambda cursor: uow.ledger.list(organization_id, kinds=UNGUARDED_KINDS, limit=200, cursor=cursor)))
    if wallet.balance_micros + max(taken, 0) >= floor:
        return []
    return [f"the balance {wallet.balance_micros} µ$ is below the credit line {floor} µ$ "
            f"(payment reversals and refunds took {max(taken, 0)} µ$): an overdraft"]


CHECKS: tuple[Check, ...] = (
    held_matches_active_holds,
    scope_counters_explained,
    balance_within_credit_line,
    grants_explain_wallet,
    refunds_match_payments,
    failed_payments_not_credited,
    invoices_count_their_buckets,
    subscription_grants,
    one_subscription_per_provider_id,
    checkout_subscriptions,
)
"""Every invariant check :func:`reconcile` runs besides the balances."""


def reconcile(ctx: BillingContext, *, organization_id: uuid.UUID, strict: bool = False) -> ReconcileReport:
    """Prove the stored balances equal the sum of postings, the ledger sums to zero, the
    unbilled-usage account equals the uninvoiced hourly buckets, and every check in :data:`CHECKS`
    holds. ``strict`` raises ReconciliationFailed instead of returning an unclean report."""
    with ctx.uow() as uow:
        wallet = uow.wallets.get(organization_id)
        sums = uow.ledger.account_sums(organization_id)
        far_future = datetime.max.replace(tzinfo=ctx.clock.now().tzinfo)
        uninvoiced = sum(b.amount_micros for b in uow.usage.uninvoiced_totals(organization_id, far_future))
        problems = tuple(problem for check in CHECKS for problem in check(ctx, uow, organization_id))
    result = ReconcileReport(
        organization_id=organization_id, stored_wallet_micros=wallet.wallet_micros,
        ledger_wallet_micros=sums.get(Account.WALLET, 0), stored_unbilled_micros=wallet.unbilled_micros,
        ledger_unbilled_micros=sums.get(Account.UNBILLED_USAGE, 0), uninvoiced_usage_micros=uninvoiced,
        ledger_total_micros=sum(sums.values()), problems=problems)
    if strict and not result.clean:
        raise ReconciliationFailed(f"organization {organization_id} does not reconcile: {result}")
    return result
