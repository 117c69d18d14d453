"""Plan subscriptions: plans on offer, checkout (trial or paid, guest or signed in), the provider's
status updates, immediate plan changes with a preview, the billing portal; and product subscriptions."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from billing_core.billing_settings import check_email
from billing_core.catalog import Plan, PlanCode
from billing_core.checkout import (
    CheckoutSession,
    CheckoutStatus,
    PlanChoice,
    check_return_url,
    claimable,
    plan_choices,
    return_url_with_status,
)
from billing_core.errors import Conflict, IllegalTransition, InvalidInput, NotFound
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.money import Money
from billing_core.permissions import Action, Actor, require
from billing_core.plan_change import PlanChangePreview, preview_change
from billing_core.plan_subscription import (
    ENDED,
    PlanSubscription,
    StatusColor,
    SubscriptionStatus,
    new_subscription,
    period_end,
)
from billing_core.ports import HostedInvoice, Page, UnitOfWork
from billing_core.product_subscription import ProductSubscription, new_product_subscription
from billing_core.services.context import BillingContext
from billing_core.services.customers import ensure_customer
from billing_core.services.limits import sync_wallet


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
    return plan_choices(ctx.catalog, actor=actor, has_billing_history=history, has_active_subscription=active)


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
        has_billing_record=org.provider_customer_id is not None)


def start_checkout(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, plan: str,
                   return_url: str) -> CheckoutSession:
    """An embedded checkout for ``plan``: a trial if the workspace has no billing history."""
    require(actor, Action.SUBSCRIBE_TO_PLAN, organization_id)
    chosen = ctx.catalog.plan(plan)
    return_url = check_return_url(return_url)
    with ctx.uow() as uow:
        current = uow.plan_subscriptions.current(organization_id)
        if current is not None and current.status not in ENDED:
            raise Conflict("the workspace already has a subscription; change the plan instead",
                           code="already_subscribed")
        trial = not has_billing_history(uow, organization_id)
    customer_id = ensure_customer(ctx, organization_id)
    return _open_checkout(ctx, organization_id=organization_id, plan=chosen, trial=trial, return_url=return_url,
                          customer_id=customer_id, guest_email=None)


def start_guest_checkout(ctx: BillingContext, *, email: str, plan: str, return_url: str) -> CheckoutSession:
    """Checkout before signing in: recorded by email and claimed on the next verified login."""
    chosen = ctx.catalog.plan(plan)
    return _open_checkout(ctx, organization_id=None, plan=chosen, trial=False,
                          return_url=check_return_url(return_url), customer_id=None, guest_email=check_email(email))


def _open_checkout(ctx: BillingContext, *, organization_id: uuid.UUID | None, plan: Plan, trial: bool,
                   return_url: str, customer_id: str | None, guest_email: str | None) -> CheckoutSession:
    session_id = uuid.uuid4()
    provider = ctx.payments.create_checkout_session(
        customer_id=customer_id, guest_email=guest_email, plan=plan, trial_days=plan.trial_days if trial else None,
        return_url=return_url, reference=str(session_id), idempotency_key=f"checkout:{session_id}")
    session = CheckoutSession(id=session_id, organization_id=organization_id, plan=plan.code, trial=trial,
                              status=CheckoutStatus.OPEN, client_secret=provider.client_secret,
                              return_url=return_url, created_at=ctx.clock.now(),
                              provider_session_id=provider.provider_session_id, guest_email=guest_email)
    with ctx.uow() as uow:
        uow.checkouts.add(session)
        uow.commit()
    return session


def checkout_status(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                    session_id: uuid.UUID) -> tuple[CheckoutSession, str]:
    """The session and the URL to return to with its status (the pricing page reads it)."""
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        session = uow.checkouts.get(session_id)
    if session.organization_id != organization_id:
        raise NotFound("checkout session", session_id)
    return session, return_url_with_status(session.return_url, str(session.id), session.status)


def complete_checkout(ctx: BillingContext, *, provider_session_id: str, provider_subscription_id: str | None,
                      status: SubscriptionStatus | None = None) -> CheckoutSession:
    """The provider says the checkout completed. Idempotent; a guest session waits to be claimed."""
    with ctx.uow() as uow:
        session = uow.checkouts.by_provider_id(provider_session_id)
        if session is None:
            raise NotFound("checkout session", provider_session_id)
        if session.status == CheckoutStatus.COMPLETE:
            return session
        if session.status != CheckoutStatus.OPEN:
            raise Conflict(f"checkout session is {session.status}", code="checkout_closed")
        session.status = CheckoutStatus.COMPLETE
        session.completed_at = ctx.clock.now()
        session.provider_subscription_id = provider_subscription_id
        # A guest's session has no organization yet: the subscription starts when it is claimed.
        if session.organization_id is not None:
            sub = _activate(ctx, uow, session, session.organization_id, provider_subscription_id, status)
            session.subscription_id = sub.id
        uow.checkouts.save(session)
        uow.commit()
        return session


def expire_checkout(ctx: BillingContext, *, provider_session_id: str) -> CheckoutSession | None:
    with ctx.uow() as uow:
        session = uow.checkouts.by_provider_id(provider_session_id)
        if session is None or session.status != CheckoutStatus.OPEN:
            return session
        session.status = CheckoutStatus.EXPIRED
        uow.checkouts.save(session)
        uow.commit()
        return session


def _activate(ctx: BillingContext, uow: UnitOfWork, session: CheckoutSession, organization_id: uuid.UUID,
              provider_subscription_id: str | None, status: SubscriptionStatus | None) -> PlanSubscription:
    plan = ctx.catalog.plan(session.plan)
    now = ctx.clock.now()
    target = status or (SubscriptionStatus.TRIALING if session.trial else SubscriptionStatus.ACTIVE)
    if provider_subscription_id:
        existing = uow.plan_subscriptions.by_provider_id(provider_subscription_id)
        if existing is not None:
            return existing
    sub = new_subscription(organization_id=organization_id, plan=plan, now=now, trial=session.trial,
                           status=target, provider_subscription_id=provider_subscription_id)
    uow.plan_subscriptions.add(sub)
    _grant_period_credits(ctx, uow, sub)
    sync_wallet(uow, ctx.catalog, organization_id)
    return sub


def _grant_period_credits(ctx: BillingContext, uow: UnitOfWork, sub: PlanSubscription) -> None:
    """Trial credits for a trial ("Free Trial Credits"), the plan's included credits each paid period."""
    plan = ctx.catalog.plan(sub.plan)
    if sub.status == SubscriptionStatus.TRIALING:
        amount, description = ctx.catalog.wallet.trial_grant_micros, "Free Trial Credits"
        key = f"trial-credits:{sub.id}"
    elif sub.status == SubscriptionStatus.ACTIVE:
        amount, description = plan.included_credits_micros, f"{plan.name} plan credits"
        key = f"plan-credits:{sub.id}:{sub.current_period_start.isoformat()}"
    else:
        return
    if amount > 0:
        uow.wallets.post(transfer(organization_id=sub.organization_id, idempotency_key=key, kind=EntryKind.GRANT,
                                  description=description, created_at=ctx.clock.now(),
                                  source=Account.PROMOTIONAL_GRANTS, target=Account.WALLET, amount_micros=amount,
                                  reference=str(sub.id)))


