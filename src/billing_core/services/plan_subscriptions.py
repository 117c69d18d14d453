"""Plan subscriptions: plans on offer, the Team plan summary, the provider's status updates, operator
status moves, the billing portal, and each period's plan (or trial) credits."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from billing_core.catalog import Plan, PlanCode
from billing_core.checkout import (
    PlanChoice,
    check_return_url,
    plan_choices,
)
from billing_core.errors import IllegalTransition, NoBillingRecord, NotFound
from billing_core.grants import GrantSource, grant_id_for
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.money import Money
from billing_core.permissions import Action, Actor, require
from billing_core.plan_subscription import (
    ENDED,
    PlanSubscription,
    StatusColor,
    SubscriptionStatus,
)
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.grants import expire_due, grant_terms
from billing_core.services.wallet import sync_wallet


def has_billing_history(uow: UnitOfWork, organization_id: uuid.UUID) -> bool:
    """Any subscription ever, or any payment: then no more trials."""
    return (uow.plan_subscriptions.current(organization_id) is not None
            or bool(uow.payments.list(organization_id, limit=1).items))


def plans(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> tuple[PlanChoice, ...]:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        history = has_billing_history(uow, organization_id)
        current = uow.plan_subscriptions.current(organization_id)
    active = current is not None and current.status not in ENDED
    return plan_choices(ctx.catalog, actor=actor, has_billing_history=history, has_active_subscription=active,
                        subscription_status=current.status if current is not None else None)


class SubscriptionSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tier: str
    plan: PlanCode
    status: SubscriptionStatus
    status_label: str
    color: StatusColor
    message: str
    description: str
    price: Money
    interval: str
    features: tuple[str, ...]
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    has_billing_record: bool
    cancel_at_period_end: bool = False
    """The subscription ends with the current period (cancelled in the provider's billing portal)."""


def summary(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID) -> SubscriptionSummary | None:
    """The Team plan module's read-only summary, or None when there is no subscription."""
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        sub = uow.plan_subscriptions.current(organization_id)
        org = uow.organizations.get(organization_id)
    if sub is None:
        return None
    plan = ctx.catalog.plan(sub.plan)
    shown = sub.presentation
    return SubscriptionSummary(
        id=sub.id, tier=plan.name, plan=plan.code, status=sub.status, status_label=shown.label, color=shown.color,
        message=shown.message, description=plan.description, price=plan.price(org.currency_iso),
        interval=plan.interval, features=plan.features, current_period_start=sub.current_period_start,
        current_period_end=sub.current_period_end, trial_end=sub.trial_end,
        has_billing_record=org.provider_customer_id is not None, cancel_at_period_end=sub.cancel_at_period_end)


def apply_provider_status(ctx: BillingContext, *, provider_subscription_id: str, status: SubscriptionStatus,
                          current_period_start: datetime | None = None,
                          current_period_end: datetime | None = None,
                          state_at: datetime | None = None, plan: Plan | None = None,
                          cancel_at_period_end: bool | None = None) -> PlanSubscription | None:
    """Bring our subscription to the provider's state of it as of ``state_at`` (see
    :func:`apply_provider_status_in`)."""
    with ctx.uow() as uow:
        sub = apply_provider_status_in(ctx, uow, provider_subscription_id=provider_subscription_id, status=status,
                                       current_period_start=current_period_start,
                                       current_period_end=current_period_end, state_at=state_at, plan=plan,
                                       cancel_at_period_end=cancel_at_period_end)
        uow.commit()
        return sub


def apply_provider_status_in(ctx: BillingContext, uow: UnitOfWork, *, provider_subscription_id: str,
                             status: SubscriptionStatus, current_period_start: datetime | None = None,
                             current_period_end: datetime | None = None,
                             state_at: datetime | None = None, plan: Plan | None = None,
                             cancel_at_period_end: bool | None = None) -> PlanSubscription | None:
    """Inside the caller's unit of work (which commits), under the organization's wallet lock.
    Events may arrive out of order: one about a state older than the last applied, or asking for
    a move the table forbids, is stale and ignored.

    ``plan`` is the plan the provider bills now (a change made in its billing portal): it replaces
    ours unless a plan change of ours was recorded after ``state_at`` (the event is older than our
    own change, which already reached the provider). ``cancel_at_period_end`` (None: not stated)
    is the provider's word on whether the subscription ends with the period."""
    found = uow.plan_subscriptions.by_provider_id(provider_subscription_id)
    if found is None:
        return None
    uow.wallets.lock(found.organization_id)
    sub = uow.plan_subscriptions.get(found.organization_id, found.id)  # as it stands under the lock
    if state_at is not None and sub.provider_state_at is not None and state_at < sub.provider_state_at:
        return sub
    before = sub.status
    try:
        sub.transition(status, ctx.clock.now())
    except IllegalTransition:
        return sub
    if state_at is not None:
        sub.provider_state_at = state_at
    if cancel_at_period_end is not None:
        sub.cancel_at_period_end = cancel_at_period_end
    if plan is not None and plan.code != sub.plan and not _changed_here_since(uow, sub, state_at):
        sub.plan = plan.code
    renewed = (current_period_start is not None and current_period_start > sub.current_period_start)
    if current_period_start is not None and current_period_end is not None and renewed:
        sub.current_period_start, sub.current_period_end = current_period_start, current_period_end
    if before == SubscriptionStatus.TRIALING and status != SubscriptionStatus.TRIALING:
        _expire_trial_credits(ctx, uow, sub)
    if (status == SubscriptionStatus.ACTIVE and (renewed or before == SubscriptionStatus.TRIALING)):
        grant_period_credits(ctx, uow, sub)
    uow.plan_subscriptions.save(sub)
    sync_wallet(uow, ctx.catalog, sub.organization_id)
    return sub


def _changed_here_since(uow: UnitOfWork, sub: PlanSubscription, state_at: datetime | None) -> bool:
    """A plan change of ours was recorded after the provider's state at ``state_at`` (whole seconds,
    as the provider dates its events): that state predates our change and must not undo it."""
    latest = uow.plan_changes.latest(sub.organization_id, sub.id)
    if latest is None:
        return False
    if state_at is None:
        return True
    return latest.created_at.replace(microsecond=0) > state_at


def set_status(ctx: BillingContext, *, organization_id: uuid.UUID, status: SubscriptionStatus) -> PlanSubscription:
    """Move the current subscription (offline provider, operators, tests). Illegal moves raise."""
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)  # leaving a trial takes its unused credits back
        sub = uow.plan_subscriptions.current(organization_id)
        if sub is None:
            raise NotFound("subscription", organization_id)
        before = sub.status
        sub.transition(status, ctx.clock.now())
        if before == SubscriptionStatus.TRIALING and status != SubscriptionStatus.TRIALING:
            _expire_trial_credits(ctx, uow, sub)
        uow.plan_subscriptions.save(sub)
        sync_wallet(uow, ctx.catalog, organization_id)
        uow.commit()
        return sub


