"""Checkout completion, expiry and guest claims apply once, with the provider event's inbox entry in
the same unit of work; ``reconcile`` notices doubled subscriptions and grants; the offline provider
never reuses an id after a restart (issue 14; ADR 0009). In memory: the concurrent versions of these
run on SQLite and PostgreSQL in tests/reliability/test_concurrent_checkout.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from adapters.fakes import InMemoryBilling, InMemoryPaymentProvider, in_memory_billing
from billing_core import Role, services
from billing_core.catalog import load_catalog
from billing_core.checkout import CheckoutSession, CheckoutStatus
from billing_core.errors import Conflict
from billing_core.ledger import Account, EntryKind, transfer
from billing_core.organization import Organization
from billing_core.permissions import Actor
from billing_core.plan_subscription import SubscriptionStatus

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def billing() -> InMemoryBilling:
    return in_memory_billing(NOW)


def _owner(billing: InMemoryBilling) -> tuple[uuid.UUID, Actor]:
    org = services.organizations.create_organization(billing.ctx, name="Acme", owner_user_id="ada",
                                                     owner_email="ada@acme.test")
    return org.id, Actor(organization_id=org.id, subject="user:ada", role=Role.PRIMARY_OWNER,
                         email="ada@acme.test", email_verified=True)


def _checkout(billing: InMemoryBilling, owner: Actor) -> CheckoutSession:
    return services.checkout.start_checkout(billing.ctx, owner, organization_id=owner.organization_id,
                                            plan="pro", return_url="https://app.test/pricing")


def _completed(billing: InMemoryBilling, session: CheckoutSession, subscription: str, event_id: str,
               ) -> tuple[bytes, str]:
    return billing.payments.event("checkout.session.completed", {
        "id": session.provider_session_id, "object": "checkout.session", "mode": "subscription",
        "subscription": subscription}, event_id=event_id)


def _handle(billing: InMemoryBilling, event: tuple[bytes, str]) -> str:
    return services.provider_events.handle_event(billing.ctx, *event).outcome


def _problems(billing: InMemoryBilling, org: uuid.UUID) -> tuple[str, ...]:
    return services.reconcile.reconcile(billing.ctx, organization_id=org).problems


# --------------------------------------------------------------------------- the inbox and its effects


def test_an_event_is_applied_and_remembered_in_one_commit(billing: InMemoryBilling) -> None:
    _, owner = _owner(billing)
    session = _checkout(billing, owner)
    event = _completed(billing, session, "sub_1", "evt_1")
    before = billing.store.commits
    assert _handle(billing, event) == "processed"
    assert billing.store.commits == before + 1  # a crash can keep both or neither
    assert _handle(billing, event) == "duplicate"
    assert billing.store.commits == before + 1


def test_an_event_whose_effects_fail_is_not_remembered_and_applies_when_retried(billing: InMemoryBilling) -> None:
    org, owner = _owner(billing)
    first, second = _checkout(billing, owner), _checkout(billing, owner)
    assert _handle(billing, _completed(billing, first, "sub_1", "evt_1")) == "processed"
    late = _completed(billing, second, "sub_2", "evt_2")
    with pytest.raises(Conflict) as refused:
        _handle(billing, late)
    assert refused.value.code == "already_subscribed"
    with billing.ctx.uow() as uow:
        assert not uow.inbox.seen("payment_provider", "evt_2")
        assert uow.checkouts.get(second.id).status == CheckoutStatus.OPEN
    # Once the first subscription has ended, the provider's retry of the same event applies.
    services.plan_subscriptions.set_status(billing.ctx, organization_id=org, status=SubscriptionStatus.CANCELED)
    billing.clock.advance(timedelta(minutes=1))
    assert _handle(billing, late) == "processed"
    with billing.ctx.uow() as uow:
        assert [s.provider_subscription_id for s in uow.plan_subscriptions.list(org)] == ["sub_1", "sub_2"]
    assert _problems(billing, org) == ()


def test_a_second_checkout_of_a_subscribed_workspace_does_not_grant_again(billing: InMemoryBilling) -> None:
    org, owner = _owner(billing)
    first, second = _checkout(billing, owner), _checkout(billing, owner)
    assert first.trial and second.trial
    services.checkout.complete_checkout(billing.ctx, provider_session_id=str(first.provider_session_id),
                                        provider_subscription_id="sub_1")
    with pytest.raises(Conflict) as refused:
        services.checkout.complete_checkout(billing.ctx, provider_session_id=str(second.provider_session_id),
                                            provider_subscription_id="sub_2")
    assert refused.value.code == "already_subscribed"
    with billing.ctx.uow() as uow:
        assert len(uow.plan_subscriptions.list(org)) == 1
        grants = uow.ledger.list(org, kinds=frozenset({EntryKind.GRANT})).items
    assert [g.description for g in grants] == ["Free Trial Credits"]


def test_a_completed_checkout_does_not_expire_and_an_expired_one_does_not_complete(billing: InMemoryBilling) -> None:
    org, owner = _owner(billing)
    done, gone = _checkout(billing, owner), _checkout(billing, owner)
    ctx = billing.ctx
    services.checkout.complete_checkout(ctx, provider_session_id=str(done.provider_session_id),
                                        provider_subscription_id="sub_1")
    expired = services.checkout.expire_checkout(ctx, provider_session_id=str(done.provider_session_id))
    assert expired is not None and expired.status == CheckoutStatus.COMPLETE
    again = services.checkout.complete_checkout(ctx, provider_session_id=str(done.provider_session_id),
                                                provider_subscription_id="sub_other")
    assert again.provider_subscription_id == "sub_1"
    gone_now = services.checkout.expire_checkout(ctx, provider_session_id=str(gone.provider_session_id))
    assert gone_now is not None and gone_now.status == CheckoutStatus.EXPIRED
    with pytest.raises(Conflict) as refused:
        services.checkout.complete_checkout(ctx, provider_session_id=str(gone.provider_session_id),
                                            provider_subscription_id="sub_2")
    assert refused.value.code == "checkout_closed"
    assert services.checkout.expire_checkout(ctx, provider_session_id="cs_unknown") is None
    assert _problems(billing, org) == ()


def test_a_checkout_activates_the_subscription_its_id_names(billing: InMemoryBilling) -> None:
    org, owner = _owner(billing)
    session = _checkout(billing, owner)
    done = services.checkout.complete_checkout(billing.ctx, provider_session_id=str(session.provider_session_id),
                                               provider_subscription_id="sub_1")
    assert done.subscription_id == services.checkout.subscription_id_for(session)
    with billing.ctx.uow() as uow:
        assert uow.checkouts.get(session.id).subscription_id == done.subscription_id
        assert uow.plan_subscriptions.by_provider_id("sub_1") == uow.plan_subscriptions.current(org)


def test_a_provider_subscription_already_recorded_is_not_activated_again(billing: InMemoryBilling) -> None:
    """A guest checkout carrying the provider subscription of another workspace's checkout."""
    _, owner = _owner(billing)
    mine = _checkout(billing, owner)
    services.checkout.complete_checkout(billing.ctx, provider_session_id=str(mine.provider_session_id),
                                        provider_subscription_id="sub_1")
    guest = services.checkout.start_guest_checkout(billing.ctx, email="eve@other.test", plan="pro",
                                                   return_url="https://app.test/pricing")
    services.checkout.complete_checkout(billing.ctx, provider_session_id=str(guest.provider_session_id),
                                        provider_subscription_id="sub_1")
    other = services.organizations.create_organization(billing.ctx, name="Other", owner_user_id="eve",
                                                       owner_email="eve@other.test")
    eve = Actor(organization_id=other.id, subject="user:eve", role=Role.PRIMARY_OWNER, email="eve@other.test",
                email_verified=True)
    with pytest.raises(Conflict) as refused:
        services.checkout.claim_guest_checkouts(billing.ctx, eve)
    assert refused.value.code == "duplicate_provider_subscription"
    with billing.ctx.uow() as uow:
        assert uow.plan_subscriptions.list(other.id) == []
        assert uow.checkouts.get(guest.id).claimed_at is None


