"""Checkout: start one (trial or paid, guest or signed in), read its status, complete it (the
provider's event or the offline route) or let it expire, claim guest checkouts, and activate the
plan subscription it paid for."""

from __future__ import annotations

import uuid

import msgspec

from billing_core.billing_settings import check_email
from billing_core.catalog import Plan
from billing_core.checkout import (
    CheckoutSession,
    CheckoutStatus,
    check_return_url,
    claimable,
    return_url_with_status,
)
from billing_core.errors import (
    AlreadySubscribed,
    CheckoutClosed,
    DuplicateProviderSubscription,
    NotFound,
    ProviderUnavailable,
)
from billing_core.permissions import Action, Actor, require
from billing_core.plan_subscription import (
    ENDED,
    PlanSubscription,
    SubscriptionStatus,
    new_subscription,
)
from billing_core.ports import UnitOfWork
from billing_core.services.context import BillingContext
from billing_core.services.customers import ensure_customer
from billing_core.services.plan_subscriptions import grant_period_credits, has_billing_history
from billing_core.services.wallet import sync_wallet


def start_checkout(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID, plan: str,
                   return_url: str) -> CheckoutSession:
    """An embedded checkout for ``plan``: a trial if the workspace has no billing history."""
    require(actor, Action.SUBSCRIBE_TO_PLAN, organization_id)
    chosen = ctx.catalog.plan(plan)
    return_url = check_return_url(return_url)
    with ctx.uow() as uow:
        current = uow.plan_subscriptions.current(organization_id)
        if current is not None and current.status not in ENDED:
            raise AlreadySubscribed("the workspace already has a subscription; change the plan instead")
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


def checkout_status_by_provider(ctx: BillingContext, actor: Actor, *, organization_id: uuid.UUID,
                                provider_session_id: str) -> tuple[CheckoutSession, str]:
    """The status of the organization's checkout that the provider knows as ``provider_session_id``
    (the ``session_id=cs_…`` the customer returns with from an embedded checkout) and the URL
    carrying it. While ours is still open the provider is asked too: the customer is often back
    before the completion event, whose handler alone completes the checkout (nothing is written here)."""
    require(actor, Action.VIEW_BILLING, organization_id)
    with ctx.uow() as uow:
        session = uow.checkouts.by_provider_id(provider_session_id)
    if session is None or session.organization_id != organization_id:
        raise NotFound("checkout session", provider_session_id)
    if session.status == CheckoutStatus.OPEN:
        try:
            stated = ctx.payments.checkout_status(provider_session_id)
        except ProviderUnavailable:
            stated = None  # advisory only: ours stands until the provider answers again
        if stated in (CheckoutStatus.COMPLETE.value, CheckoutStatus.EXPIRED.value):
            session = msgspec.structs.replace(session, status=CheckoutStatus(stated))
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
        raise CheckoutClosed(f"checkout session is {session.status}")
    organization_id = session.organization_id
    if organization_id is not None:
        _refuse_second_subscription(uow, organization_id)
    now = ctx.clock.now()
    if not uow.checkouts.complete(session.id, completed_at=now, provider_subscription_id=provider_subscription_id):
        # A concurrent completion or expiry of a guest session came first; its outcome stands.
        session = uow.checkouts.get(session.id)
        if session.status == CheckoutStatus.COMPLETE:
            return session
        raise CheckoutClosed(f"checkout session is {session.status}")
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
        raise AlreadySubscribed("the workspace already has a subscription; change the plan instead")


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
        raise CheckoutClosed("the checkout session has no provider session")
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
        raise DuplicateProviderSubscription(
            f"provider subscription {provider_subscription_id} already belongs to another checkout")
    sub = new_subscription(organization_id=organization_id, plan=plan, now=now, trial=session.trial,
                           status=target, subscription_id=subscription_id_for(session),
                           provider_subscription_id=provider_subscription_id)
    uow.plan_subscriptions.add(sub)
    grant_period_credits(ctx, uow, sub)
    sync_wallet(uow, ctx.catalog, organization_id)
    return sub


def subscription_id_for(session: CheckoutSession) -> uuid.UUID:
    """The id of the plan subscription a checkout session activates: one per session."""
    return uuid.uuid5(session.id, "plan-subscription")


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
