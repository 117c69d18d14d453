"""Contracts of the recorded money intents (ADR 0009) on every backend: refund requests complete
once, payments save only at the version they were loaded at and are never refunded above their
amount, and a subscription version has at most one plan change."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
import pytest

from adapters.testing.builders import NOW, new_org, payment, plan_subscription, refund_request
from adapters.testing.storage import StorageBackend
from billing_core.catalog import load_catalog
from billing_core.errors import Conflict, InvalidInput, NotFound
from billing_core.plan_change import PlanChange, PlanChangeStatus, preview_change, record_change
from billing_core.plan_subscription import PlanSubscription
from billing_core.refund_policy import RefundStatus


class PaymentSaveIsConditionalContract:
    def test_a_stale_copy_is_refused_and_changes_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        paid = payment(org.id)
        with storage.uow() as uow:
            uow.payments.add(paid)
            uow.commit()
        with storage.uow() as uow:
            first, second = uow.payments.get(org.id, paid.id), uow.payments.get(org.id, paid.id)
            first.refunded_cents = 1000
            uow.payments.save(first)
            assert first.version == 1
            second.refunded_cents = 2000
            with pytest.raises(Conflict) as raised:
                uow.payments.save(second)
            assert raised.value.code == "concurrent_update"
            uow.commit()
        with storage.uow() as uow:
            stored = uow.payments.get(org.id, paid.id)
            assert (stored.refunded_cents, stored.version) == (1000, 1)

    @pytest.mark.parametrize("refunded", [-1, 2501])
    def test_refunded_stays_within_the_amount(self, storage: StorageBackend, refunded: int) -> None:
        org = new_org(storage)
        paid = payment(org.id)
        with storage.uow() as uow:
            uow.payments.add(paid)
            uow.commit()
        with storage.uow() as uow:
            stored = uow.payments.get(org.id, paid.id)
            stored.refunded_cents = refunded
            with pytest.raises(InvalidInput) as raised:
                uow.payments.save(stored)
            assert raised.value.code == "constraint_violation"
        with storage.uow() as uow:
            assert uow.payments.get(org.id, paid.id).refunded_cents == 0


class RefundRequestsCompleteOnceContract:
    def test_get_and_complete_only_while_pending(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        request = refund_request(org.id, uuid.uuid4())
        assert request.status == RefundStatus.PENDING
        with storage.uow() as uow:
            uow.refunds.add(request)
            uow.commit()
        done = msgspec.structs.replace(request, status=RefundStatus.SUCCEEDED, provider_refund_id="re_1",
                                       completed_at=NOW + timedelta(seconds=1))
        failed = msgspec.structs.replace(request, status=RefundStatus.FAILED, failure_message="no",
                                         completed_at=NOW + timedelta(seconds=2))
        with storage.uow() as uow:
            assert uow.refunds.get(org.id, request.id) == request
            assert uow.refunds.complete(done) is True
            assert uow.refunds.complete(failed) is False
            uow.commit()
        other = new_org(storage).id
        with storage.uow() as uow:
            assert uow.refunds.get(org.id, request.id) == done
            assert uow.refunds.list(org.id) == [done]
            with pytest.raises(NotFound):
                uow.refunds.get(other, request.id)
            with pytest.raises(NotFound):
                uow.refunds.complete(msgspec.structs.replace(done, id=uuid.uuid4()))

    def test_a_completion_rolled_back_leaves_it_pending(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        request = refund_request(org.id, uuid.uuid4())
        with storage.uow() as uow:
            uow.refunds.add(request)
            uow.commit()
        with storage.uow() as uow:
            assert uow.refunds.complete(msgspec.structs.replace(request, status=RefundStatus.SUCCEEDED))
        with storage.uow() as uow:
            assert uow.refunds.get(org.id, request.id).status == RefundStatus.PENDING


    def test_pending_lists_the_old_pending_requests_of_every_organization(self, storage: StorageBackend) -> None:
        """What the sweeper reads: PENDING requests recorded before a time, oldest first, across
        organizations (dated years back, so that other tests' rows sort after them)."""
        long_ago = NOW - timedelta(days=3 * 365)
        first, second = new_org(storage), new_org(storage)
        requests = [refund_request(org.id, uuid.uuid4(), created_at=long_ago + timedelta(minutes=n))
                    for n, org in enumerate((first, second, first, second))]
        with storage.uow() as uow:
            for request in requests:
                uow.refunds.add(request)
            uow.refunds.complete(msgspec.structs.replace(requests[2], status=RefundStatus.SUCCEEDED,
                                                         completed_at=NOW))
            uow.commit()
        with storage.uow() as uow:
            assert uow.refunds.pending(long_ago + timedelta(minutes=10), limit=2) == requests[:2]
            assert uow.refunds.pending(long_ago + timedelta(minutes=10), limit=10)[:3] == [
                requests[0], requests[1], requests[3]]
            assert uow.refunds.pending(long_ago + timedelta(minutes=1)) == requests[:1]
            assert uow.refunds.pending(long_ago) == []


def _change(sub: PlanSubscription, *, to: str = "scale", invoice_due: bool = True) -> PlanChange:
    catalog = load_catalog()
    preview = preview_change(sub, catalog.plan(sub.plan), catalog.plan(to), at=NOW, currency_iso="USD")
    return record_change(change_id=uuid.uuid4(), subscription=sub, preview=preview, invoice_due=invoice_due, now=NOW)


class PlanChangeRepositoryContract:
    def _subscription(self, storage: StorageBackend) -> PlanSubscription:
        org = new_org(storage)
        sub = plan_subscription(org.id)
        with storage.uow() as uow:
            uow.plan_subscriptions.add(sub)
            uow.commit()
        return sub

    def test_one_change_per_subscription_version(self, storage: StorageBackend) -> None:
        sub = self._subscription(storage)
        change = _change(sub)
        with storage.uow() as uow:
            uow.plan_changes.add(change)
            with pytest.raises(Conflict) as raised:
                uow.plan_changes.add(_change(sub, to="starter"))
            assert raised.value.code == "plan_change_exists"
            uow.commit()
        sub.version = 1
        later = _change(sub, to="starter", invoice_due=False)
        with storage.uow() as uow:
            uow.plan_changes.add(later)
            uow.commit()
        other = new_org(storage).id
        with storage.uow() as uow:
            assert uow.plan_changes.get(sub.organization_id, change.id) == change
            assert uow.plan_changes.for_version(sub.organization_id, sub.id, 0) == change
            assert uow.plan_changes.for_version(sub.organization_id, sub.id, 2) is None
            assert uow.plan_changes.latest(sub.organization_id, sub.id) == later
            assert uow.plan_changes.latest(sub.organization_id, uuid.uuid4()) is None
            assert uow.plan_changes.list(sub.organization_id) == [change, later]
            assert later.status == PlanChangeStatus.NOT_INVOICED
            assert uow.plan_changes.list(other) == []
            assert uow.plan_changes.for_version(other, sub.id, 0) is None
            with pytest.raises(NotFound):
                uow.plan_changes.get(other, change.id)

    def test_the_invoice_is_recorded_once(self, storage: StorageBackend) -> None:
        sub = self._subscription(storage)
        change = _change(sub)
        assert change.status == PlanChangeStatus.PENDING
        with storage.uow() as uow:
            uow.plan_changes.add(change)
            uow.commit()
        first = msgspec.structs.replace(change, status=PlanChangeStatus.INVOICED, provider_invoice_id="in_1",
                                        hosted_invoice_url="https://x.test/in_1", invoice_status="open",
                                        completed_at=NOW + timedelta(seconds=1))
        second = msgspec.structs.replace(first, provider_invoice_id="in_2")
        with storage.uow() as uow:
            assert uow.plan_changes.record_invoice(first) is True
            assert uow.plan_changes.record_invoice(second) is False
            uow.commit()
        with storage.uow() as uow:
            assert uow.plan_changes.get(sub.organization_id, change.id) == first
            with pytest.raises(NotFound):
                uow.plan_changes.record_invoice(msgspec.structs.replace(first, id=uuid.uuid4()))

    def test_pending_lists_the_old_changes_still_waiting_for_their_invoice(self, storage: StorageBackend) -> None:
        long_ago = NOW - timedelta(days=3 * 365)
        changes = []
        for n in range(3):
            sub = self._subscription(storage)
            changes.append(msgspec.structs.replace(_change(sub, invoice_due=n != 1),
                                                   created_at=long_ago + timedelta(minutes=n)))
        with storage.uow() as uow:
            for change in changes:
                uow.plan_changes.add(change)
            uow.commit()
        with storage.uow() as uow:
            # The second needs no invoice: never pending.
            assert uow.plan_changes.pending(long_ago + timedelta(minutes=10), limit=2) == [changes[0], changes[2]]
            assert uow.plan_changes.pending(long_ago + timedelta(minutes=1)) == [changes[0]]
            assert uow.plan_changes.record_invoice(msgspec.structs.replace(
                changes[0], status=PlanChangeStatus.INVOICED, provider_invoice_id="in_1", completed_at=NOW))
            assert uow.plan_changes.pending(long_ago + timedelta(minutes=10), limit=1) == [changes[2]]