# --------------------------------------------------------------------------- reconcile


def _subscribed(billing: InMemoryBilling) -> tuple[uuid.UUID, CheckoutSession]:
    org, owner = _owner(billing)
    session = _checkout(billing, owner)
    done = services.checkout.complete_checkout(billing.ctx, provider_session_id=str(session.provider_session_id),
                                               provider_subscription_id="sub_1")
    assert _problems(billing, org) == ()
    return org, done


def _trial_grant(billing: InMemoryBilling, org: uuid.UUID, key: str, **extra: Any) -> None:
    with billing.ctx.uow() as uow:
        uow.wallets.post(transfer(organization_id=org, idempotency_key=key, kind=EntryKind.GRANT,
                                  description="Free Trial Credits", created_at=NOW, source=Account.PROMOTIONAL_GRANTS,
                                  target=Account.WALLET, amount_micros=5_000_000, **extra))
        uow.commit()


def test_reconcile_notices_a_checkout_that_activated_several_subscriptions(billing: InMemoryBilling) -> None:
    """What concurrent completions did before: copies of the subscription, each with its grant
    (stored here behind the repository's back, as the database held them)."""
    org, _ = _subscribed(billing)
    with billing.ctx.uow() as uow:
        original = uow.plan_subscriptions.list(org)[0]
    copy = msgspec.structs.replace(original, id=uuid.uuid4())
    billing.store.plan_subscriptions[copy.id] = copy
    _trial_grant(billing, org, f"trial-credits:{copy.id}")
    problems = _problems(billing, org)
    assert any("sub_1 has 2 plan subscriptions" in p for p in problems)
    assert any(f"subscription {copy.id} comes from 0 completed checkouts" in p for p in problems)
    assert not services.reconcile.reconcile(billing.ctx, organization_id=org).clean


