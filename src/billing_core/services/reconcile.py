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
from billing_core.ledger import Account
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


def invoices_count_their_buckets(ctx: BillingContext, uow: UnitOfWork, organization_id: uuid.UUID) -> list[str]:
    """Every invoice counts exactly the usage buckets marked with it, in total and per line, and no
    bucket is marked with an invoice that does not exist (issue 14: a close marked buckets its
    invoice did not count)."""
    marked: dict[uuid.UUID | None, dict[tuple[uuid.UUID, uuid.UUID | None], tuple[int, int]]] = {}
    for line in uow.usage.invoiced_totals(organization_id):
        marked.setdefault(line.invoice_id, {})[(line.product_id, line.project_id)] = (line.quantity,
                                                                                       line.amount_micros)
    problems: list[str] = []
    cursor: str | None = None
    while True:
        page = uow.invoices.list(organization_id, limit=200, cursor=cursor)
        for invoice in page.items:
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
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    for invoice_id, lines in marked.items():
        problems.append(f"usage buckets of {sum(a for _q, a in lines.values())} µ$ are marked with invoice "
                        f"{invoice_id}, which does not exist")
    return problems


CHECKS: tuple[Check, ...] = (invoices_count_their_buckets,)
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
