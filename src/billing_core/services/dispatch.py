"""Deliver the outbox: emails, outbound webhooks, legal invoices, credit notes, auto-recharges.

Each message is read in one unit of work, delivered outside any transaction, and marked sent (or
scheduled for retry with backoff, or dead-lettered after the retry horizon) in another. Delivery
is at-least-once; every handler is idempotent on the far side (legal documents by invoice id,
provider calls by idempotency key) so a crash between delivery and marking repeats nothing but
the call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from billing_core.einvoice import EInvoiceInvalid, require_valid
from billing_core.errors import BillingError
from billing_core.money import Money
from billing_core.outbox import OutboxMessage, OutboxStatus, OutboxTopic, next_attempt
from billing_core.ports import (
    Attachment,
    EInvoiceRenderer,
    EmailMessage,
    LegalInvoicing,
    Mailer,
    WebhookDelivery,
    WebhookSender,
)
from billing_core.services.context import BillingContext
from billing_core.services.einvoicing import invoice_terms
from billing_core.services.notifications import enqueue_email
from billing_core.services.payments import run_auto_recharge

CLAIM_LEASE = timedelta(minutes=10)
"""The default of ``BillingPolicy.outbox_lease``."""


@dataclass(frozen=True, kw_only=True)
class Deliverers:
    mailer: Mailer
    webhooks: WebhookSender
    legal: LegalInvoicing
    einvoice: EInvoiceRenderer | None = None
    """Renders e-invoice XML for download (``GET …/invoices/{id}/xml``); None: not offered."""


class DispatchReport(msgspec.Struct, kw_only=True):
    sent: int = 0
    retried: int = 0
    dead: int = 0


def dispatch(ctx: BillingContext, deliverers: Deliverers, *, limit: int = 100) -> DispatchReport:
    """Deliver what is due now. Returns counts; never raises for a failing message."""
    now = ctx.clock.now()
    claimed_until = now + ctx.policy.outbox_lease
    with ctx.uow() as uow:
        due = uow.outbox.due(now, limit)
        # Claim what we took: pushed past a lease, the messages are not due for another dispatcher
        # while we deliver them, and come back by themselves if this one dies. The lease's end is
        # also the claim's fence: an outcome is recorded only while the message is still due then.
        for message in due:
            message.next_attempt_at = claimed_until
            uow.outbox.save(message)
        uow.commit()
    report = DispatchReport()
    for message in due:
        # The whole batch was claimed for one lease. Past half of it, what is left goes back to the
        # queue untouched (its claim lapses by itself): a slow batch must not deliver a message that
        # another dispatcher may already have claimed again, which would send it twice.
        if ctx.clock.now() - now > ctx.policy.outbox_lease / 2:
            break
        try:
            _deliver(ctx, deliverers, message)
        except Exception as exc:
            _record_failure(ctx, message, exc, report, claimed_until)
        else:
            if _record_success(ctx, message, claimed_until):
                report.sent += 1
    return report


def _record_success(ctx: BillingContext, message: OutboxMessage, claimed_until: datetime) -> bool:
    """Mark the message sent, if it is still this dispatcher's claim: past a lapsed lease another
    dispatcher owns it, and its outcome (sent, or a retry) is the one that stands. False then."""
    with ctx.uow() as uow:
        message.status = OutboxStatus.SENT
        message.attempts += 1
        message.sent_at = ctx.clock.now()
        message.last_error = None
        recorded = uow.outbox.save_claimed(message, claimed_until)
        uow.commit()
    return recorded


def _record_failure(ctx: BillingContext, message: OutboxMessage, exc: Exception, report: DispatchReport,
                    claimed_until: datetime) -> None:
    now = ctx.clock.now()
    message.attempts += 1
    detail = exc.message if isinstance(exc, BillingError) else type(exc).__name__
    message.last_error = detail[:500]
    # A document that fails EN 16931 fails the same way on every retry: dead at once, naming the rule,
    # for an operator to see (the fix is data: the buyer's address, the seller settings).
    retry_at = None if isinstance(exc, EInvoiceInvalid) else next_attempt(message, now)
    if retry_at is None:
        message.status = OutboxStatus.DEAD
    else:
        message.next_attempt_at = retry_at
    with ctx.uow() as uow:
        recorded = uow.outbox.save_claimed(message, claimed_until)
        uow.commit()
    if not recorded:  # another dispatcher's claim now: its outcome stands, not this stale failure
        return
    if retry_at is None:
        report.dead += 1
    else:
        report.retried += 1


def _deliver(ctx: BillingContext, deliverers: Deliverers, message: OutboxMessage) -> None:
    payload = message.payload
    if message.topic == OutboxTopic.EMAIL:
        _send_email(ctx, deliverers, message)
    elif message.topic == OutboxTopic.WEBHOOK:
        with ctx.uow() as uow:
            org = uow.organizations.get(message.organization_id)
        deliverers.webhooks.send(url=str(payload["url"]), secret=org.webhook_secret or "",
                                 event=WebhookDelivery(id=str(payload["event_id"]), type=str(payload["type"]),
                                                       created=datetime.fromisoformat(str(payload["created"])),
                                                       data=dict(payload["data"])))
    elif message.topic == OutboxTopic.LEGAL_INVOICE:
        _issue_legal_invoice(ctx, deliverers, message.organization_id, uuid.UUID(str(payload["invoice_id"])))
    elif message.topic == OutboxTopic.LEGAL_CREDIT_NOTE:
        _issue_credit_note(ctx, deliverers, message)
    elif message.topic == OutboxTopic.AUTO_RECHARGE:
        method = payload.get("payment_method_id")
        run_auto_recharge(ctx, organization_id=message.organization_id, amount_micros=int(payload["amount_micros"]),
                          payment_method_id=uuid.UUID(str(method)) if method else None, operation_id=message.id)


def _send_email(ctx: BillingContext, deliverers: Deliverers, message: OutboxMessage) -> None:
    payload = message.payload
    attachments: tuple[Attachment, ...] = ()
    invoice_id = payload.get("invoice_id")
    if invoice_id:
        with ctx.uow() as uow:
            invoice = uow.invoices.get(message.organization_id, uuid.UUID(str(invoice_id)))
        if invoice.legal_document_id:
            pdf = deliverers.legal.pdf(invoice.legal_document_id)
            attachments = (Attachment(f"invoice-{invoice.number}.pdf", "application/pdf", pdf),)
    # The message id names the outbox message: a send repeated after a crash (at-least-once) carries
    # the same Message-ID, so recipients and mail systems can tell it is the same mail.
    deliverers.mailer.send(EmailMessage(to=str(payload["to"]), subject=str(payload["subject"]),
                                        text=str(payload["text"]), html=payload.get("html"),
                                        attachments=attachments, message_id=f"outbox-{message.id}"))


def _issue_legal_invoice(ctx: BillingContext, deliverers: Deliverers, organization_id: uuid.UUID,
                         invoice_id: uuid.UUID) -> None:
    with ctx.uow() as uow:
        invoice = uow.invoices.get(organization_id, invoice_id)
        org = uow.organizations.get(organization_id)
        settings = uow.settings.get(organization_id)
    # Fail closed: the EN 16931 terms are checked before anything is created anywhere; an invoice
    # whose e-invoice does not validate is not issued, and no hosted invoice or email follows.
    terms, buyer_tax_id = invoice_terms(ctx, invoice)
    issued = require_valid(terms)
    document = deliverers.legal.issue(invoice, org, settings.address, settings.billing_email, buyer_tax_id, issued)
    hosted = None
    if org.provider_customer_id and invoice.amount_due.cents > 0 and invoice.hosted_invoice_url is None:
        hosted = ctx.payments.issue_invoice(
            customer_id=org.provider_customer_id, amount_cents=invoice.amount_due.cents,
            currency_iso=invoice.currency_iso, description=f"Usage invoice {invoice.number}",
            reference=str(invoice.id), idempotency_key=f"hosted-invoice:{invoice.id}")
    now = ctx.clock.now()
    with ctx.uow() as uow:
        invoice = uow.invoices.get(organization_id, invoice_id)
        invoice.legal_document_id = document.document_id
        # The e-invoice route serves these terms from now on: the buyer's later address is not the invoice's.
        uow.invoices.record_einvoice(organization_id, invoice_id, issued)
        if hosted is not None:
            invoice.hosted_invoice_url = hosted.hosted_invoice_url
        uow.invoices.save(invoice)
        due = invoice.amount_due
        enqueue_email(uow, organization_id=organization_id, to=settings.billing_email,
                      subject=f"Invoice {invoice.number}",
                      text=_invoice_email_text(invoice.number or "", invoice.period_start, due,
                                               invoice.hosted_invoice_url),
                      now=now, dedupe_key=f"invoice:{invoice.id}", invoice_id=invoice.id)
        uow.commit()


def _invoice_email_text(number: str, period_start: datetime, due: Money, hosted_url: str | None) -> str:
    lines = [f"Your invoice {number} for {period_start:%B %Y} is attached.", f"Amount due: {due.format()}."]
    if hosted_url:
        lines.append(f"Pay online: {hosted_url}")
    return "\n".join(lines)


def _issue_credit_note(ctx: BillingContext, deliverers: Deliverers, message: OutboxMessage) -> None:
    payload = message.payload
    with ctx.uow() as uow:
        invoice = uow.invoices.get(message.organization_id, uuid.UUID(str(payload["invoice_id"])))
    if invoice.legal_document_id is None:
        # The invoice was voided before its legal document existed: nothing to cancel.
        return
    deliverers.legal.credit_note(invoice.legal_document_id, amount_cents=int(payload["amount_cents"]),
                                 reason=str(payload["reason"]), idempotency_key=f"credit-note:{message.id}")


def dead_letters(ctx: BillingContext, *, organization_id: uuid.UUID | None = None) -> list[OutboxMessage]:
    with ctx.uow() as uow:
        return uow.outbox.list(status=OutboxStatus.DEAD, organization_id=organization_id)


def requeue_dead_letters(ctx: BillingContext, *, message_ids: Sequence[uuid.UUID] | None = None,
                         organization_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Give dead-lettered messages one more delivery, due now: the ones named, or every dead
    letter (of one organization). For an operator who fixed the cause (an outage ended, a buyer's
    address was completed). Each message comes back at most once, whatever runs concurrently; the
    retry horizon still counts from the message's creation, so one that fails again is dead again
    at once, for the operator to look at. Returns the ids requeued; a named id that is not dead is
    left out."""
    now = ctx.clock.now()
    requeued: list[uuid.UUID] = []
    with ctx.uow() as uow:
        if message_ids is None:
            seen: set[uuid.UUID] = set()  # a page ends the loop even if a requeue lost a race
            while True:
                batch = [m.id for m in uow.outbox.list(status=OutboxStatus.DEAD, organization_id=organization_id,
                                                       limit=500) if m.id not in seen]
                if not batch:
                    break
                seen.update(batch)
                requeued.extend(i for i in batch if uow.outbox.requeue(i, now))
        else:
            requeued = [i for i in message_ids if uow.outbox.requeue(i, now)]
        uow.commit()
    return requeued
