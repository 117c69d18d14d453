"""Period close and invoices: usage becomes an internal invoice, credit is applied before the
amount due is final, a gapless legal number is assigned, and delivery is queued in the outbox.

Each organization's close is one unit of work, so a close killed at any point either happened
whole or not at all, and a re-run skips what is done: no duplicate invoice, number, ledger entry
or email. Usage arriving late for a closed period is uninvoiced and goes on the next invoice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from billing_core.billing_settings import TaxRegistrationStatus
from billing_core.errors import BillingError, InvalidInput, InvoicePaid, NotFound, PeriodNotEnded
from billing_core.invoices import Invoice, InvoiceStatus, build_items, credit_to_apply
from billing_core.ledger import Account, EntryKind, transaction
from billing_core.money import MICROS_PER_CENT
from billing_core.outbox import OutboxTopic, new_message
from billing_core.permissions import Action, Actor, require
from billing_core.ports import LegalInvoicing, Page, UnitOfWork, check_page_limit
from billing_core.services.context import BillingContext
from billing_core.tax import tax_line


def parse_period(period: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` → [first instant of the month, first instant of the next), UTC."""
    try:
        year_text, month_text = period.split("-")
        year, month = int(year_text), int(month_text)
        start = datetime(year, month, 1, tzinfo=UTC)
    except (ValueError, AttributeError):
        raise InvalidInput("period", "period must be YYYY-MM", code="invalid_period") from None
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_period(now: datetime) -> str:
    last = now.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


class CloseFailure(msgspec.Struct, frozen=True, kw_only=True):
    """An organization whose close failed; nothing of it was written, a re-run retries it."""

    organization_id: uuid.UUID
    code: str
    message: str


class CloseReport(msgspec.Struct, kw_only=True):
    period: str
    organizations: int = 0
    """Organizations with uninvoiced usage up to the period's end, plus those already invoiced for it."""
    invoices_created: int = 0
    already_closed: int = 0
    """Organizations that had an invoice for the period before this run reached them (an earlier or a
    concurrent run made it); usage they reported since is left for their next invoice."""
    without_usage: int = 0
    invoice_ids: list[uuid.UUID] = msgspec.field(default_factory=list)
    failed: list[CloseFailure] = msgspec.field(default_factory=list)
    """Organizations whose close failed (the others were closed regardless)."""


def close_period(ctx: BillingContext, *, period: str | None = None, organization_id: uuid.UUID | None = None,
                 progress: Callable[[int, int], None] | None = None) -> CloseReport:
    """Invoice every organization's uninvoiced usage up to the end of ``period`` (default: the
    month before now). ``progress(done, total)`` is called after each organization.

    Safe to run concurrently with itself and with usage: organizations already invoiced for the
    period (by an earlier or a concurrent run) count as ``already_closed``; an organization whose
    close fails is reported in ``failed`` and the others are still closed."""
    period = period or previous_period(ctx.clock.now())
    start, end = parse_period(period)
    if end > ctx.clock.now():
        raise PeriodNotEnded("period", "a period can be closed only after it has ended")
    with ctx.uow() as uow:
        if organization_id is not None:
            uow.organizations.get(organization_id)
            org_ids = [organization_id]
            invoiced: set[uuid.UUID] = set()
        else:
            org_ids = uow.usage.organizations_with_uninvoiced(end)
            invoiced = set(uow.invoices.organizations_for_period(start)).difference(org_ids)
    # Closed before this run listed them, with no late usage since: nothing to do but say so.
    report = CloseReport(period=period, organizations=len(org_ids) + len(invoiced), already_closed=len(invoiced))
    for done, org_id in enumerate(org_ids, start=1):
        try:
            invoice, created = _close_one(ctx, org_id, start, end)
        except BillingError as exc:
            # One organization's failure (a product gone from the catalog, the database refusing a
            # value) must not keep the others uninvoiced; nothing of it was committed.
            report.failed.append(CloseFailure(organization_id=org_id, code=exc.code, message=exc.message))
        else:
            if invoice is None:
                report.without_usage += 1
            elif created:
                report.invoices_created += 1
                report.invoice_ids.append(invoice.id)
            else:
                report.already_closed += 1
        if progress is not None:
            progress(done, len(org_ids))
    return report


