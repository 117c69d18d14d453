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
from billing_core.errors import Conflict, IllegalTransition, InvalidInput, NotFound, PaymentError
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.money import Money
from billing_core.permissions import Action, Actor, require
from billing_core.plan_change import PlanChange, PlanChangePreview, PlanChangeStatus, preview_change, record_change
from billing_core.plan_subscription import (
    ENDED,
    PlanSubscription,
    StatusColor,
    SubscriptionStatus,
    new_subscription,
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
    """The provider says the checkout completed: activate the subscription, exactly once however
    often and concurrently this is called (see :func:`complete_checkout_in`)."""
    with ctx.uow() as uow:
        session = complete_checkout_in(ctx, uow, provider_session_id=provider_session_id,
                                       provider_subscription_id=provider_subscription_id, status=status)
        uow.commit()
        return session


def complete_checkout_in(ctx: BillingContext, uow: UnitOfWork, *, provider_session_id: str,
                         provider_subscription_id: str | None,
                         status: SubscriptionStatus | None = None) -> CheckoutSession:
    """:func:`complete_checkout` inside the caller's unit of work, which commits (the provider-event
    inbox remembers the event in the same one).

    Under the organization's wallet lock, the session moves open → complete by a conditional write,
    so of concurrent completions (a webhook redelivered, ``completed`` and ``async_payment_succeeded``,
    the offline route) exactly one activates; the others see it complete and change nothing. A guest
    session has no organization to lock: the conditional write alone decides, and its subscription
    starts when it is claimed. Raises NotFound for an unknown session, Conflict ``checkout_closed``
    for one that expired, ``already_subscribed`` when another checkout of the organization
    activated a subscription that is still live.
    """
    found = uow.checkouts.by_provider_id(provider_session_id)
    if found is None:
        raise NotFound("checkout session", provider_session_id)
    if found.organization_id is not None:
        uow.wallets.lock(found.organization_id)
    session = uow.checkouts.get(found.id)  # as it stands under the lock
    if session.status == CheckoutStatus.COMPLETE:
        return session
    if session.status != CheckoutStatus.OPEN:
        raise Conflict(f"checkout session is {session.status}", code="checkout_closed")
    organization_id = session.organization_id
    if organization_id is not None:
        _refuse_second_subscription(uow, organization_id)
    now = ctx.clock.now()
    if not uow.checkouts.complete(session.id, completed_at=now, provider_subscription_id=provider_subscription_id):
        # A concurrent completion or expiry of a guest session came first; its outcome stands.
        session = uow.checkouts.get(session.id)
        if session.status == CheckoutStatus.COMPLETE:
            return session
        raise Conflict(f"checkout session is {session.status}", code="checkout_closed")
    session.status, session.completed_at = CheckoutStatus.COMPLETE, now
    session.provider_subscription_id = provider_subscription_id
    if organization_id is not None:
        sub = _activate(ctx, uow, session, organization_id, provider_subscription_id, status)
        session.subscription_id = sub.id
        uow.checkouts.save(session)
    return session


def _refuse_second_subscription(uow: UnitOfWork, organization_id: uuid.UUID) -> None:
    """Two checkouts opened before either completed: the second to complete would give the workspace
    a second live subscription (and a second trial or plan grant). It stays open and the provider's
    event is refused, so it is retried and seen, rather than swallowed after the customer paid."""
    current = uow.plan_subscriptions.current(organization_id)
    if current is not None and current.status not in ENDED:
        raise Conflict("the workspace already has a subscription; change the plan instead",
                       code="already_subscribed")


def expire_checkout(ctx: BillingContext, *, provider_session_id: str) -> CheckoutSession | None:
    with ctx.uow() as uow:
        session = expire_checkout_in(ctx, uow, provider_session_id=provider_session_id)
        uow.commit()
        return session


def expire_checkout_in(ctx: BillingContext, uow: UnitOfWork, *,
                       provider_session_id: str) -> CheckoutSession | None:
    """The provider says the checkout expired: open → expired by a conditional write, so an expiry
    racing a completion never undoes it. None for an unknown session; otherwise the session as it
    stands (unchanged when it was not open)."""
    found = uow.checkouts.by_provider_id(provider_session_id)
    if found is None:
        return None
    if found.organization_id is not None:
        uow.wallets.lock(found.organization_id)
    uow.checkouts.expire(found.id)
    return uow.checkouts.get(found.id)


def offline_subscription_id(session: CheckoutSession) -> str:
    """The provider subscription id the offline completion gives a session (stable per session)."""
    return f"sub_offline_{session.id.hex[:24]}"


def complete_offline_checkout(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                              session_id: uuid.UUID) -> CheckoutSession:
    """Complete a checkout the way the provider's webhook would (offline provider only: there is no
    provider page to pay on). The same path as the webhook: :func:`complete_checkout_in`."""
    require(actor, Action.SUBSCRIBE_TO_PLAN, organization_id)
    session, _ = checkout_status(ctx, actor, organization_id=organization_id, session_id=session_id)
    if session.provider_session_id is None:
        raise Conflict("the checkout session has no provider session", code="checkout_closed")
    return complete_checkout(ctx, provider_session_id=session.provider_session_id,
                             provider_subscription_id=offline_subscription_id(session))


def _activate(ctx: BillingContext, uow: UnitOfWork, session: CheckoutSession, organization_id: uuid.UUID,
              provider_subscription_id: str | None, status: SubscriptionStatus | None) -> PlanSubscription:
    """Start the subscription a completed (or claimed) checkout paid for, with its first grant.

    Called once per session, by whoever moved it by a conditional write; the database repeats it:
    the subscription's id is derived from the session's (one subscription per checkout) and
    provider subscription ids are unique, so a second activation fails (Conflict) instead of
    doubling the subscription and its grant."""
    plan = ctx.catalog.plan(session.plan)
    now = ctx.clock.now()
    target = status or (SubscriptionStatus.TRIALING if session.trial else SubscriptionStatus.ACTIVE)
    if provider_subscription_id and uow.plan_subscriptions.by_provider_id(provider_subscription_id) is not None:
        raise Conflict(f"provider subscription {provider_subscription_id} already belongs to another checkout",
                       code="duplicate_provider_subscription")
    sub = new_subscription(organization_id=organization_id, plan=plan, now=now, trial=session.trial,
                           status=target, subscription_id=subscription_id_for(session),
                           provider_subscription_id=provider_subscription_id)
    uow.plan_subscriptions.add(sub)
    _grant_period_credits(ctx, uow, sub)
    sync_wallet(uow, ctx.catalog, organization_id)
    return sub


def subscription_id_for(session: CheckoutSession) -> uuid.UUID:
    """The id of the plan subscription a checkout session activates: one per session."""
    return uuid.uuid5(session.id, "plan-subscription")


TRIAL_GRANT = "trial-credits"
"""Ledger key prefix of a trial's grant: ``trial-credits:<subscription id>``, once per subscription."""
PLAN_GRANT = "plan-credits"
"""Ledger key prefix of a plan's included credits: ``plan-credits:<subscription id>:<period start>``,
once per subscription period."""


def _grant_period_credits(ctx: BillingContext, uow: UnitOfWork, sub: PlanSubscription) -> None:
    """Trial credits for a trial ("Free Trial Credits"), the plan's included credits each paid period."""
    plan = ctx.catalog.plan(sub.plan)
    if sub.status == SubscriptionStatus.TRIALING:
        amount, description = ctx.catalog.wallet.trial_grant_micros, "Free Trial Credits"
        key = f"{TRIAL_GRANT}:{sub.id}"
    elif sub.status == SubscriptionStatus.ACTIVE:
        amount, description = plan.included_credits_micros, f"{plan.name} plan credits"
        key = f"{PLAN_GRANT}:{sub.id}:{sub.current_period_start.isoformat()}"
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
    granted = uow.ledger.get_by_key(sub.organization_id, f"{TRIAL_GRANT}:{sub.id}")
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
    organization, activating the subscription there.

    Each session is claimed once, by one organization: under the claiming organization's wallet lock,
    a conditional write on the session being still unclaimed (``claimed_at IS NULL``) decides, in the
    unit of work that activates the subscription. A claim that loses the race to another organization
    (members of both may share the email) or to a concurrent request finds nothing to claim."""
    if actor.email is None or not actor.email_verified or actor.role is None:
        return []
    claimed = []
    with ctx.uow() as uow:
        uow.wallets.lock(actor.organization_id)
        for session in uow.checkouts.unclaimed_guest(actor.email):
            if not claimable(session, actor):
                continue
            current = uow.plan_subscriptions.current(actor.organization_id)
            if current is not None and current.status not in ENDED:
                continue
            now = ctx.clock.now()
            if not uow.checkouts.claim(session.id, organization_id=actor.organization_id, claimed_at=now):
                continue  # claimed meanwhile, by another organization or another request
            session.organization_id, session.claimed_at = actor.organization_id, now
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
    """Bring our subscription to the provider's state of it as of ``state_at`` (see
    :func:`apply_provider_status_in`)."""
    with ctx.uow() as uow:
        sub = apply_provider_status_in(ctx, uow, provider_subscription_id=provider_subscription_id, status=status,
                                       current_period_start=current_period_start,
                                       current_period_end=current_period_end, state_at=state_at)
        uow.commit()
        return sub


def apply_provider_status_in(ctx: BillingContext, uow: UnitOfWork, *, provider_subscription_id: str,
                             status: SubscriptionStatus, current_period_start: datetime | None = None,
                             current_period_end: datetime | None = None,
                             state_at: datetime | None = None) -> PlanSubscription | None:
    """Inside the caller's unit of work (which commits), under the organization's wallet lock.
    Events may arrive out of order: one about a state older than the last applied, or asking for
    a move the table forbids, is stale and ignored."""
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
    renewed = (current_period_start is not None and current_period_start > sub.current_period_start)
    if current_period_start is not None and current_period_end is not None and renewed:
        sub.current_period_start, sub.current_period_end = current_period_start, current_period_end
    if before == SubscriptionStatus.TRIALING and status != SubscriptionStatus.TRIALING:
        _expire_trial_credits(ctx, uow, sub)
    if (status == SubscriptionStatus.ACTIVE and (renewed or before == SubscriptionStatus.TRIALING)):
        _grant_period_credits(ctx, uow, sub)
    uow.plan_subscriptions.save(sub)
    sync_wallet(uow, ctx.catalog, sub.organization_id)
    return sub


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


# --------------------------------------------------------------------------- plan change

PREVIEW_VALIDITY = timedelta(minutes=30)


def _check_preview_at(ctx: BillingContext, at: datetime | None) -> datetime:
    now = ctx.clock.now()
    at = at or now
    if at.tzinfo is None or not now - PREVIEW_VALIDITY <= at <= now + timedelta(minutes=1):
        raise InvalidInput("at", "the preview is too old or in the future; preview again", code="preview_expired")
    return at


def _preview(ctx: BillingContext, sub: PlanSubscription | None, currency_iso: str, target: Plan,
             at: datetime) -> PlanChangePreview:
    if sub is None or not sub.is_subscribed:
        raise Conflict("there is no active subscription to change", code="subscription_required")
    if sub.plan == target.code:
        raise InvalidInput("plan", "the workspace is already on this plan", code="same_plan")
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
                raise Conflict("the plan changed since this preview; preview again", code="plan_changed")
            change = latest
        else:
            preview = _preview(ctx, sub, org.currency_iso, target, preview_at)
            assert sub is not None
            invoice_due = bool(org.provider_customer_id) and preview.amount_due_cents > 0
            change = record_change(change_id=uuid.uuid4(), subscription=sub, preview=preview,
                                   invoice_due=invoice_due, now=ctx.clock.now())
            uow.plan_changes.add(change)
            sub.plan = preview.to_plan
            uow.plan_subscriptions.save(sub)
            sync_wallet(uow, ctx.catalog, organization_id)
            uow.commit()
        customer_id = org.provider_customer_id
    if change.status == PlanChangeStatus.PENDING:
        assert customer_id is not None
        change = _invoice_change(ctx, change, customer_id)
    return _change_result(change)


def _invoice_change(ctx: BillingContext, change: PlanChange, customer_id: str) -> PlanChange:
    """Issue the recorded change's hosted invoice (keyed by the change) and record it once."""
    invoice = ctx.payments.issue_invoice(
        customer_id=customer_id, amount_cents=change.amount_due_cents, currency_iso=change.currency_iso,
        description=f"Plan change {change.from_plan} → {change.to_plan}", reference=str(change.id),
        idempotency_key=change.invoice_key)
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
    """The sweeper (``background.run_cycle``): issue the hosted invoice, with the key derived from
    the change, of every plan change still PENDING that was recorded before ``older_than`` (the
    provider was unreachable and no client retried), and record it once. A provider still
    unreachable leaves it for the next sweep. How many it completed."""
    with ctx.uow() as uow:
        pending = uow.plan_changes.pending(older_than, limit=limit)
    finished = 0
    for change in pending:
        with ctx.uow() as uow:
            customer_id = uow.organizations.get(change.organization_id).provider_customer_id
        if customer_id is None:  # recorded with an invoice due only when a customer exists
            continue
        try:
            done = _invoice_change(ctx, change, customer_id)
        except PaymentError as exc:
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
    """Link a metered product to a project (or the organization when ``project_id`` is None).

    Once: under the organization's lock, a link of the product to the same project (or the
    organization) that has not ended is returned as it is, so a repeated or concurrent subscribe
    never creates a second link (nor an error)."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    metered = ctx.catalog.product_by_code(product)
    now = ctx.clock.now()
    sub = new_product_subscription(organization_id=organization_id, project_id=project_id, product_id=metered.id,
                                   start_date=start_date or now, end_date=end_date)
    with ctx.uow() as uow:
        uow.organizations.get(organization_id)
        uow.wallets.lock(organization_id)
        existing = _live_link(uow, organization_id, metered.id, project_id, now)
        if existing is not None:
            return existing
        uow.product_subscriptions.add(sub)
        uow.commit()
    return sub


def _live_link(uow: UnitOfWork, organization_id: uuid.UUID, product_id: uuid.UUID, project_id: uuid.UUID | None,
               now: datetime) -> ProductSubscription | None:
    """The organization's link of the product to exactly this project (or to the organization) that
    has not ended by ``now``, if any."""
    cursor: str | None = None
    while True:
        page = uow.product_subscriptions.list(organization_id, limit=200, cursor=cursor)
        for link in page.items:
            if (link.product_id == product_id and link.project_id == project_id
                    and (link.end_date is None or link.end_date > now)):
                return link
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor


def end_product_subscription(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                             subscription_id: uuid.UUID, end_date: datetime | None = None) -> ProductSubscription:
    """End the link at ``end_date`` (now by default), or keep the earlier end it already has.
    Decided on the link as it stands under the organization's lock, so of concurrent ends the
    earliest date stands whatever order they land in."""
    require(actor, Action.UPDATE_BILLING, organization_id)
    with ctx.uow() as uow:
        uow.wallets.lock(organization_id)
        sub = uow.product_subscriptions.get(organization_id, subscription_id)
        sub.end(end_date or ctx.clock.now())
        uow.product_subscriptions.save(sub)
        uow.commit()
        return sub