def _expire_trial_credits(ctx: BillingContext, uow: UnitOfWork, sub: PlanSubscription) -> None:
    """Unused trial credits expire when the trial ends: never more than the real-time balance, so
    credits already spent on usage (billed or not) are not taken back twice."""
    granted = uow.ledger.get_by_key(sub.organization_id, f"trial-credits:{sub.id}")
    if granted is None:
        return
    wallet = uow.wallets.get(sub.organization_id)
    amount = min(granted.delta(Account.WALLET), max(wallet.balance_micros, 0))
    if amount > 0:
        uow.wallets.post(transfer(organization_id=sub.organization_id, idempotency_key=f"trial-expiry:{sub.id}",
                                  kind=EntryKind.GRANT_EXPIRY, description="Free Trial Credits expired",
                                  created_at=ctx.clock.now(), source=Account.WALLET,
                                  target=Account.PROMOTIONAL_GRANTS, amount_micros=amount, reference=str(sub.id)))


def claim_guest_checkouts(ctx: BillingContext, actor: Actor) -> list[CheckoutSession]:
    """On a verified login, move completed guest checkouts with the same email to the actor's
    organization, activating the subscription there."""
    if actor.email is None or not actor.email_verified or actor.role is None:
        return []
    claimed = []
    with ctx.uow() as uow:
        for session in uow.checkouts.unclaimed_guest(actor.email):
            if not claimable(session, actor):
                continue
            current = uow.plan_subscriptions.current(actor.organization_id)
            if current is not None and current.status not in ENDED:
                continue
            session.organization_id = actor.organization_id
            session.claimed_at = ctx.clock.now()
            sub = _activate(ctx, uow, session, actor.organization_id, session.provider_subscription_id, None)
            session.subscription_id = sub.id
            uow.checkouts.save(session)
            claimed.append(session)
        uow.commit()
    return claimed


