"""Explain one stored usage event (issue 21, "Explain"): the chain from the event to the money.

event (what was reported) → price (the unit price it was priced at, what it was charged) → debit
(the ledger transaction ``usage:<event_id>``) → grants drawn (the credit grants that paid the debit,
ADR 0016, and what the credit line covered) → hold (the hold whose settle recorded it, if any) → invoice line (the
line of the invoice its hourly bucket went on, if a period close invoiced it) → refunds (the
automatic refund ``usage-refund:<event_id>`` that gave the charge back, if any).

Reads in one unit of work, after catching the organization's grants up with its ledger if they
lag (``services.grants.catch_up_organization``, under the wallet lock). Only recorded events are
stored (an allowed debit, a hold's settle); a denied event or an unknown id is
:class:`~billing_core.errors.UsageEventNotFound`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from billing_core.errors import NotFound, UsageEventNotFound
from billing_core.grants import GrantSource
from billing_core.holds import Hold, HoldOverrun, HoldStatus
from billing_core.invoices import Invoice, InvoiceStatus
from billing_core.ledger import LedgerTransaction
from billing_core.money import Money
from billing_core.permissions import Action, Actor, require
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.grants import catch_up_organization, draws_for
from billing_core.spend_guard import DenialReason
from billing_core.usage import UsageEvent, check_event_id, truncate_to_hour

# The suffix of the negative usage row an automatic refund records (``services.usage.refund_usage``).
_REFUND_ROW = ":refund"


class ExplainedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The usage event as stored."""

    event_id: str
    product_id: uuid.UUID
    product_code: str | None
    """The catalog's code and name for the product; None if the product left the catalog since."""
    product_name: str | None
    quantity: int
    """Negative for the row an automatic refund records (``refund_of`` names the event it reverses)."""
    project_id: uuid.UUID | None
    occurred_at: datetime
    recorded_at: datetime | None
    """When billing recorded it: the time of its debit (of the refund, for a refund's row)."""
    refund_of: str | None = None
    """For the negative row an automatic refund records (id ``<event_id>:refund``): the event it reverses."""


class ExplainedPrice(msgspec.Struct, frozen=True, kw_only=True):
    """How the event was priced: ``quantity`` × ``unit_price_micros`` as in force when it was recorded
    (stored with the event, so a later catalog change does not rewrite it)."""

    unit_price_micros: int
    unit: str | None
    """The product's unit in the catalog (None if the product left the catalog since)."""
    priced_micros: int
    """``quantity`` × ``unit_price_micros``."""
    amount_micros: int
    """What the event was charged: the priced amount, or less when a hold's settle capped it."""
    uncharged_micros: int
    """``priced_micros`` − ``amount_micros``: what a settle above its hold left uncharged."""


class ExplainedDebit(msgspec.Struct, frozen=True, kw_only=True):
    """The ledger transaction that charged the event (idempotency key ``usage:<event_id>``)."""

    transaction_id: uuid.UUID
    idempotency_key: str
    description: str
    amount_micros: int
    """Taken off the credit balance (positive)."""
    balance_after_micros: int | None
    created_at: datetime


class ExplainedHold(msgspec.Struct, frozen=True, kw_only=True):
    """The hold whose settle recorded the event (ADR 0011)."""

    hold_id: uuid.UUID
    status: HoldStatus
    held_micros: int
    """What the hold reserved."""
    max_quantity: int | None
    settled_quantity: int | None
    charged_micros: int
    uncharged_micros: int
    overrun_rule: HoldOverrun | None
    """The organization's over-hold rule, when the settle asked for more than the hold (None: it did not)."""
    overrun_denied_reason: DenialReason | None
    """Why ``allow_within_credit_line`` charged only the held amount (the spend guard's reason)."""
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None


class ExplainedInvoiceLine(msgspec.Struct, frozen=True, kw_only=True):
    """The invoice the event's hourly bucket went on, and its line for the event's product and project.
    The line sums every event of that product and project in the invoice's period."""

    invoice_id: uuid.UUID
    number: str | None
    status: InvoiceStatus
    period_start: datetime
    period_end: datetime
    product_id: uuid.UUID
    product: str
    project_id: uuid.UUID | None
    quantity: int
    unit: str
    unit_price_micros: int
    amount_micros: int
    amount: Money


