"""Immediate plan changes with a preview that equals the charge.

The preview credits the unused part of the current plan and charges the remaining part of the new
plan, both prorated by seconds left in the period; the charge later uses the same function with the
same ``at``, so the amounts are identical.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.catalog import Plan, PlanCode
from billing_core.money import prorate
from billing_core.plan_subscription import PlanSubscription


class PlanChangePreview(msgspec.Struct, frozen=True, kw_only=True):
    from_plan: PlanCode
    to_plan: PlanCode
    at: datetime
    period_end: datetime
    unused_credit_cents: int
    new_plan_charge_cents: int
    amount_due_cents: int
    currency_iso: str


def preview_change(subscription: PlanSubscription, current: Plan, target: Plan, *, at: datetime,
                   currency_iso: str) -> PlanChangePreview:
    start, end = subscription.current_period_start, subscription.current_period_end
    total = max(int((end - start).total_seconds()), 1)
    left = min(max(int((end - at).total_seconds()), 0), total)
    # A trial costs nothing, so nothing unused is credited back.
    unused = 0 if subscription.trial_end is not None and at < subscription.trial_end else prorate(
        current.price_cents, left, total)
    charge = prorate(target.price_cents, left, total)
    return PlanChangePreview(
        from_plan=current.code, to_plan=target.code, at=at, period_end=end, unused_credit_cents=unused,
        new_plan_charge_cents=charge, amount_due_cents=max(charge - unused, 0), currency_iso=currency_iso,
    )


class PlanChangeStatus(StrEnum):
    """Where a recorded plan change stands with its hosted invoice."""

    PENDING = "pending"
    """The plan has moved; the hosted invoice is still to be issued (or its answer recorded)."""
    INVOICED = "invoiced"
    NOT_INVOICED = "not_invoiced"
    """Nothing to invoice: no provider customer, or nothing due."""


class PlanChange(msgspec.Struct, kw_only=True):
    """A plan change as recorded, the intent of its hosted invoice (ADR 0009).

    One per (subscription, version changed from): the database refuses a second, so one version of
    a subscription gets at most one plan-change invoice, whose provider idempotency key derives from
    this record's id.
    """

    id: uuid.UUID
    organization_id: uuid.UUID
    subscription_id: uuid.UUID
    subscription_version: int
    """The version of the subscription the change was decided on (and moved from)."""
    from_plan: PlanCode
    to_plan: PlanCode
    preview_at: datetime
    period_end: datetime
    unused_credit_cents: int
    new_plan_charge_cents: int
    amount_due_cents: int
    currency_iso: str
    status: PlanChangeStatus
    created_at: datetime
    provider_invoice_id: str | None = None
    hosted_invoice_url: str | None = None
    invoice_status: str | None = None
    completed_at: datetime | None = None

    @property
    def invoice_key(self) -> str:
        """The provider idempotency key of this change's hosted invoice."""
        return f"plan-change:{self.id}"

    @property
    def preview(self) -> PlanChangePreview:
        """The preview this change charged."""
        return PlanChangePreview(from_plan=self.from_plan, to_plan=self.to_plan, at=self.preview_at,
                                 period_end=self.period_end, unused_credit_cents=self.unused_credit_cents,
                                 new_plan_charge_cents=self.new_plan_charge_cents,
                                 amount_due_cents=self.amount_due_cents, currency_iso=self.currency_iso)


def record_change(*, change_id: uuid.UUID, subscription: PlanSubscription, preview: PlanChangePreview,
                  invoice_due: bool, now: datetime) -> PlanChange:
    """The record of changing ``subscription`` (at its current version) as ``preview`` says;
    PENDING when a hosted invoice is due, NOT_INVOICED otherwise."""
    return PlanChange(
        id=change_id, organization_id=subscription.organization_id, subscription_id=subscription.id,
        subscription_version=subscription.version, from_plan=preview.from_plan, to_plan=preview.to_plan,
        preview_at=preview.at, period_end=preview.period_end, unused_credit_cents=preview.unused_credit_cents,
        new_plan_charge_cents=preview.new_plan_charge_cents, amount_due_cents=preview.amount_due_cents,
        currency_iso=preview.currency_iso,
        status=PlanChangeStatus.PENDING if invoice_due else PlanChangeStatus.NOT_INVOICED, created_at=now,
        completed_at=None if invoice_due else now)