def apply_provider_status(ctx: BillingContext, *, provider_subscription_id: str, status: SubscriptionStatus,
                          current_period_start: datetime | None = None,
                          current_period_end: datetime | None = None,
                          state_at: datetime | None = None) -> PlanSubscription | None:
    """Bring our subscription to the provider's state of it as of ``state_at`` (when the provider
    sent it). Events may arrive out of order: one about a state older than the last applied, or
    asking for a move the table forbids, is stale and ignored."""
    with ctx.uow() as uow:
        sub = uow.plan_subscriptions.by_provider_id(provider_subscription_id)
        if sub is None:
            return None
        if state_at is not None and sub.provider_state_at is not None and state_at < sub.provider_state_at:
            return sub
        before = sub.status
        try:
            sub.transition(status, ctx.clock.now())
        except IllegalTransition:
            return sub
        if state_at is not None:
            sub.provider_state_at = state_at
        renewed = (current_period_start is not None and current_period_start > sub.current_period_start)
        if current_period_start is not None and current_period_end is not None and renewed:
            sub.current_period_start, sub.current_period_end = current_period_start, current_period_end
        if before == SubscriptionStatus.TRIALING and status != SubscriptionStatus.TRIALING:
            _expire_trial_credits(ctx, uow, sub)
        if (status == SubscriptionStatus.ACTIVE and (renewed or before == SubscriptionStatus.TRIALING)):
            _grant_period_credits(ctx, uow, sub)
        uow.plan_subscriptions.save(sub)
        sync_wallet(uow, ctx.catalog, sub.organization_id)
        uow.commit()
        return sub


def set_status(ctx: BillingContext, *, organization_id: uuid.UUID, status: SubscriptionStatus) -> PlanSubscription:
    """Move the current subscription (offline provider, operators, tests). Illegal moves raise."""
    with ctx.uow() as uow:
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


# --------------------------------------------------------------------------- plan change

PREVIEW_VALIDITY = timedelta(minutes=30)


def preview_plan_change(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, plan: str,
                        at: datetime | None = None) -> PlanChangePreview:
    require(actor, Action.SUBSCRIBE_TO_PLAN, organization_id)
    target = ctx.catalog.plan(plan)
    now = ctx.clock.now()
    at = at or now
    if at.tzinfo is None or not now - PREVIEW_VALIDITY <= at <= now + timedelta(minutes=1):
        raise InvalidInput("at", "the preview is too old or in the future; preview again", code="preview_expired")
    with ctx.uow() as uow:
        sub = uow.plan_subscriptions.current(organization_id)
        org = uow.organizations.get(organization_id)
    if sub is None or not sub.is_subscribed:
        raise Conflict("there is no active subscription to change", code="subscription_required")
    if sub.plan == target.code:
        raise InvalidInput("plan", "the workspace is already on this plan", code="same_plan")
    return preview_change(sub, ctx.catalog.plan(sub.plan), target, at=at, currency_iso=org.currency_iso)