def test_reconcile_notices_grants_for_no_subscription_or_no_trial(billing: InMemoryBilling) -> None:
    org, session = _subscribed(billing)
    stray = uuid.uuid4()
    _trial_grant(billing, org, f"trial-credits:{stray}")
    _trial_grant(billing, org, "plan-credits:not-an-id:2026-06-01T08:00:00+00:00")
    _trial_grant(billing, org, f"plan-credits:{session.subscription_id}:2027-01-01T00:00:00+00:00")
    _trial_grant(billing, org, "welcome-credits")  # other grants are not the subscriptions' business
    assert set(_problems(billing, org)) == {f"grant trial-credits:{stray} names no subscription of the organization",
                        "grant plan-credits:not-an-id:2026-06-01T08:00:00+00:00 names no subscription of the "
                        "organization",
                        f"plan-credit grant plan-credits:{session.subscription_id}:2027-01-01T00:00:00+00:00 for a "
                        f"period subscription {session.subscription_id} has not begun"}


def test_reconcile_notices_a_completed_checkout_without_its_subscription(billing: InMemoryBilling) -> None:
    org, session = _subscribed(billing)
    stored = billing.store.checkouts[session.id]
    billing.store.checkouts[session.id] = msgspec.structs.replace(stored, subscription_id=None)
    assert set(_problems(billing, org)) == {
        f"completed checkout {session.id} has no subscription of the organization",
        f"subscription {session.subscription_id} comes from 0 completed checkouts, not one"}


def test_reconcile_notices_a_trial_grant_for_a_paid_subscription(billing: InMemoryBilling) -> None:
    org, owner = _owner(billing)
    services.payment_methods.attach(billing.ctx, owner, organization_id=org, provider_payment_method_id="pm_card_visa")
    services.payments.add_credits(billing.ctx, owner, organization_id=org, amount_micros=10_000_000)
    session = _checkout(billing, owner)
    assert not session.trial
    done = services.checkout.complete_checkout(billing.ctx, provider_session_id=str(session.provider_session_id),
                                               provider_subscription_id="sub_paid")
    assert _problems(billing, org) == ()
    _trial_grant(billing, org, f"trial-credits:{done.subscription_id}")
    assert _problems(billing, org) == (
        f"trial grant trial-credits:{done.subscription_id} for subscription {done.subscription_id}, "
        "which had no trial",)


# --------------------------------------------------------------------------- the offline provider's ids


def test_the_offline_provider_does_not_reuse_ids_after_a_restart() -> None:
    plan = load_catalog().plan("pro")
    org = Organization(id=uuid.uuid4(), name="Acme", created_at=NOW)
    seen: set[str] = set()
    for _restart in range(3):
        provider = InMemoryPaymentProvider()
        ids = [provider.create_checkout_session(customer_id=None, guest_email="a@b.test", plan=plan, trial_days=None,
                                                return_url="/", reference="r", idempotency_key="checkout:1")
               .provider_session_id,
               provider.create_crypto_checkout(customer_id="cus", amount_cents=500, currency_iso="USD", return_url="/",
                                               reference="r", idempotency_key="payment:1").provider_session_id,
               provider.charge(customer_id="cus", provider_payment_method_id="pm_card_visa", amount_cents=500,
                               currency_iso="USD", description="d", reference="r",
                               idempotency_key="payment:2").provider_payment_id,
               provider.ensure_customer(org, None), provider.refund(provider_payment_id="pi", amount_cents=1,
                                                                    idempotency_key="refund:1")]
        assert [i.split("_")[0] for i in ids] == ["cs", "cs", "pi", "cus", "re"]
        assert not seen & set(ids)
        seen |= set(ids)


def test_a_restarted_offline_service_completes_the_session_it_opened(billing: InMemoryBilling) -> None:
    """The stored sessions outlive the provider's memory: a new session must not take an old id (the
    completion of the new one would find the old one)."""
    ctx = billing.ctx
    old = services.checkout.start_guest_checkout(ctx, email="ada@acme.test", plan="pro", return_url="/")
    services.checkout.complete_checkout(ctx, provider_session_id=str(old.provider_session_id),
                                        provider_subscription_id="sub_old")
    billing.payments = InMemoryPaymentProvider()  # the restart
    new = services.checkout.start_guest_checkout(billing.ctx, email="bob@acme.test", plan="starter",
                                                 return_url="/")
    assert new.provider_session_id != old.provider_session_id
    done = services.checkout.complete_checkout(billing.ctx, provider_session_id=str(new.provider_session_id),
                                               provider_subscription_id="sub_new")
    assert (done.id, done.status, done.provider_subscription_id) == (new.id, CheckoutStatus.COMPLETE, "sub_new")
