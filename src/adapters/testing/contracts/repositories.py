"""Contracts of the remaining repository ports, one class per port."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from adapters.testing.builders import (
    NOW,
    OTHER_PRODUCT,
    PRODUCT,
    checkout,
    invoice,
    new_org,
    outbox_message,
    payment,
    payment_method,
    plan_subscription,
    product_subscription,
    refund_request,
    tax_registration,
    usage_event,
)
from adapters.testing.storage import StorageBackend
from billing_core.billing_settings import (
    AutoRecharge,
    BillingSettings,
    InvoiceAddress,
    LowBalanceAlert,
    SpendManagement,
    TaxRegistrationStatus,
)
from billing_core.checkout import CheckoutStatus
from billing_core.einvoice import DEMO_SELLER, from_invoice
from billing_core.errors import Conflict, Duplicate, InvalidInput, NotFound
from billing_core.invoices import InvoiceStatus
from billing_core.organization import ApiToken, Membership
from billing_core.outbox import OutboxDepth, OutboxStatus
from billing_core.payments import PaymentStatus
from billing_core.permissions import Permission, Role
from billing_core.plan_subscription import SubscriptionStatus
from billing_core.ports import IDEMPOTENCY_IN_PROGRESS, StoredResponse
from billing_core.product_subscription import covered
from billing_core.usage import HourlyUsage

FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


class OrganizationRepositoryContract:
    def test_add_get_save(self, storage: StorageBackend) -> None:
        org = new_org(storage, name="Acme GmbH")
        with storage.uow() as uow:
            stored = uow.organizations.get(org.id)
            assert stored == org
            stored.provider_customer_id = "cus_123"
            stored.webhook_secret = "whsec_new"
            stored.name = "Acme AG"
            uow.organizations.save(stored)
            uow.commit()
        with storage.uow() as uow:
            assert uow.organizations.get(org.id) == stored
            assert uow.organizations.by_provider_customer("cus_123") == stored
            assert uow.organizations.by_provider_customer("cus_nope") is None

    def test_one_organization_per_provider_customer(self, storage: StorageBackend) -> None:
        """The provider's events name a customer, so two organizations never share one: the second
        save is a ``Duplicate`` (409) on every backend, and nothing of it is stored."""
        first, second = new_org(storage), new_org(storage)
        with storage.uow() as uow:
            stored = uow.organizations.get(first.id)
            stored.provider_customer_id = "cus_shared"
            uow.organizations.save(stored)
            uow.commit()
        with storage.uow() as uow:
            other = uow.organizations.get(second.id)
            other.provider_customer_id = "cus_shared"
            with pytest.raises(Duplicate) as raised:
                uow.organizations.save(other)
            assert raised.value.code == "duplicate"
        with storage.uow() as uow:
            assert uow.organizations.get(second.id).provider_customer_id is None
            assert uow.organizations.by_provider_customer("cus_shared") == stored

    def test_duplicate_and_unknown(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            with pytest.raises(Conflict):
                uow.organizations.add(org)
            with pytest.raises(NotFound):
                uow.organizations.get(uuid.uuid4())
            ghost = msgspec.structs.replace(org, id=uuid.uuid4())
            with pytest.raises(NotFound):
                uow.organizations.save(ghost)

    def test_ids_in_stable_order(self, storage: StorageBackend) -> None:
        orgs = [new_org(storage) for _ in range(5)]
        with storage.uow() as uow:
            assert uow.organizations.ids() == sorted((o.id for o in orgs), key=str)

    def test_memberships_are_replaced_per_user_and_found_by_email_case_insensitively(
            self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        with storage.uow() as uow:
            uow.organizations.add_membership(Membership(organization_id=org.id, user_id="u1", email="Ann@Example.test",
                                                        role=Role.MEMBER))
            uow.organizations.add_membership(Membership(organization_id=org.id, user_id="u1", email="Ann@Example.test",
                                                        role=Role.OWNER, email_verified=False))
            uow.organizations.add_membership(Membership(organization_id=other.id, user_id="u9",
                                                        email="ann@example.TEST", role=Role.PRIMARY_OWNER))
            uow.commit()
        with storage.uow() as uow:
            member = uow.organizations.membership(org.id, "u1")
            assert member == Membership(organization_id=org.id, user_id="u1", email="Ann@Example.test",
                                        role=Role.OWNER, email_verified=False)
            assert uow.organizations.membership(org.id, "u9") is None
            found = uow.organizations.memberships_by_email("ANN@example.test")
            assert sorted((m.organization_id, m.user_id) for m in found) == sorted([(org.id, "u1"), (other.id, "u9")])
            assert uow.organizations.memberships_by_email("bob@example.test") == []

    def test_tokens(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        token = ApiToken(id=uuid.uuid4(), organization_id=org.id, token_hash="h" * 64, name="svc", created_at=NOW,
                         scopes=frozenset({Permission.USAGE_WRITE, Permission.BILLING_READ}),
                         expires_at=NOW + timedelta(days=30))
        with storage.uow() as uow:
            uow.organizations.add_token(token)
            uow.commit()
        with storage.uow() as uow:
            assert uow.organizations.token_by_hash("h" * 64) == token
            assert uow.organizations.token_by_hash("x") is None
            with pytest.raises(Conflict):
                uow.organizations.add_token(msgspec.structs.replace(token, id=uuid.uuid4()))
            revoked = msgspec.structs.replace(token, revoked_at=NOW)
            uow.organizations.save_token(revoked)
            uow.commit()
        with storage.uow() as uow:
            assert uow.organizations.token_by_hash("h" * 64) == revoked
            with pytest.raises(NotFound):
                uow.organizations.save_token(msgspec.structs.replace(token, token_hash="unknown"))

    def test_list_tokens_oldest_first_paged_and_scoped(self, storage: StorageBackend) -> None:
        """created_at then id (two tokens share a created_at), revoked and expired ones included,
        another organization's never, with the other lists' cursor rules."""
        org, other = new_org(storage), new_org(storage)
        stamps = (NOW + timedelta(hours=2), NOW, NOW + timedelta(hours=1), NOW, NOW + timedelta(days=1))
        tokens = [ApiToken(id=uuid.uuid4(), organization_id=org.id, token_hash=f"{n:064x}", name=f"t{n}",
                           created_at=at, user_id="u1" if n % 2 else None,
                           scopes=frozenset() if n % 2 else frozenset({Permission.USAGE_WRITE}),
                           expires_at=NOW if n == 2 else None, revoked_at=NOW if n == 3 else None)
                  for n, at in enumerate(stamps)]
        with storage.uow() as uow:
            for token in tokens:
                uow.organizations.add_token(token)
            uow.organizations.add_token(ApiToken(id=uuid.uuid4(), organization_id=other.id, token_hash="o" * 64,
                                                 name="theirs", created_at=NOW - timedelta(days=1),
                                                 scopes=frozenset({Permission.USAGE_WRITE})))
            uow.commit()
        ordered = sorted(tokens, key=lambda t: (t.created_at, str(t.id)))
        with storage.uow() as uow:
            assert uow.organizations.list_tokens(org.id).items == ordered
            page = uow.organizations.list_tokens(org.id, limit=3)
            assert page.items == ordered[:3] and page.next_cursor is not None
            rest = uow.organizations.list_tokens(org.id, limit=3, cursor=page.next_cursor)
            assert rest.items == ordered[3:] and rest.next_cursor is None
            exact = uow.organizations.list_tokens(org.id, limit=5)
            assert exact.items == ordered and exact.next_cursor is None
            assert uow.organizations.list_tokens(uuid.uuid4()).items == []
            with pytest.raises(InvalidInput):
                uow.organizations.list_tokens(org.id, cursor="x")
            with pytest.raises(InvalidInput):
                uow.organizations.list_tokens(org.id, limit=0)


class PlanSubscriptionRepositoryContract:
    def test_add_get_current_by_provider(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        old = plan_subscription(org.id, created_at=NOW - timedelta(days=40), status=SubscriptionStatus.CANCELED)
        new = plan_subscription(org.id, provider_id="sub_1")
        with storage.uow() as uow:
            assert uow.plan_subscriptions.current(org.id) is None
            uow.plan_subscriptions.add(new)
            uow.plan_subscriptions.add(old)
            uow.commit()
        with storage.uow() as uow:
            assert uow.plan_subscriptions.get(org.id, old.id) == old
            assert uow.plan_subscriptions.current(org.id) == new
            assert uow.plan_subscriptions.by_provider_id("sub_1") == new
            assert uow.plan_subscriptions.by_provider_id("sub_x") is None
            with pytest.raises(Conflict):
                uow.plan_subscriptions.add(new)
            with pytest.raises(NotFound):
                uow.plan_subscriptions.get(org.id, uuid.uuid4())

    def test_current_breaks_created_at_ties_by_id(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        subs = [plan_subscription(org.id) for _ in range(4)]
        with storage.uow() as uow:
            for sub in subs:
                uow.plan_subscriptions.add(sub)
            uow.commit()
        with storage.uow() as uow:
            assert uow.plan_subscriptions.current(org.id) == max(subs, key=lambda s: str(s.id))

    def test_save_is_optimistic(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        sub = plan_subscription(org.id)
        with storage.uow() as uow:
            uow.plan_subscriptions.add(sub)
            uow.commit()
        with storage.uow() as uow:
            first = uow.plan_subscriptions.get(org.id, sub.id)
            stale = uow.plan_subscriptions.get(org.id, sub.id)
            first.transition(SubscriptionStatus.PAST_DUE, NOW)
            uow.plan_subscriptions.save(first)
            with pytest.raises(Conflict):
                uow.plan_subscriptions.save(stale)
            uow.commit()
        with storage.uow() as uow:
            stored = uow.plan_subscriptions.get(org.id, sub.id)
            assert stored == first
            assert (stored.status, stored.past_due_since, stored.version) == (SubscriptionStatus.PAST_DUE, NOW, 1)
            with pytest.raises(NotFound):
                uow.plan_subscriptions.save(plan_subscription(org.id))

    def test_of_two_copies_changed_at_once_only_the_first_saved_wins(self, storage: StorageBackend) -> None:
        """A lost update: both copies were loaded at the same version and both changed."""
        org = new_org(storage)
        sub = plan_subscription(org.id, status=SubscriptionStatus.ACTIVE)
        with storage.uow() as uow:
            uow.plan_subscriptions.add(sub)
            uow.commit()
        with storage.uow() as uow:
            canceling = uow.plan_subscriptions.get(org.id, sub.id)
            failing = uow.plan_subscriptions.get(org.id, sub.id)
            canceling.transition(SubscriptionStatus.CANCELED, NOW)
            failing.transition(SubscriptionStatus.PAST_DUE, NOW)
            uow.plan_subscriptions.save(canceling)
            assert canceling.version == 1
            with pytest.raises(Conflict):
                uow.plan_subscriptions.save(failing)
            assert failing.version == 0
            uow.commit()
        with storage.uow() as uow:
            stored = uow.plan_subscriptions.get(org.id, sub.id)
        assert (stored.status, stored.version) == (SubscriptionStatus.CANCELED, 1)

    def test_the_provider_state_time_is_stored(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        sub = plan_subscription(org.id, status=SubscriptionStatus.ACTIVE)
        with storage.uow() as uow:
            uow.plan_subscriptions.add(sub)
            stored = uow.plan_subscriptions.get(org.id, sub.id)
            stored.provider_state_at = NOW - timedelta(seconds=3)
            uow.plan_subscriptions.save(stored)
            uow.commit()
        with storage.uow() as uow:
            assert uow.plan_subscriptions.get(org.id, sub.id).provider_state_at == NOW - timedelta(seconds=3)

    def test_the_end_of_period_cancellation_is_stored(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        sub = plan_subscription(org.id, status=SubscriptionStatus.ACTIVE)
        with storage.uow() as uow:
            uow.plan_subscriptions.add(sub)
            assert not uow.plan_subscriptions.get(org.id, sub.id).cancel_at_period_end
            stored = uow.plan_subscriptions.get(org.id, sub.id)
            stored.cancel_at_period_end = True
            uow.plan_subscriptions.save(stored)
            uow.commit()
        with storage.uow() as uow:
            assert uow.plan_subscriptions.get(org.id, sub.id).cancel_at_period_end


class ProductSubscriptionRepositoryContract:
    def test_add_get_save_list(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        subs = [product_subscription(org.id, start=NOW + timedelta(hours=h)) for h in (3, 1, 2, 1)]
        with storage.uow() as uow:
            for sub in subs:
                uow.product_subscriptions.add(sub)
            with pytest.raises(Conflict):
                uow.product_subscriptions.add(subs[0])
            uow.commit()
        ordered = sorted(subs, key=lambda s: (s.start_date, str(s.id)))
        with storage.uow() as uow:
            assert uow.product_subscriptions.get(org.id, subs[0].id) == subs[0]
            page = uow.product_subscriptions.list(org.id, limit=3)
            assert page.items == ordered[:3] and page.next_cursor is not None
            rest = uow.product_subscriptions.list(org.id, limit=3, cursor=page.next_cursor)
            assert rest.items == ordered[3:] and rest.next_cursor is None
            ended = uow.product_subscriptions.get(org.id, subs[0].id)
            ended.end(NOW + timedelta(days=1))
            uow.product_subscriptions.save(ended)
            uow.commit()
        with storage.uow() as uow:
            assert uow.product_subscriptions.get(org.id, subs[0].id).end_date == NOW + timedelta(days=1)
            with pytest.raises(NotFound):
                uow.product_subscriptions.save(product_subscription(org.id))
            with pytest.raises(InvalidInput):
                uow.product_subscriptions.list(org.id, cursor="x")

    def test_active_for(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        project, other_project = uuid.uuid4(), uuid.uuid4()
        with storage.uow() as uow:
            uow.product_subscriptions.add(product_subscription(org.id, project_id=project, start=NOW,
                                                               end=NOW + timedelta(days=1)))
            uow.product_subscriptions.add(product_subscription(org.id, product_id=OTHER_PRODUCT, start=NOW))
            uow.commit()
        with storage.uow() as uow:
            active = uow.product_subscriptions.active_for
            assert active(org.id, project, PRODUCT, NOW)
            assert not active(org.id, project, PRODUCT, NOW - timedelta(microseconds=1))
            assert not active(org.id, project, PRODUCT, NOW + timedelta(days=1))
            assert not active(org.id, other_project, PRODUCT, NOW)
            assert not active(org.id, None, PRODUCT, NOW)
            # an organization-level subscription covers every project and none
            assert active(org.id, other_project, OTHER_PRODUCT, NOW + timedelta(days=400))
            assert active(org.id, None, OTHER_PRODUCT, NOW)

    def test_of_products_reads_what_active_for_decides(self, storage: StorageBackend) -> None:
        """``of_products`` gives every subscription to the products asked for (ended ones too, no other
        organization's), and ``covered`` over them answers what ``active_for`` answers, at any time."""
        org, other = new_org(storage), new_org(storage, name="Other")
        project, other_project = uuid.uuid4(), uuid.uuid4()
        third_product = uuid.UUID("33333333-3333-4333-8333-333333333333")
        mine = [product_subscription(org.id, project_id=project, start=NOW, end=NOW + timedelta(days=1)),
                product_subscription(org.id, start=NOW + timedelta(days=2), end=NOW + timedelta(days=3)),
                product_subscription(org.id, product_id=OTHER_PRODUCT, start=NOW - timedelta(days=5))]
        with storage.uow() as uow:
            for sub in [*mine, product_subscription(org.id, product_id=third_product),
                        product_subscription(other.id, start=NOW - timedelta(days=9))]:
                uow.product_subscriptions.add(sub)
            uow.commit()
        with storage.uow() as uow:
            found = uow.product_subscriptions.of_products(org.id, [PRODUCT, OTHER_PRODUCT])
            assert sorted(found, key=lambda s: str(s.id)) == sorted(mine, key=lambda s: str(s.id))
            assert uow.product_subscriptions.of_products(org.id, []) == []
            assert uow.product_subscriptions.of_products(uuid.uuid4(), [PRODUCT]) == []
            moments = [NOW + timedelta(days=d, microseconds=m) for d in (-6, -1, 0, 1, 2, 3) for m in (-1, 0)]
            for project_id in (None, project, other_project):
                for product_id in (PRODUCT, OTHER_PRODUCT):
                    for at in moments:
                        assert covered(found, project_id, product_id, at) == uow.product_subscriptions.active_for(
                            org.id, project_id, product_id, at), (project_id, product_id, at)


class UsageRepositoryContract:
    def test_record_once_per_event_id_and_bucket_per_hour(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        project = uuid.uuid4()
        with storage.uow() as uow:
            assert uow.usage.record(usage_event(org.id, "a", quantity=2))
            assert not uow.usage.record(usage_event(org.id, "a", quantity=50))
            assert uow.usage.record(usage_event(org.id, "b", quantity=3, at=NOW + timedelta(minutes=20)))
            assert uow.usage.record(usage_event(org.id, "c", quantity=1, at=NOW + timedelta(hours=1)))
            assert uow.usage.record(usage_event(org.id, "d", quantity=7, project_id=project))
            assert uow.usage.record(usage_event(org.id, "e", quantity=1, product_id=OTHER_PRODUCT))
            uow.commit()
        hour = NOW.replace(minute=0)
        with storage.uow() as uow:
            assert uow.usage.get_event(org.id, "a") == usage_event(org.id, "a", quantity=2)
            assert uow.usage.get_event(org.id, "zzz") is None
            buckets = uow.usage.buckets(org.id, hour, hour + timedelta(hours=1))
            got = {(b.project_id, b.product_id): (b.quantity, b.amount_micros) for b in buckets}
            assert got == {(None, PRODUCT): (5, 750), (project, PRODUCT): (7, 1050), (None, OTHER_PRODUCT): (1, 150)}
            assert all(b.hour == hour and b.invoice_id is None for b in buckets)
            later = uow.usage.buckets(org.id, hour + timedelta(hours=1), hour + timedelta(hours=2))
            assert [(b.quantity, b.hour) for b in later] == [(1, hour + timedelta(hours=1))]
            assert len(uow.usage.uninvoiced(org.id, FAR_FUTURE)) == 4

    def test_buckets_come_in_the_reference_order(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        # ids whose text starts with "9" and "a", around where the text "None" sorts
        edges = [uuid.UUID(int=(9 << 124) | 1), uuid.UUID(int=10 << 124)]
        projects = [uuid.uuid4() for _ in range(6)] + edges + [None]
        with storage.uow() as uow:
            for i, project in enumerate(projects):
                uow.usage.record(usage_event(org.id, f"e{i}", project_id=project))
                uow.usage.record(usage_event(org.id, f"l{i}", project_id=project, at=NOW - timedelta(hours=2)))
                uow.usage.record(usage_event(org.id, f"o{i}", project_id=project, product_id=OTHER_PRODUCT))
            uow.commit()
        with storage.uow() as uow:
            found = uow.usage.uninvoiced(org.id, FAR_FUTURE)
            for invoice_id in edges:  # invoiced twice over, so equal hours differ by invoice id
                uow.usage.mark_invoiced(org.id, FAR_FUTURE, invoice_id)
                for i, project in enumerate(projects):
                    uow.usage.record(usage_event(org.id, f"x{i}{invoice_id}", project_id=project))
            uow.commit()
        with storage.uow() as uow:
            window = uow.usage.buckets(org.id, NOW - timedelta(days=1), FAR_FUTURE)
        for buckets, count in ((found, 27), (window, 45)):
            keys = [(b.hour, str(b.project_id), str(b.product_id), str(b.invoice_id)) for b in buckets]
            assert keys == sorted(keys)
            assert len(keys) == count

    def test_invoicing_freezes_buckets_and_late_usage_opens_a_new_one(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        invoice_id = uuid.uuid4()
        hour = NOW.replace(minute=0)
        with storage.uow() as uow:
            uow.usage.record(usage_event(org.id, "a", quantity=2))
            uow.usage.record(usage_event(org.id, "b", quantity=1, at=NOW + timedelta(days=2)))
            uow.usage.record(usage_event(other.id, "a", quantity=1))
            assert sorted(uow.usage.organizations_with_uninvoiced(NOW + timedelta(days=1)), key=str) == sorted(
                [org.id, other.id], key=str)
            assert uow.usage.mark_invoiced(org.id, NOW + timedelta(days=1), invoice_id) == 1
            assert uow.usage.mark_invoiced(org.id, NOW + timedelta(days=1), uuid.uuid4()) == 0
            # late usage for the invoiced hour, including a refund of part of it
            assert uow.usage.record(usage_event(org.id, "late", quantity=4))
            assert uow.usage.record(usage_event(org.id, "a:refund", quantity=-2))
            uow.commit()
        with storage.uow() as uow:
            assert uow.usage.organizations_with_uninvoiced(NOW + timedelta(days=1)) == sorted(
                [org.id, other.id], key=str)
            assert uow.usage.organizations_with_uninvoiced(hour) == []
            in_hour = uow.usage.buckets(org.id, hour, hour + timedelta(hours=1))
            assert sorted((b.invoice_id is None, b.quantity, b.amount_micros) for b in in_hour) == [
                (False, 2, 300), (True, 2, 300)]
            assert [b.invoice_id for b in in_hour if b.invoice_id is not None] == [invoice_id]
            open_ = uow.usage.uninvoiced(org.id, NOW + timedelta(days=1))
            assert [(b.quantity, b.invoice_id) for b in open_] == [(2, None)]
            assert len(uow.usage.uninvoiced(org.id, FAR_FUTURE)) == 2

    def test_uninvoiced_bound_is_exclusive(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        hour = NOW.replace(minute=0)
        with storage.uow() as uow:
            uow.usage.record(usage_event(org.id, "a"))
            assert uow.usage.uninvoiced(org.id, hour) == []
            assert uow.usage.buckets(org.id, hour, hour) == []
            assert uow.usage.uninvoiced(org.id, hour + timedelta(microseconds=1)) == [HourlyUsage(
                organization_id=org.id, project_id=None, product_id=PRODUCT, hour=hour, quantity=2, amount_micros=300)]


class InvoiceRepositoryContract:
    def test_add_get_for_period_save(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        feb = datetime(2026, 2, 1, tzinfo=UTC)
        inv = invoice(org.id, feb, number="INV-000001")
        with storage.uow() as uow:
            uow.invoices.add(inv)
            uow.commit()
        with storage.uow() as uow:
            assert uow.invoices.get(org.id, inv.id) == inv
            assert uow.invoices.for_period(org.id, feb) == inv
            assert uow.invoices.for_period(org.id, feb + timedelta(days=31)) is None
            assert org.id in uow.invoices.organizations_for_period(feb)
            assert org.id not in uow.invoices.organizations_for_period(feb + timedelta(days=31))
            with pytest.raises(Conflict) as conflict:
                uow.invoices.add(invoice(org.id, feb))
            assert conflict.value.code == "duplicate_invoice"
            inv.move_to(InvoiceStatus.PAID, NOW)
            inv.hosted_invoice_url = "https://pay.example.test/i/1"
            inv.legal_document_id = "doc-1"
            uow.invoices.save(inv)
            uow.commit()
        with storage.uow() as uow:
            assert uow.invoices.get(org.id, inv.id) == inv
            with pytest.raises(NotFound):
                uow.invoices.get(org.id, uuid.uuid4())
            with pytest.raises(NotFound):
                uow.invoices.save(invoice(org.id, feb + timedelta(days=90)))

    def test_issued_einvoice_terms_are_kept_once(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        inv = invoice(org.id, datetime(2026, 2, 1, tzinfo=UTC), number="INV-000007")
        address = InvoiceAddress(company_name="Acme GmbH", address_1="Torstraße 1", city="Berlin",
                                 postal_code="10119", country="DE")
        terms = from_invoice(inv, organization=org, address=address, billing_email="ap@acme.test",
                             buyer_tax_id="DE123456789", seller=DEMO_SELLER)
        moved = from_invoice(inv, organization=org, address=msgspec.structs.replace(address, city="Hamburg"),
                             billing_email="ap@acme.test", buyer_tax_id=None, seller=DEMO_SELLER)
        with storage.uow() as uow:
            uow.invoices.add(inv)
            assert uow.invoices.issued_einvoice(org.id, inv.id) is None
            assert uow.invoices.record_einvoice(org.id, inv.id, terms)
            assert not uow.invoices.record_einvoice(org.id, inv.id, moved)  # the first issue stands
            with pytest.raises(NotFound):
                uow.invoices.record_einvoice(org.id, uuid.uuid4(), terms)
            uow.commit()
        other = new_org(storage, name="Other")
        with storage.uow() as uow:
            assert uow.invoices.issued_einvoice(org.id, inv.id) == terms  # every term, exactly
            assert uow.invoices.issued_einvoice(other.id, inv.id) is None
            with pytest.raises(NotFound):
                uow.invoices.record_einvoice(other.id, inv.id, terms)

    def test_list_newest_period_first(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        invoices = [invoice(org.id, datetime(2025, month, 1, tzinfo=UTC)) for month in (3, 1, 7, 5)]
        with storage.uow() as uow:
            for inv in invoices:
                uow.invoices.add(inv)
            uow.commit()
        with storage.uow() as uow:
            page = uow.invoices.list(org.id, limit=3)
            rest = uow.invoices.list(org.id, limit=3, cursor=page.next_cursor)
        assert [i.period_start.month for i in page.items + rest.items] == [7, 5, 3, 1]
        assert rest.next_cursor is None

    def test_numbers_are_gapless_per_prefix_and_rolled_back_with_the_unit_of_work(
            self, storage: StorageBackend) -> None:
        with storage.uow() as uow:
            assert uow.invoices.next_number("INV-") == "INV-000001"
            assert uow.invoices.next_number("INV-") == "INV-000002"
            assert uow.invoices.next_number("CN-") == "CN-000001"
            uow.commit()
        with storage.uow() as uow:
            assert uow.invoices.next_number("INV-") == "INV-000003"
        with storage.uow() as uow:
            assert uow.invoices.next_number("INV-") == "INV-000003"
            uow.commit()


class PaymentMethodRepositoryContract:
    def test_default_first_then_newest(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        old = payment_method(org.id, "pm_old", created_at=NOW - timedelta(days=2))
        new = payment_method(org.id, "pm_new", created_at=NOW)
        default = payment_method(org.id, "pm_default", default=True, created_at=NOW - timedelta(days=9))
        undated = payment_method(org.id, "pm_undated", created_at=None)
        with storage.uow() as uow:
            for method in (old, undated, default, new):
                uow.payment_methods.add(method)
            uow.commit()
        with storage.uow() as uow:
            assert uow.payment_methods.list(org.id) == [default, new, old, undated]
            assert uow.payment_methods.get(org.id, new.id) == new
            assert uow.payment_methods.by_provider_id(org.id, "pm_old") == old
            assert uow.payment_methods.by_provider_id(org.id, "pm_nope") is None

    def test_add_save_remove(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        method = payment_method(org.id, "pm_1")
        with storage.uow() as uow:
            uow.payment_methods.add(method)
            with pytest.raises(Conflict):
                uow.payment_methods.add(payment_method(org.id, "pm_1"))
            method.default = True
            uow.payment_methods.save(method)
            uow.commit()
        with storage.uow() as uow:
            assert uow.payment_methods.get(org.id, method.id).default
            uow.payment_methods.remove(org.id, method.id)
            with pytest.raises(NotFound):
                uow.payment_methods.remove(org.id, method.id)
            with pytest.raises(NotFound):
                uow.payment_methods.save(method)
            uow.commit()
        with storage.uow() as uow:
            assert uow.payment_methods.list(org.id) == []


class SettingsRepositoryContract:
    def test_defaults_then_versioned_saves(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            settings = uow.settings.get(org.id)
            assert settings == BillingSettings(organization_id=org.id)
            settings.billing_email = "billing@acme.test"
            settings.address = InvoiceAddress(company_name="Acme", address_1="Main St 1", city="Berlin",
                                              postal_code="10115", country="DE", po_number="PO-7")
            settings.auto_recharge = AutoRecharge(enabled=True, threshold_micros=1, amount_micros=2,
                                                  payment_method_id=uuid.uuid4(), consecutive_failures=2,
                                                  paused_at=NOW)
            settings.spend_management = SpendManagement(enabled=True, daily_budget_micros=5,
                                                        daily_email_threshold_micros=4, monthly_cap_micros=100,
                                                        webhook_url="https://hooks.acme.test/x")
            settings.low_balance_alert = LowBalanceAlert(enabled=True, threshold_micros=3)
            uow.settings.save(settings)
            assert settings.version == 1
            uow.commit()
        with storage.uow() as uow:
            stored = uow.settings.get(org.id)
            assert stored == settings
            stale = uow.settings.get(org.id)
            stored.billing_email = "new@acme.test"
            uow.settings.save(stored)
            assert stored.version == 2
            with pytest.raises(Conflict):
                uow.settings.save(stale)
            uow.commit()
        with storage.uow() as uow:
            assert uow.settings.get(org.id).billing_email == "new@acme.test"

    def test_tax_registrations(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        second = tax_registration(org.id, "DE999999999", created_at=NOW + timedelta(minutes=1))
        first = tax_registration(org.id)
        with storage.uow() as uow:
            uow.settings.add_tax_registration(second)
            uow.settings.add_tax_registration(first)
            with pytest.raises(Conflict) as conflict:
                uow.settings.add_tax_registration(tax_registration(org.id))
            assert conflict.value.code == "duplicate_tax_registration"
            uow.commit()
        with storage.uow() as uow:
            assert uow.settings.tax_registrations(org.id) == [first, second]
            first.status = TaxRegistrationStatus.VERIFIED
            first.verified_at = NOW
            uow.settings.save_tax_registration(first)
            uow.settings.remove_tax_registration(org.id, second.id)
            with pytest.raises(NotFound):
                uow.settings.remove_tax_registration(org.id, second.id)
            with pytest.raises(NotFound):
                uow.settings.save_tax_registration(second)
            uow.commit()
        with storage.uow() as uow:
            assert uow.settings.get_tax_registration(org.id, first.id) == first
            assert uow.settings.tax_registrations(org.id) == [first]
            with pytest.raises(NotFound):
                uow.settings.get_tax_registration(org.id, second.id)


class PaymentRepositoryContract:
    def test_add_get_save_by_provider_and_list(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        payments = [payment(org.id, created_at=NOW + timedelta(minutes=m), provider_id=f"pi_{m}") for m in (2, 0, 1)]
        with storage.uow() as uow:
            for p in payments:
                uow.payments.add(p)
            with pytest.raises(Conflict):
                uow.payments.add(payments[0])
            uow.commit()
        with storage.uow() as uow:
            assert uow.payments.get(org.id, payments[0].id) == payments[0]
            assert uow.payments.by_provider_id("pi_1") == payments[2]
            assert uow.payments.by_provider_id("pi_x") is None
            page = uow.payments.list(org.id, limit=2)
            rest = uow.payments.list(org.id, limit=2, cursor=page.next_cursor)
            assert [p.provider_payment_id for p in page.items + rest.items] == ["pi_2", "pi_1", "pi_0"]
            paid = payments[1]
            paid.move_to(PaymentStatus.SUCCEEDED)
            paid.settled_at = NOW
            paid.refunded_cents = 100
            uow.payments.save(paid)
            uow.commit()
        with storage.uow() as uow:
            assert uow.payments.get(org.id, paid.id) == paid
            with pytest.raises(NotFound):
                uow.payments.save(payment(org.id))


class RefundRepositoryContract:
    def test_add_and_list_newest_first(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        pay = payment(org.id)
        requests = [refund_request(org.id, pay.id, created_at=NOW + timedelta(hours=h)) for h in (0, 2, 1)]
        with storage.uow() as uow:
            for request in requests:
                uow.refunds.add(request)
            uow.commit()
        with storage.uow() as uow:
            assert uow.refunds.list(org.id) == [requests[1], requests[2], requests[0]]


class CheckoutRepositoryContract:
    def test_add_get_save_and_guest_claims(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        guest = checkout(None, guest_email="Guest@Example.test", status=CheckoutStatus.COMPLETE, provider_id="cs_1")
        open_guest = checkout(None, guest_email="guest@example.test")
        older = checkout(None, guest_email="GUEST@example.test", status=CheckoutStatus.COMPLETE,
                         created_at=NOW - timedelta(hours=1))
        owned = checkout(org.id, provider_id="cs_2")
        with storage.uow() as uow:
            for session in (guest, open_guest, older, owned):
                uow.checkouts.add(session)
            with pytest.raises(Conflict):
                uow.checkouts.add(owned)
            uow.commit()
        with storage.uow() as uow:
            assert uow.checkouts.get(guest.id) == guest
            assert uow.checkouts.by_provider_id("cs_2") == owned
            assert uow.checkouts.by_provider_id("cs_x") is None
            assert uow.checkouts.unclaimed_guest("guest@EXAMPLE.test") == [older, guest]
            older.claimed_at = NOW
            older.organization_id = org.id
            uow.checkouts.save(older)
            uow.commit()
        with storage.uow() as uow:
            assert uow.checkouts.get(older.id) == older
            assert uow.checkouts.unclaimed_guest("guest@example.test") == [guest]
            with pytest.raises(NotFound):
                uow.checkouts.get(uuid.uuid4())
            with pytest.raises(NotFound):
                uow.checkouts.save(checkout(org.id))


class OutboxRepositoryContract:
    def test_dedupe_due_save_list(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        first = outbox_message(org.id, "k1", created_at=NOW - timedelta(minutes=2))
        second = outbox_message(org.id, "k2", created_at=NOW - timedelta(minutes=1))
        later = outbox_message(org.id, "k3", created_at=NOW)
        later.next_attempt_at = NOW + timedelta(minutes=5)
        unscheduled = outbox_message(org.id, "k4", created_at=NOW + timedelta(seconds=1))
        unscheduled.next_attempt_at = None
        with storage.uow() as uow:
            for message in (second, first, later, unscheduled):
                assert uow.outbox.add(message)
            assert not uow.outbox.add(outbox_message(org.id, "k1"))
            uow.commit()
        with storage.uow() as uow:
            due = uow.outbox.due(NOW)
            assert due == [first, second, unscheduled]
            assert uow.outbox.due(NOW, limit=1) == [first]
            first.status = OutboxStatus.SENT
            first.sent_at = NOW
            first.attempts = 1
            uow.outbox.save(first)
            second.attempts = 1
            second.last_error = "timeout"
            second.next_attempt_at = NOW + timedelta(minutes=1)
            uow.outbox.save(second)
            uow.commit()
        with storage.uow() as uow:
            assert uow.outbox.due(NOW) == [unscheduled]
            assert uow.outbox.due(NOW + timedelta(minutes=5)) == [second, later, unscheduled]
            assert uow.outbox.list(status=OutboxStatus.SENT) == [first]
            assert uow.outbox.list(organization_id=org.id, limit=2) == [first, second]
            assert uow.outbox.list(organization_id=uuid.uuid4()) == []
            with pytest.raises(NotFound):
                uow.outbox.save(outbox_message(org.id, "never-added"))

    def test_save_claimed_writes_only_while_the_claim_stands(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        message = outbox_message(org.id, "claimed", created_at=NOW)
        claim = NOW + timedelta(seconds=30)
        message.next_attempt_at = claim
        with storage.uow() as uow:
            uow.outbox.add(message)
            uow.commit()
        stale = msgspec.structs.replace(message, status=OutboxStatus.SENT, attempts=1, sent_at=NOW)
        with storage.uow() as uow:
            # Another dispatcher's claim (a later lease end) stands: this one's outcome is not written.
            assert not uow.outbox.save_claimed(stale, NOW + timedelta(seconds=29))
            retry = msgspec.structs.replace(message, attempts=1, last_error="timeout",
                                            next_attempt_at=NOW + timedelta(minutes=1))
            assert uow.outbox.save_claimed(retry, claim)
            # Written once: the claim is gone with it.
            assert not uow.outbox.save_claimed(stale, claim)
            assert not uow.outbox.save_claimed(outbox_message(org.id, "never-added"), claim)
            uow.commit()
        with storage.uow() as uow:
            assert uow.outbox.list(organization_id=org.id) == [retry]

    def test_requeue_makes_a_dead_letter_due_once(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        dead = outbox_message(org.id, "dead", created_at=NOW - timedelta(days=4))
        dead.status, dead.attempts, dead.last_error = OutboxStatus.DEAD, 9, "smtp refused"
        dead.next_attempt_at = NOW - timedelta(days=1)
        alive = outbox_message(org.id, "alive", created_at=NOW)
        alive.next_attempt_at = NOW + timedelta(hours=1)
        with storage.uow() as uow:
            uow.outbox.add(dead)
            uow.outbox.add(alive)
            uow.commit()
        later = NOW + timedelta(minutes=3)
        with storage.uow() as uow:
            assert uow.outbox.requeue(dead.id, later)
            # Only a dead message comes back: not twice, not a pending one, not an unknown id.
            assert not uow.outbox.requeue(dead.id, later)
            assert not uow.outbox.requeue(alive.id, later)
            assert not uow.outbox.requeue(uuid.uuid4(), later)
            uow.commit()
        with storage.uow() as uow:
            [back] = uow.outbox.due(later)
            assert (back.id, back.status, back.next_attempt_at) == (dead.id, OutboxStatus.PENDING, later)
            assert (back.attempts, back.last_error) == (9, "smtp refused")
            assert uow.outbox.depth().dead == 0

    def test_payload_round_trips(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        message = outbox_message(org.id, "k")
        message.payload = {"text": "Grüße ✓", "amount_micros": 10**15, "list": [1, "a", None], "flag": False,
                           "nested": {"deep": {"x": 1}}}
        with storage.uow() as uow:
            uow.outbox.add(message)
            uow.commit()
        with storage.uow() as uow:
            assert uow.outbox.list(organization_id=org.id) == [message]

    def test_depth_counts_pending_and_dead_across_organizations(self, storage: StorageBackend) -> None:
        with storage.uow() as uow:
            assert uow.outbox.depth() == OutboxDepth(pending=0, oldest_pending_at=None, dead=0)
        one, two = new_org(storage), new_org(storage, name="Other")
        oldest = outbox_message(one.id, "d1", created_at=NOW - timedelta(hours=3))
        newer = outbox_message(two.id, "d2", created_at=NOW - timedelta(hours=1))
        sent = outbox_message(one.id, "d3", created_at=NOW - timedelta(days=1))
        sent.status = OutboxStatus.SENT
        dead = outbox_message(two.id, "d4", created_at=NOW - timedelta(days=2))
        dead.status = OutboxStatus.DEAD
        with storage.uow() as uow:
            for message in (newer, oldest, sent, dead):
                uow.outbox.add(message)
            uow.commit()
        with storage.uow() as uow:
            assert uow.outbox.depth() == OutboxDepth(pending=2, oldest_pending_at=NOW - timedelta(hours=3), dead=1)


class InboxRepositoryContract:
    def test_remember_once(self, storage: StorageBackend) -> None:
        with storage.uow() as uow:
            assert not uow.inbox.seen("stripe", "evt_1")
            assert uow.inbox.remember("stripe", "evt_1", NOW)
            assert uow.inbox.seen("stripe", "evt_1")
            assert not uow.inbox.remember("stripe", "evt_1", NOW)
            assert uow.inbox.remember("easybill", "evt_1", NOW)
            uow.commit()
        with storage.uow() as uow:
            assert uow.inbox.seen("stripe", "evt_1") and uow.inbox.seen("easybill", "evt_1")
            assert not uow.inbox.seen("stripe", "evt_2")
            assert not uow.inbox.remember("stripe", "evt_1", NOW + timedelta(days=1))

    def test_a_rolled_back_remember_is_forgotten(self, storage: StorageBackend) -> None:
        with storage.uow() as uow:
            assert uow.inbox.remember("stripe", "evt_rolled_back", NOW)
            uow.rollback()
        with storage.uow() as uow:
            assert not uow.inbox.seen("stripe", "evt_rolled_back")


class IdempotencyRepositoryContract:
    def test_first_response_wins(self, storage: StorageBackend) -> None:
        response = StoredResponse(scope="org:1:POST /credits", key="idem-1", request_hash="abc", status_code=201,
                                  body=b'{"ok":true}\x00\xff', content_type="application/json", created_at=NOW)
        with storage.uow() as uow:
            assert uow.idempotency.get(response.scope, response.key) is None
            assert uow.idempotency.put(response)
            assert not uow.idempotency.put(msgspec.structs.replace(response, status_code=500))
            uow.commit()
        with storage.uow() as uow:
            assert uow.idempotency.get(response.scope, response.key) == response
            assert uow.idempotency.get(response.scope, "other") is None

    def test_a_claim_is_completed_or_released_only_by_its_owner(self, storage: StorageBackend) -> None:
        claimed_at = NOW + timedelta(microseconds=123_457)
        claim = StoredResponse(scope="org:1:POST /credits", key="idem-2", request_hash="abc",
                               status_code=IDEMPOTENCY_IN_PROGRESS, body=b"", content_type="", created_at=claimed_at)
        answer = msgspec.structs.replace(claim, status_code=201, body=b"{}", content_type="application/json",
                                         created_at=NOW + timedelta(seconds=1))
        with storage.uow() as uow:
            assert uow.idempotency.put(claim)
            uow.commit()
        with storage.uow() as uow:
            found = uow.idempotency.get(claim.scope, claim.key)
            assert found is not None and found.in_progress
            assert not uow.idempotency.put(claim), "a claimed key is not claimed twice"
            assert not uow.idempotency.complete(answer, claimed_at=NOW), "another claim's answer is not stored"
            assert not uow.idempotency.complete(msgspec.structs.replace(answer, request_hash="other"),
                                                claimed_at=claimed_at)
            assert not uow.idempotency.release(claim.scope, claim.key, claimed_at=NOW)
            assert uow.idempotency.complete(answer, claimed_at=claimed_at)
            uow.commit()
        with storage.uow() as uow:
            assert uow.idempotency.get(claim.scope, claim.key) == answer
            assert not uow.idempotency.release(claim.scope, claim.key, claimed_at=claimed_at), \
                "a finished answer is never released"
            assert not uow.idempotency.complete(answer, claimed_at=claimed_at)
            assert uow.idempotency.put(msgspec.structs.replace(claim, key="idem-3"))
            assert uow.idempotency.release(claim.scope, "idem-3", claimed_at=claimed_at)
            uow.commit()
        with storage.uow() as uow:
            assert uow.idempotency.get(claim.scope, "idem-3") is None


class UsageTotalsContract:
    def test_totals_sum_open_buckets_per_project_and_product(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        project = uuid.uuid4()
        early = NOW - timedelta(hours=5)
        with storage.uow() as uow:
            uow.usage.record(usage_event(org.id, "a", quantity=2))
            uow.usage.record(usage_event(org.id, "b", quantity=3, at=early))
            uow.usage.record(usage_event(org.id, "c", quantity=1, project_id=project))
            uow.usage.record(usage_event(org.id, "d", quantity=7, at=NOW + timedelta(days=3)))
            uow.commit()
        with storage.uow() as uow:
            totals = uow.usage.uninvoiced_totals(org.id, NOW + timedelta(days=1))
            by_project = {t.project_id: t for t in totals}
            assert set(by_project) == {None, project}
            assert (by_project[None].quantity, by_project[None].hour) == (5, early.replace(minute=0))
            assert by_project[None].amount_micros == sum(
                b.amount_micros for b in uow.usage.uninvoiced(org.id, NOW + timedelta(days=1)) if b.project_id is None)
            assert by_project[project].quantity == 1
            assert uow.usage.uninvoiced_totals(org.id, early.replace(minute=0)) == []
            uow.usage.mark_invoiced(org.id, NOW + timedelta(days=1), uuid.uuid4())
            assert [t.quantity for t in uow.usage.uninvoiced_totals(org.id, FAR_FUTURE)] == [7]

    def test_put_on_invoice_marks_and_returns_exactly_the_open_buckets(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        project = uuid.uuid4()
        early, end = NOW - timedelta(hours=5), NOW + timedelta(days=1)
        invoice_id, later_invoice = uuid.uuid4(), uuid.uuid4()
        with storage.uow() as uow:
            uow.usage.record(usage_event(org.id, "a", quantity=2))
            uow.usage.record(usage_event(org.id, "b", quantity=3, at=early))
            uow.usage.record(usage_event(org.id, "c", quantity=1, project_id=project))
            uow.usage.record(usage_event(org.id, "d", quantity=7, at=NOW + timedelta(days=3)))
            uow.usage.record(usage_event(other.id, "a", quantity=9))
            uow.commit()
        with storage.uow() as uow:
            expected = uow.usage.uninvoiced_totals(org.id, end)
            marked = uow.usage.put_on_invoice(org.id, end, invoice_id)
            assert marked == [msgspec.structs.replace(t, invoice_id=invoice_id) for t in expected]
            assert uow.usage.put_on_invoice(org.id, end, uuid.uuid4()) == []  # nothing left to mark
            # late usage for an invoiced hour opens a new bucket for the next invoice
            uow.usage.record(usage_event(org.id, "late", quantity=4))
            uow.commit()
        with storage.uow() as uow:
            window = uow.usage.buckets(org.id, early.replace(minute=0), end)
            assert [b.invoice_id for b in window].count(invoice_id) == 3
            assert [(b.quantity, b.invoice_id) for b in uow.usage.uninvoiced(org.id, end)] == [(4, None)]
            assert [t.quantity for t in uow.usage.uninvoiced_totals(other.id, end)] == [9]
            later = uow.usage.put_on_invoice(org.id, FAR_FUTURE, later_invoice)
            assert [(t.quantity, t.hour, t.invoice_id) for t in later] == [(11, NOW.replace(minute=0), later_invoice)]
            totals = uow.usage.invoiced_totals(org.id)
            assert totals == sorted([*marked, *later], key=lambda t: (str(t.invoice_id), str(t.project_id),
                                                                      str(t.product_id)))
            assert uow.usage.invoiced_totals(other.id) == []


class PaymentByReferenceContract:
    def test_a_payment_is_found_by_our_id_across_organizations(self, storage: StorageBackend) -> None:
        from billing_core.payments import Payment, PaymentPurpose, PaymentStatus

        org = new_org(storage)
        payment = Payment(id=uuid.uuid4(), organization_id=org.id, purpose=PaymentPurpose.ADD_CREDITS,
                          amount_cents=500, currency_iso="USD", credits_micros=5_000_000,
                          status=PaymentStatus.PENDING, created_at=NOW)
        with storage.uow() as uow:
            uow.payments.add(payment)
            uow.commit()
        with storage.uow() as uow:
            found = uow.payments.by_reference(payment.id)
            assert found is not None
            assert (found.id, found.organization_id, found.amount_cents) == (payment.id, org.id, 500)
            assert uow.payments.by_reference(uuid.uuid4()) is None
