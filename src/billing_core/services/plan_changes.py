"""Plan changes: a preview, then an immediate change charging exactly what the preview showed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from billing_core.catalog import Plan
from billing_core.errors import (
    PaymentError,
    PlanChanged,
    PreviewExpired,
    ProviderUnavailable,
    SamePlan,
    SubscriptionRequired,
)
from billing_core.permissions import Action, Actor, require
from billing_core.plan_change import PlanChange, PlanChangePreview, PlanChangeStatus, preview_change, record_change
from billing_core.plan_subscription import (
    PlanSubscription,
)
from billing_core.ports import HostedInvoice
from billing_core.services.context import BillingContext
from billing_core.services.wallet import sync_wallet

PREVIEW_VALIDITY = timedelta(minutes=30)


def _check_preview_at(ctx: BillingContext, at: datetime | None) -> datetime:
    now = ctx.clock.now()
    at = at or now
    if at.tzinfo is None or not now - PREVIEW_VALIDITY <= at <= now + timedelta(minutes=1):
        raise PreviewExpired("at", "the preview is too old or in the future; preview again")
    return at


def _preview(ctx: BillingContext, sub: PlanSubscription | None, currency_iso: str, target: Plan,
             at: datetime) -> PlanChangePreview:
    if sub is None or not sub.is_subscribed:
        raise SubscriptionRequired("there is no active subscription to change")
    if sub.plan == target.code:
        raise SamePlan("plan", "the workspace is already on this plan")
    return preview_change(sub, ctx.catalog.plan(sub.plan), target, at=at, currency_iso=currency_iso)


def preview_plan_change(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, plan: str,
                        at: datetime | None = None) -> PlanChangePreview:
    require(actor, Action.SUBSCRIBE_TO_PLAN, organization_id)
    target = ctx.catalog.plan(plan)
    at = _check_preview_at(ctx, at)
    with ctx.uow() as uow:
        sub = uow.plan_subscriptions.current(organization_id)
        org = uow.organizations.get(organization_id)
    return _preview(ctx, sub, org.currency_iso, target, at)


class PlanChangeResult(msgspec.Struct, frozen=True, kw_only=True):
    subscription_id: uuid.UUID
    preview: PlanChangePreview
    hosted_invoice: HostedInvoice | None


def change_plan(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, plan: str,
                preview_at: datetime) -> PlanChangeResult:
    """Change now, charging exactly what the preview made at ``preview_at`` showed. When the
    organization has a provider customer and something is due, a hosted invoice is issued.

    Exactly once (ADR 0009): under the wallet lock the change is decided on the subscription as
    locked and recorded (one per subscription version, UNIQUE) together with the plan move; the
    invoice is issued afterwards with a key derived from that record and stored on it once. The
    preview is stale when the subscription changed plan at or after ``preview_at``: the same
    change (same plan and ``preview_at``) then answers with the recorded outcome, and finishes
    its invoice if the provider was unreachable before; any other is a Conflict (``plan_changed``)
    that reaches no provider. Raises ProviderUnavailable when the invoice could not be issued (the
    plan has moved; the same request again issues it)."""
    require(actor, Action.SUBSCRIBE_TO_PLAN, organization_id)
    target = ctx.catalog.plan(plan)
    preview_at = _check_preview_at(ctx, preview_at)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        org = uow.organizations.get(organization_id)
        sub = uow.plan_subscriptions.current(organization_id)
        latest = uow.plan_changes.latest(organization_id, sub.id) if sub is not None else None
        if latest is not None and latest.created_at >= preview_at:
            # The plan changed since this preview: only the very same change may answer.
            if latest.to_plan != target.code or latest.preview_at != preview_at:
                raise PlanChanged("the plan changed since this preview; preview again")
            change = latest
        else:
            preview = _preview(ctx, sub, org.currency_iso, target, preview_at)
            assert sub is not None
            # A provider subscription must hear of every change (its price is swapped even when
            # nothing is due); without one, a hosted invoice is issued for what is due.
            invoice_due = (sub.provider_subscription_id is not None
                           or (bool(org.provider_customer_id) and preview.amount_due_cents > 0))
            change = record_change(change_id=uuid.uuid4(), subscription=sub, preview=preview,
                                   invoice_due=invoice_due, now=ctx.clock.now())
            uow.plan_changes.add(change)
            sub.plan = preview.to_plan
            uow.plan_subscriptions.save(sub)
            sync_wallet(uow, ctx.catalog, organization_id)
            uow.commit()
        customer_id = org.provider_customer_id
        provider_subscription_id = sub.provider_subscription_id if sub is not None else None
    if change.status == PlanChangeStatus.PENDING:
        change = _invoice_change(ctx, change, customer_id, provider_subscription_id)
    return _change_result(change)


def _invoice_change(ctx: BillingContext, change: PlanChange, customer_id: str | None,
                    provider_subscription_id: str | None) -> PlanChange:
    """Carry the recorded change to the provider (keyed by the change) and record the answer once:
    the provider subscription's price is swapped with the proration invoiced at once, or, for a
    subscription the provider does not bill, a hosted invoice is issued for what is due."""
    invoice: HostedInvoice | None
    if provider_subscription_id is not None:
        invoice = ctx.payments.change_subscription_plan(
            provider_subscription_id=provider_subscription_id, plan=ctx.catalog.plan(change.to_plan),
            proration_at=change.preview_at, reference=str(change.id), idempotency_key=change.invoice_key)
    else:
        assert customer_id is not None
        invoice = ctx.payments.issue_invoice(
            customer_id=customer_id, amount_cents=change.amount_due_cents, currency_iso=change.currency_iso,
            description=f"Plan change {change.from_plan} → {change.to_plan}", reference=str(change.id),
            idempotency_key=change.invoice_key)
    if invoice is None:
        done = msgspec.structs.replace(change, status=PlanChangeStatus.NOT_INVOICED, completed_at=ctx.clock.now())
    else:
        done = msgspec.structs.replace(change, status=PlanChangeStatus.INVOICED,
                                       provider_invoice_id=invoice.provider_invoice_id,
                                       hosted_invoice_url=invoice.hosted_invoice_url, invoice_status=invoice.status,
                                       completed_at=ctx.clock.now())
    with ctx.uow() as uow:
        uow.wallets.lock(change.organization_id)
        uow.plan_changes.record_invoice(done)
        uow.commit()
        return uow.plan_changes.get(change.organization_id, change.id)


def finish_pending_plan_changes(ctx: BillingContext, *, older_than: datetime, limit: int = 100) -> int:
    """The sweeper (``background.run_cycle``): carry to the provider (the price swap, or the hosted
    invoice), with the key derived from the change, every plan change still PENDING that was
    recorded before ``older_than`` (the provider was unreachable and no client retried), and record
    it once. A provider still unreachable leaves it for the next sweep. How many it completed."""
    with ctx.uow() as uow:
        pending = uow.plan_changes.pending(older_than, limit=limit)
    finished = 0
    for change in pending:
        with ctx.uow() as uow:
            customer_id = uow.organizations.get(change.organization_id).provider_customer_id
            subscription = uow.plan_subscriptions.get(change.organization_id, change.subscription_id)
        provider_subscription_id = subscription.provider_subscription_id
        if customer_id is None and provider_subscription_id is None:
            continue  # recorded with something due only when the provider knows the organization
        try:
            done = _invoice_change(ctx, change, customer_id, provider_subscription_id)
        except (PaymentError, ProviderUnavailable) as exc:
            if exc.retryable:
                continue
            raise
        finished += done.status != PlanChangeStatus.PENDING
    return finished


def _change_result(change: PlanChange) -> PlanChangeResult:
    invoice = None
    if change.provider_invoice_id is not None:
        invoice = HostedInvoice(provider_invoice_id=change.provider_invoice_id,
                                hosted_invoice_url=change.hosted_invoice_url, status=change.invoice_status or "open")
    return PlanChangeResult(subscription_id=change.subscription_id, preview=change.preview, hosted_invoice=invoice)