class PlanChangeResult(msgspec.Struct, frozen=True, kw_only=True):
    subscription_id: uuid.UUID
    preview: PlanChangePreview
    hosted_invoice: HostedInvoice | None


def change_plan(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, plan: str,
                preview_at: datetime) -> PlanChangeResult:
    """Change now, charging exactly what the preview made at ``preview_at`` showed. When the
    organization has a provider customer, a hosted invoice for that amount is issued now."""
    preview = preview_plan_change(ctx, actor, organization_id=organization_id, plan=plan, at=preview_at)
    with ctx.uow() as uow:
        org = uow.organizations.get(organization_id)
        sub = uow.plan_subscriptions.current(organization_id)
    assert sub is not None
    invoice = None
    if org.provider_customer_id and preview.amount_due_cents > 0:
        invoice = ctx.payments.issue_invoice(
            customer_id=org.provider_customer_id, amount_cents=preview.amount_due_cents,
            currency_iso=preview.currency_iso, description=f"Plan change {preview.from_plan} → {preview.to_plan}",
            reference=f"{sub.id}:{preview.to_plan}:{preview.at.isoformat()}",
            idempotency_key=f"plan-change:{sub.id}:{preview.to_plan}:{preview.at.isoformat()}")
    with ctx.uow() as uow:
        sub = uow.plan_subscriptions.current(organization_id)
        assert sub is not None
        sub.plan = preview.to_plan
        uow.plan_subscriptions.save(sub)
        sync_wallet(uow, ctx.catalog, organization_id)
        uow.commit()
    return PlanChangeResult(subscription_id=sub.id, preview=preview, hosted_invoice=invoice)


def portal_session(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, return_url: str) -> str:
    """The provider's billing portal; only once a billing record (provider customer) exists."""
    require(actor, Action.ACCESS_BILLING_PORTAL, organization_id)
    return_url = check_return_url(return_url)
    with ctx.uow() as uow:
        org = uow.organizations.get(organization_id)
    if not org.provider_customer_id:
        raise Conflict("the billing portal opens once a billing record exists", code="no_billing_record")
    return ctx.payments.create_portal_session(customer_id=org.provider_customer_id, return_url=return_url)


# --------------------------------------------------------------------------- product subscriptions


def list_product_subscriptions(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, limit: int = 50,
                               cursor: str | None = None) -> Page[ProductSubscription]:
    require(actor, Action.VIEW_BILLING, organization_id)
    if type(limit) is not int or not 1 <= limit <= 200:
        raise InvalidInput("limit", "limit must be between 1 and 200")
    with ctx.uow() as uow:
        return uow.product_subscriptions.list(organization_id, limit=limit, cursor=cursor)


def get_product_subscription(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                             subscription_id: uuid.UUID) -> ProductSubscription:
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        return uow.product_subscriptions.get(organization_id, subscription_id)


def subscribe_product(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, product: str,
                      project_id: uuid.UUID | None, start_date: datetime | None = None,
                      end_date: datetime | None = None) -> ProductSubscription:
    """Link a metered product to a project (or the organization when ``project_id`` is None)."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    metered = ctx.catalog.product_by_code(product)
    sub = new_product_subscription(organization_id=organization_id, project_id=project_id, product_id=metered.id,
                                   start_date=start_date or ctx.clock.now(), end_date=end_date)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        uow.product_subscriptions.add(sub)
        uow.commit()
    return sub


def end_product_subscription(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                             subscription_id: uuid.UUID, end_date: datetime | None = None) -> ProductSubscription:
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        sub = uow.product_subscriptions.get(organization_id, subscription_id)
        sub.end(end_date or ctx.clock.now())
        uow.product_subscriptions.save(sub)
        uow.commit()
        return sub


def renewal_period(sub: PlanSubscription, plan: Plan) -> tuple[datetime, datetime]:
    """The next period after the current one (offline renewals)."""
    return sub.current_period_end, period_end(sub.current_period_end, plan.interval)
