"""The conditional checkout writes, the organization's subscriptions and checkouts, one plan
subscription per provider subscription id, and an inbox entry that lives and dies with its unit of
work: on the in-memory fake, SQLite and PostgreSQL (ADR 0009)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from adapters.testing.builders import NOW, checkout, new_org, plan_subscription
from adapters.testing.storage import StorageBackend
from billing_core.checkout import CheckoutStatus
from billing_core.errors import Conflict
from billing_core.plan_subscription import SubscriptionStatus


class ConditionalCheckoutWritesContract:
    def test_an_open_session_completes_once(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        session = checkout(org.id, provider_id="cs_1")
        with storage.uow() as uow:
            uow.checkouts.add(session)
            uow.commit()
        with storage.uow() as uow:
            assert uow.checkouts.complete(session.id, completed_at=NOW, provider_subscription_id="sub_1")
            assert not uow.checkouts.complete(session.id, completed_at=NOW + timedelta(seconds=1),
                                              provider_subscription_id="sub_2")
            assert not uow.checkouts.expire(session.id)
            uow.commit()
        with storage.uow() as uow:
            stored = uow.checkouts.get(session.id)
            assert not uow.checkouts.complete(session.id, completed_at=NOW, provider_subscription_id="sub_3")
        assert (stored.status, stored.completed_at, stored.provider_subscription_id) == (
            CheckoutStatus.COMPLETE, NOW, "sub_1")
        assert (stored.organization_id, stored.claimed_at, stored.subscription_id) == (org.id, None, None)

    def test_an_expired_session_does_not_complete(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        session = checkout(org.id, provider_id="cs_1")
        with storage.uow() as uow:
            uow.checkouts.add(session)
            assert uow.checkouts.expire(session.id)
            assert not uow.checkouts.expire(session.id)
            assert not uow.checkouts.complete(session.id, completed_at=NOW, provider_subscription_id="sub_1")
            uow.commit()
        with storage.uow() as uow:
            stored = uow.checkouts.get(session.id)
        assert (stored.status, stored.completed_at, stored.provider_subscription_id) == (
            CheckoutStatus.EXPIRED, None, None)

    def test_unknown_sessions_move_nowhere(self, storage: StorageBackend) -> None:
        with storage.uow() as uow:
            assert not uow.checkouts.complete(uuid.uuid4(), completed_at=NOW, provider_subscription_id=None)
            assert not uow.checkouts.expire(uuid.uuid4())
            assert not uow.checkouts.claim(uuid.uuid4(), organization_id=uuid.uuid4(), claimed_at=NOW)

    def test_a_completed_guest_session_is_claimed_once(self, storage: StorageBackend) -> None:
        first, second = new_org(storage), new_org(storage)
        guest = checkout(None, guest_email="guest@example.test", status=CheckoutStatus.COMPLETE, provider_id="cs_g")
        still_open = checkout(None, guest_email="guest@example.test", provider_id="cs_o")
        with storage.uow() as uow:
            uow.checkouts.add(guest)
            uow.checkouts.add(still_open)
            uow.commit()
        with storage.uow() as uow:
            assert not uow.checkouts.claim(still_open.id, organization_id=first.id, claimed_at=NOW)
            assert uow.checkouts.claim(guest.id, organization_id=first.id, claimed_at=NOW)
            uow.commit()
        with storage.uow() as uow:
            assert not uow.checkouts.claim(guest.id, organization_id=second.id, claimed_at=NOW + timedelta(1))
            assert not uow.checkouts.claim(guest.id, organization_id=first.id, claimed_at=NOW + timedelta(1))
            uow.commit()
        with storage.uow() as uow:
            stored = uow.checkouts.get(guest.id)
            assert uow.checkouts.unclaimed_guest("guest@example.test") == []
        assert (stored.organization_id, stored.claimed_at, stored.status) == (first.id, NOW, CheckoutStatus.COMPLETE)

    def test_a_write_rolled_back_with_its_unit_of_work_leaves_the_session_open(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        session = checkout(org.id, provider_id="cs_1")
        with storage.uow() as uow:
            uow.checkouts.add(session)
            uow.commit()
        with storage.uow() as uow:
            assert uow.checkouts.complete(session.id, completed_at=NOW, provider_subscription_id="sub_1")
        with storage.uow() as uow:
            assert uow.checkouts.get(session.id).status == CheckoutStatus.OPEN


class OrganizationListingsContract:
    def test_checkouts_of_an_organization_oldest_first(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        later = checkout(org.id, created_at=NOW + timedelta(hours=1))
        earlier = checkout(org.id, created_at=NOW - timedelta(hours=1))
        claimed = checkout(None, guest_email="g@example.test", status=CheckoutStatus.COMPLETE)
        with storage.uow() as uow:
            for session in (later, earlier, claimed, checkout(other.id), checkout(None, guest_email="g@example.test")):
                uow.checkouts.add(session)
            assert uow.checkouts.claim(claimed.id, organization_id=org.id, claimed_at=NOW)
            uow.commit()
        with storage.uow() as uow:
            assert [s.id for s in uow.checkouts.for_organization(org.id)] == [earlier.id, claimed.id, later.id]
            assert uow.checkouts.for_organization(uuid.uuid4()) == []

    def test_plan_subscriptions_of_an_organization_oldest_first(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        subs = [plan_subscription(org.id, created_at=NOW + timedelta(days=d)) for d in (2, 0, 1)]
        subs[1].status = SubscriptionStatus.CANCELED
        with storage.uow() as uow:
            for sub in (*subs, plan_subscription(other.id)):
                uow.plan_subscriptions.add(sub)
            uow.commit()
        with storage.uow() as uow:
            assert uow.plan_subscriptions.list(org.id) == [subs[1], subs[2], subs[0]]
            assert uow.plan_subscriptions.list(uuid.uuid4()) == []


class OnePlanSubscriptionPerProviderIdContract:
    def test_a_second_subscription_with_the_same_provider_id_is_refused(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        first = plan_subscription(org.id, provider_id="sub_1")
        with storage.uow() as uow:
            uow.plan_subscriptions.add(first)
            uow.commit()
        for owner in (org.id, other.id):
            with storage.uow() as uow:
                with pytest.raises(Conflict) as refused:
                    uow.plan_subscriptions.add(plan_subscription(owner, provider_id="sub_1"))
                assert refused.value.code == "duplicate"
                # The unit of work stays usable after the refusal.
                assert uow.plan_subscriptions.by_provider_id("sub_1") == first
        with storage.uow() as uow:
            assert uow.plan_subscriptions.list(org.id) == [first]
            assert uow.plan_subscriptions.list(other.id) == []

    def test_subscriptions_without_a_provider_id_are_not_duplicates(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        subs = [plan_subscription(org.id, created_at=NOW + timedelta(seconds=n)) for n in range(3)]
        with storage.uow() as uow:
            for sub in subs:
                uow.plan_subscriptions.add(sub)
            uow.commit()
        with storage.uow() as uow:
            assert uow.plan_subscriptions.list(org.id) == subs


class InboxInTheUnitOfWorkContract:
    def test_an_event_remembered_in_a_rolled_back_unit_of_work_is_forgotten(self, storage: StorageBackend) -> None:
        with storage.uow() as uow:
            assert uow.inbox.remember("payment_provider", "evt_1", NOW)
            assert not uow.inbox.remember("payment_provider", "evt_1", NOW)
        with storage.uow() as uow:
            assert not uow.inbox.seen("payment_provider", "evt_1")
            assert uow.inbox.remember("payment_provider", "evt_1", NOW)
            uow.commit()
        with storage.uow() as uow:
            assert not uow.inbox.remember("payment_provider", "evt_1", NOW)