def _close_one(ctx: BillingContext, organization_id: uuid.UUID, start: datetime,
               end: datetime) -> tuple[Invoice | None, bool]:
    """One organization's close, in one unit of work under its wallet lock (ADR 0009).

    The lock is taken first, as every debit takes it first: usage of the organization waits for the
    close or the close for it, in one order, so they cannot deadlock, and a concurrent close of the
    same period waits and then finds the invoice. The buckets are marked and summed in one step
    (:meth:`~billing_core.ports.UsageRepository.put_on_invoice`) and the invoice is built from
    exactly those sums. Usage recorded after the close (late usage for the period) opens a new,
    uninvoiced bucket and goes on the next invoice, which says it includes earlier usage."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        wallet = uow.wallets.lock(organization_id)
        existing = uow.invoices.for_period(organization_id, start)
        if existing is not None:
            return existing, False
        invoice_id = uuid.uuid4()
        buckets = uow.usage.put_on_invoice(organization_id, end, invoice_id)
        if not buckets:
            return None, False
        org = uow.organizations.get(organization_id)
        settings = uow.settings.get(organization_id)
        items = build_items(buckets, ctx.catalog, org.currency_iso)
        usage_micros = sum(b.amount_micros for b in buckets)
        subtotal = sum(i.amount.cents for i in items)
        credit = credit_to_apply(subtotal, wallet.wallet_micros)
        verified = any(r.status == TaxRegistrationStatus.VERIFIED
                       for r in uow.settings.tax_registrations(organization_id))
        country = settings.address.country if settings.address else None
        tax = tax_line(max(subtotal - credit, 0), country, verified, ctx.tax)
        invoice = Invoice(
            id=invoice_id, organization_id=organization_id, period_start=start, period_end=end,
            status=InvoiceStatus.DRAFT, currency_iso=org.currency_iso, items=items, usage_micros=usage_micros,
            subtotal_cents=subtotal, credit_applied_cents=credit, tax=tax, created_at=now,
            includes_earlier_usage=any(b.hour < start for b in buckets))
        invoice.number = uow.invoices.next_number(ctx.policy.invoice_number_prefix)
        invoice.finalized_at = now
        invoice.due_at = now + timedelta(days=ctx.policy.invoice_due_days)
        invoice.move_to(InvoiceStatus.OPEN if invoice.amount_due.cents > 0 else InvoiceStatus.PAID, now)
        uow.invoices.add(invoice)
        _post_close_entry(uow, invoice, now)
        uow.outbox.add(new_message(organization_id=organization_id, topic=OutboxTopic.LEGAL_INVOICE,
                                   payload={"invoice_id": str(invoice.id)}, created_at=now,
                                   dedupe_key=f"legal-invoice:{invoice.id}"))
        uow.commit()
        return invoice, True


def _post_close_entry(uow: UnitOfWork, invoice: Invoice, now: datetime) -> None:
    """Clear the invoiced usage from unbilled usage: the wallet pays what it can ("Applied credit
    balance to invoice"), the rest is owed (receivable), and the sub-cent rounding of the lines
    goes to revenue so the entry balances to the micro-dollar."""
    applied = invoice.credit_applied_cents * MICROS_PER_CENT
    owed = (invoice.subtotal_cents - invoice.credit_applied_cents) * MICROS_PER_CENT
    rounding = invoice.usage_micros - invoice.subtotal_cents * MICROS_PER_CENT
    postings = [(Account.UNBILLED_USAGE, invoice.usage_micros), (Account.WALLET, -applied),
                (Account.RECEIVABLE, -owed), (Account.REVENUE, -rounding)]
    nonzero = [(account, amount) for account, amount in postings if amount != 0]
    if len(nonzero) < 2:
        return
    uow.wallets.post(transaction(
        organization_id=invoice.organization_id, idempotency_key=f"invoice-close:{invoice.organization_id}:"
        f"{invoice.period_start.isoformat()}", kind=EntryKind.INVOICE_CREDIT_APPLIED,
        description=f"Applied credit balance to invoice {invoice.number}", created_at=now, postings=nonzero,
        reference=str(invoice.id)))


def list_invoices(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
                  cursor: str | None = None) -> Page[Invoice]:
    require(actor, Action.VIEW_BILLING, organization_id)
    check_page_limit(limit)
    with ctx.uow() as uow:
        return uow.invoices.list(organization_id, limit=limit, cursor=cursor)


def get_invoice(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        return uow.invoices.get(organization_id, invoice_id)


def payments_due(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> list[Invoice]:
    """Collectible open invoices, oldest due first."""
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        invoices = uow.invoices.list(organization_id, limit=1000).items
    due = [i for i in invoices if i.is_collectible]
    due.sort(key=lambda i: (i.due_at or i.created_at, str(i.id)))
    return due


def mark_invoice_paid(ctx: BillingContext, *, organization_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice:
    """The provider collected the amount due (webhook). Idempotent."""
    with ctx.uow() as uow:
        invoice = mark_invoice_paid_in(ctx, uow, organization_id=organization_id, invoice_id=invoice_id)
        uow.commit()
        return invoice


def mark_invoice_paid_in(ctx: BillingContext, uow: UnitOfWork, *, organization_id: uuid.UUID,
                         invoice_id: uuid.UUID) -> Invoice:
    """:func:`mark_invoice_paid` inside the caller's unit of work (which commits), deciding under the
    organization's wallet lock on the invoice as it stands then. Raises NotFound."""
    now = ctx.clock.now()
    uow.wallets.lock(organization_id)
    invoice = uow.invoices.get(organization_id, invoice_id)
    if invoice.status == InvoiceStatus.PAID:
        return invoice
    owed = (invoice.subtotal_cents - invoice.credit_applied_cents) * MICROS_PER_CENT
    invoice.move_to(InvoiceStatus.PAID, now)
    if owed > 0:
        uow.wallets.post(transaction(
            organization_id=organization_id, idempotency_key=f"invoice-paid:{invoice.id}",
            kind=EntryKind.INVOICE_PAYMENT, description=f"Payment of invoice {invoice.number}", created_at=now,
            postings=[(Account.RECEIVABLE, owed), (Account.PAYMENT_CLEARING, -owed)],
            reference=str(invoice.id)))
    uow.invoices.save(invoice)
    return invoice


def void_invoice(ctx: BillingContext, *, organization_id: uuid.UUID, invoice_id: uuid.UUID,
                 reason: str) -> Invoice:
    """Cancel a finalized invoice: the number stays used (gapless), applied credit returns to the
    wallet, the debt is written off, and a credit note is queued for the legal document."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)  # ADR 0009: decided on the invoice as locked
        invoice = uow.invoices.get(organization_id, invoice_id)
        if invoice.status == InvoiceStatus.VOID:
            return invoice
        if invoice.status == InvoiceStatus.PAID and invoice.amount_due.cents > 0:
            raise InvoicePaid("a paid invoice is refunded, not voided")
        invoice.move_to(InvoiceStatus.VOID, now)
        applied = invoice.credit_applied_cents * MICROS_PER_CENT
        owed = (invoice.subtotal_cents - invoice.credit_applied_cents) * MICROS_PER_CENT
        postings = [(Account.WALLET, applied), (Account.RECEIVABLE, owed), (Account.REVENUE, -(applied + owed))]
        nonzero = [(a, m) for a, m in postings if m != 0]
        if len(nonzero) >= 2:
            uow.wallets.post(transaction(
                organization_id=organization_id, idempotency_key=f"invoice-void:{invoice.id}",
                kind=EntryKind.ADJUSTMENT, description=f"Invoice {invoice.number} voided", reason=reason[:200],
                created_at=now, postings=nonzero, reference=str(invoice.id)))
        uow.invoices.save(invoice)
        uow.outbox.add(new_message(organization_id=organization_id, topic=OutboxTopic.LEGAL_CREDIT_NOTE,
                                   payload={"invoice_id": str(invoice.id), "reason": reason[:200],
                                            "amount_cents": invoice.total.cents},
                                   created_at=now, dedupe_key=f"legal-credit-note:{invoice.id}"))
        uow.commit()
        return invoice


class LegalInvoicePdf(msgspec.Struct, frozen=True, kw_only=True):
    invoice: Invoice
    pdf: bytes
    filename: str


def legal_invoice_pdf(ctx: BillingContext, legal: LegalInvoicing, actor: Actor, *, organization_id: uuid.UUID,
                      invoice_id: uuid.UUID) -> LegalInvoicePdf:
    """The legal invoice's PDF from the legal-invoicing service, with its download name. NotFound
    until the legal invoice has been issued; ProviderUnavailable while the service is down."""
    invoice, document_id = legal_document(ctx, actor, organization_id=organization_id, invoice_id=invoice_id)
    return LegalInvoicePdf(invoice=invoice, pdf=legal.pdf(document_id),
                           filename=f"invoice-{invoice.number or invoice.id}.pdf")


def legal_document(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                   invoice_id: uuid.UUID) -> tuple[Invoice, str]:
    """The invoice and its legal document id; NotFound until the legal invoice has been issued."""
    invoice = get_invoice(ctx, actor, organization_id=organization_id, invoice_id=invoice_id)
    if invoice.legal_document_id is None:
        raise NotFound("legal invoice document", invoice_id)
    return invoice, invoice.legal_document_id