class ExplainedGrantDraw(msgspec.Struct, frozen=True, kw_only=True):
    """What the debit took from one credit grant (ADR 0016), or a refund gave back to it."""

    grant_id: uuid.UUID
    source: GrantSource
    amount_micros: int
    """Positive: the micro-dollars drawn from the grant (given back, for a refund)."""


class ExplainedRefund(msgspec.Struct, frozen=True, kw_only=True):
    """An automatic refund of the event's charge (idempotency key ``usage-refund:<event_id>``)."""

    transaction_id: uuid.UUID
    idempotency_key: str
    reason: str | None
    amount_micros: int
    """Given back to the credit balance (positive)."""
    balance_after_micros: int | None
    created_at: datetime
    grants: list[ExplainedGrantDraw] = msgspec.field(default_factory=list)
    """The grants the refund gave back to (those the debit drew, or a new refund grant when one expired)."""


class UsageExplanation(msgspec.Struct, frozen=True, kw_only=True):
    """One usage event's chain, in the order money flows: event → price → debit → grants drawn →
    hold → invoice line → refunds. A link that does not exist (yet) is None or empty."""

    event: ExplainedEvent
    price: ExplainedPrice
    debit: ExplainedDebit | None
    """None when the event has no charge of its own (a refund's row)."""
    grants: list[ExplainedGrantDraw]
    """The grants the debit drew, in draw order (soonest expiry, promotional before paid, ...)."""
    credit_line_micros: int
    """What of the debit no grant paid: usage on the credit line (0 when grants covered it all)."""
    hold: ExplainedHold | None
    """The hold whose settle recorded the event; None for a plain usage report."""
    invoice_line: ExplainedInvoiceLine | None
    """None while the event's hourly bucket is on no invoice (the period is not closed yet)."""
    refunds: list[ExplainedRefund]


def explain_usage_event(ctx: BillingContext, actor: Actor, organization_id: uuid.UUID,
                        event_id: str) -> UsageExplanation:
    """The chain of one stored usage event of ``organization_id``. Anyone who may read usage may
    ask (``billing:read``: every role). ``UsageEventNotFound`` for an id the organization has not
    recorded (denied events are not stored); another organization is ``NotFound``."""
    require(actor, Action.VIEW_BILLING, organization_id)
    check_event_id(event_id)
    catch_up_organization(ctx, organization_id)
    with ctx.uow() as uow:
        event = uow.usage.get_event(organization_id, event_id)
        if event is None:
            raise UsageEventNotFound(event_id)
        refund_of = _refund_of(uow, event)
        charged = event.event_id if refund_of is None else None
        debit = uow.ledger.get_by_key(organization_id, f"usage:{charged}") if charged is not None else None
        refund = uow.ledger.get_by_key(organization_id, f"usage-refund:{refund_of or event.event_id}")
        hold = uow.holds.settled_by_event(organization_id, event.event_id) if charged is not None else None
        # When billing recorded the event: its debit, or for a refund's row the refund.
        recorded = debit if debit is not None else refund if refund_of is not None else None
        recorded_at = recorded.created_at if recorded is not None else None
        invoice_line = _invoice_line(uow, event, recorded_at)
        drawn = _draws(uow, organization_id, debit)
        given_back = _draws(uow, organization_id, refund)
    product_code = product_name = unit = None
    try:
        product = ctx.catalog.product(event.product_id)
        product_code, product_name, unit = product.code, product.name, product.unit
    except NotFound:
        pass
    priced = event.quantity * event.unit_price_micros
    return UsageExplanation(
        event=ExplainedEvent(event_id=event.event_id, product_id=event.product_id, product_code=product_code,
                             product_name=product_name, quantity=event.quantity, project_id=event.project_id,
                             occurred_at=event.occurred_at,
                             recorded_at=recorded_at, refund_of=refund_of),
        price=ExplainedPrice(unit_price_micros=event.unit_price_micros, unit=unit, priced_micros=priced,
                             amount_micros=event.amount_micros, uncharged_micros=priced - event.amount_micros),
        debit=_debit(debit) if debit is not None else None,
        grants=drawn,
        credit_line_micros=(-debit.balance_delta - sum(d.amount_micros for d in drawn)) if debit is not None else 0,
        hold=_hold(hold) if hold is not None else None,
        invoice_line=invoice_line,
        refunds=[_refund(refund, given_back)] if refund is not None else [],
    )