TRIAL_GRANT = "trial-credits"
"""Ledger key prefix of a trial's grant: ``trial-credits:<subscription id>``, once per subscription."""


PLAN_GRANT = "plan-credits"
"""Ledger key prefix of a plan's included credits: ``plan-credits:<subscription id>:<period start>``,
once per subscription period."""


def grant_period_credits(ctx: BillingContext, uow: UnitOfWork, sub: PlanSubscription) -> None:
    """Trial credits for a trial ("Free Trial Credits", a grant of source trial that expires at the
    trial's end), the plan's included credits each paid period (source plan, no expiry) (ADR 0016)."""
    plan = ctx.catalog.plan(sub.plan)
    if sub.status == SubscriptionStatus.TRIALING:
        amount, description = ctx.catalog.wallet.trial_grant_micros, "Free Trial Credits"
        key, source, expires_at = f"{TRIAL_GRANT}:{sub.id}", GrantSource.TRIAL, sub.trial_end
    elif sub.status == SubscriptionStatus.ACTIVE:
        amount, description = plan.included_credits_micros, f"{plan.name} plan credits"
        key = f"{PLAN_GRANT}:{sub.id}:{sub.current_period_start.isoformat()}"
        source, expires_at = GrantSource.PLAN, None
    else:
        return
    if amount > 0:
        grant_terms(uow, organization_id=sub.organization_id, idempotency_key=key, source=source,
                    expires_at=expires_at)
        uow.wallets.post(transfer(organization_id=sub.organization_id, idempotency_key=key, kind=EntryKind.GRANT,
                                  description=description, created_at=ctx.clock.now(),
                                  source=Account.PROMOTIONAL_GRANTS, target=Account.WALLET, amount_micros=amount,
                                  reference=str(sub.id)))


def _expire_trial_credits(ctx: BillingContext, uow: UnitOfWork, sub: PlanSubscription) -> None:
    """Unused trial credits expire when the trial ends: exactly what is left of the trial's grant
    (ADR 0016), so credits already spent on usage (billed or not) are not taken back twice, and
    paid credits never are. Under the wallet lock; the worker's expiry job uses the same key."""
    granted = uow.ledger.get_by_key(sub.organization_id, f"{TRIAL_GRANT}:{sub.id}")
    if granted is None:
        return
    uow.wallets.lock(sub.organization_id)
    expire_due(ctx, uow, sub.organization_id, ctx.clock.now(), only=grant_id_for(granted.id))


def portal_session(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, return_url: str) -> str:
    """The provider's billing portal; only once a billing record (provider customer) exists."""
    require(actor, Action.ACCESS_BILLING_PORTAL, organization_id)
    return_url = check_return_url(return_url)
    with ctx.uow() as uow:
        org = uow.organizations.get(organization_id)
    if not org.provider_customer_id:
        raise NoBillingRecord("the billing portal opens once a billing record exists")
    return ctx.payments.create_portal_session(customer_id=org.provider_customer_id, return_url=return_url)
