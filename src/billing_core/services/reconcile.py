"""Reconciliation: proof that an organization's books are consistent with everything that made them.

Beyond the balances (the stored wallet equals the sum of its postings, the ledger sums to zero, the
unbilled-usage account equals the uninvoiced hourly buckets), each check in :data:`CHECKS` repeats
one invariant of a money mutation that is applied exactly once (ADR 0009) and names what breaks it,
so a doubled refund, a doubled grant or a bucket invoiced twice cannot reconcile clean.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import msgspec

from billing_core.errors import ReconciliationFailed
from billing_core.ledger import Account, EntryKind
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext

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
    cursor: str | None = None
    while True:
        page = uow.ledger.list(organization_id, kinds=frozenset({EntryKind.CREDIT_REFUND}), limit=200, cursor=cursor)
        for tx in page.items:
            if tx.reference is not None:
                booked[tx.reference] = booked.get(tx.reference, 0) - tx.delta(Account.WALLET)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    cursor = None
    while True:
        payments = uow.payments.list(organization_id, limit=200, cursor=cursor)
        for payment in payments.items:
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
        if payments.next_cursor is None:
            break
        cursor = payments.next_cursor
    return problems


CHECKS: tuple[Check, ...] = (
    refunds_match_payments,
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