def _refund_of(uow: UnitOfWork, event: UsageEvent) -> str | None:
    """The event a refund's negative row reverses, if ``event`` is one: its id is the reversed id with
    ``:refund`` and that refund is in the ledger (a client may use such an id for a real event)."""
    if event.quantity >= 0 or not event.event_id.endswith(_REFUND_ROW):
        return None
    reversed_id = event.event_id[: -len(_REFUND_ROW)]
    refunded = uow.ledger.get_by_key(event.organization_id, f"usage-refund:{reversed_id}")
    return reversed_id if refunded is not None else None


def _invoice_line(uow: UnitOfWork, event: UsageEvent, recorded_at: datetime | None) -> ExplainedInvoiceLine | None:
    """The invoice line of the hourly bucket holding ``event``, or None while it is uninvoiced.

    An hour has one bucket per product and project until a period close invoices it; usage recorded
    for that hour afterwards opens a new bucket that goes on a later invoice. So when the hour has
    several buckets, the event is on the first invoice created after it was recorded (the close takes
    the wallet lock every debit takes, so it either saw the event or came before it), and in the
    open bucket if there is none."""
    hour = truncate_to_hour(event.occurred_at)
    buckets = [b for b in uow.usage.buckets(event.organization_id, hour, hour + timedelta(hours=1))
               if b.product_id == event.product_id and b.project_id == event.project_id]
    invoice_ids = [b.invoice_id for b in buckets if b.invoice_id is not None]
    if not invoice_ids:
        return None
    invoices = sorted((uow.invoices.get(event.organization_id, i) for i in set(invoice_ids)),
                      key=lambda i: (i.created_at, str(i.id)))
    invoice: Invoice | None
    if len(buckets) == 1 or recorded_at is None:
        invoice = invoices[0]
    else:
        invoice = next((i for i in invoices if i.created_at >= recorded_at), None)
    if invoice is None:
        return None
    for item in invoice.items:
        if (item.product_id, item.project_id) == (event.product_id, event.project_id):
            return ExplainedInvoiceLine(
                invoice_id=invoice.id, number=invoice.number, status=invoice.status,
                period_start=invoice.period_start, period_end=invoice.period_end, product_id=item.product_id,
                product=item.product, project_id=item.project_id, quantity=item.quantity, unit=item.unit,
                unit_price_micros=item.unit_price_micros, amount_micros=item.amount_micros, amount=item.amount)
    return None  # pragma: no cover - reconcile proves every invoiced bucket is on its invoice's lines


def _debit(tx: LedgerTransaction) -> ExplainedDebit:
    return ExplainedDebit(transaction_id=tx.id, idempotency_key=tx.idempotency_key, description=tx.description,
                          amount_micros=-tx.balance_delta, balance_after_micros=tx.wallet_balance_after,
                          created_at=tx.created_at)


def _hold(hold: Hold) -> ExplainedHold:
    return ExplainedHold(hold_id=hold.id, status=hold.status, held_micros=hold.amount_micros,
                         max_quantity=hold.max_quantity, settled_quantity=hold.settled_quantity,
                         charged_micros=hold.charged_micros, uncharged_micros=hold.uncharged_micros,
                         overrun_rule=hold.overrun, overrun_denied_reason=hold.overrun_denial,
                         created_at=hold.created_at, expires_at=hold.expires_at, closed_at=hold.closed_at)


def _refund(tx: LedgerTransaction, grants: list[ExplainedGrantDraw]) -> ExplainedRefund:
    return ExplainedRefund(transaction_id=tx.id, idempotency_key=tx.idempotency_key, reason=tx.reason,
                           amount_micros=tx.balance_delta, balance_after_micros=tx.wallet_balance_after,
                           created_at=tx.created_at, grants=grants)


def _draws(uow: UnitOfWork, organization_id: uuid.UUID, tx: LedgerTransaction | None) -> list[ExplainedGrantDraw]:
    """The grant movements of ``tx`` as positive amounts (a debit draws, a refund gives back)."""
    if tx is None:
        return []
    return [ExplainedGrantDraw(grant_id=d.grant_id, source=d.source, amount_micros=abs(d.amount_micros))
            for d in draws_for(uow, organization_id, tx.id)]
