"""Contract of the live usage path's two storage steps (ADR 0010):
:meth:`~billing_core.ports.UsageRepository.lock_for_event` reads under the wallet lock exactly what
the separate reads would give, and :meth:`~billing_core.ports.UsageRepository.record_debit` stores
exactly what ``WalletRepository.debit`` followed by ``UsageRepository.record`` stores, or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from adapters.testing.builders import NOW, OTHER_PRODUCT, PRODUCT, fund, new_org, product_subscription, usage_event
from adapters.testing.storage import StorageBackend
from billing_core.billing_settings import (
    AutoRecharge,
    BillingSettings,
    InvoiceAddress,
    LowBalanceAlert,
    SpendManagement,
)
from billing_core.errors import ConcurrentUpdate, Conflict, NotFound
from billing_core.ledger import Account, EntryKind, LedgerTransaction, transfer
from billing_core.ports import DebitChunk
from billing_core.spend_guard import DebitRequest, DebitSequence, decide_and_apply, decide_many
from billing_core.usage import UsageEvent
from billing_core.wallet import WalletAccount


def _tx_for(event: UsageEvent, key: str | None = None) -> LedgerTransaction:
    return transfer(organization_id=event.organization_id, idempotency_key=key or f"usage:{event.event_id}",
                    kind=EntryKind.USAGE, description="usage", created_at=NOW, source=Account.UNBILLED_USAGE,
                    target=Account.REVENUE, amount_micros=event.amount_micros, reference=event.event_id)


class UsageDebitContract:
    def test_the_locked_read_is_what_the_separate_reads_give(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        project = uuid.uuid4()
        settings = BillingSettings(
            organization_id=org.id, billing_email="billing@acme.test",
            address=InvoiceAddress(company_name="Acme", address_1="Main 1", city="Berlin", postal_code="10115",
                                   country="DE"),
            auto_recharge=AutoRecharge(enabled=True, threshold_micros=7, amount_micros=9,
                                       payment_method_id=uuid.uuid4(), consecutive_failures=2, paused_at=NOW),
            spend_management=SpendManagement(enabled=True, daily_budget_micros=11, daily_email_threshold_micros=3,
                                             monthly_cap_micros=13, webhook_url="https://hooks.acme.test/x"),
            low_balance_alert=LowBalanceAlert(enabled=True, threshold_micros=17), hold_overrun="reject")
        with storage.uow() as uow:
            uow.settings.save(settings)
            uow.product_subscriptions.add(product_subscription(org.id, project_id=project,
                                                               end=NOW + timedelta(days=1)))
            uow.usage.record(usage_event(org.id, "seen"))
            uow.commit()
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, "seen", project, PRODUCT, NOW)
            assert seen.wallet == uow.wallets.get(org.id)
            assert seen.settings == uow.settings.get(org.id)
            assert seen.subscribed and seen.event_stored
            later, earlier = NOW + timedelta(days=1), NOW - timedelta(seconds=1)
            for project_id, product_id, at in ((None, PRODUCT, NOW), (project, OTHER_PRODUCT, NOW),
                                               (uuid.uuid4(), PRODUCT, NOW), (project, PRODUCT, later),
                                               (project, PRODUCT, earlier)):
                other = uow.usage.lock_for_event(org.id, "new", project_id, product_id, at)
                assert other.subscribed == uow.product_subscriptions.active_for(org.id, project_id, product_id, at)
                assert not other.subscribed and not other.event_stored

    def test_without_stored_settings_the_read_gives_the_defaults(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            uow.product_subscriptions.add(product_subscription(org.id))
            uow.commit()
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, "e", uuid.uuid4(), PRODUCT, NOW)
        assert seen.settings == BillingSettings(organization_id=org.id)
        assert seen.subscribed and not seen.event_stored

    def test_the_read_of_an_unknown_wallet_is_not_found(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        with storage.uow() as uow, pytest.raises(NotFound):
            uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW)

    def test_the_write_stores_what_debit_and_record_store(self, storage: StorageBackend) -> None:
        orgs = [new_org(storage), new_org(storage)]
        for org in orgs:
            fund(storage, org.id, 5_000)
        events = [usage_event(org.id, "e-1", quantity=3) for org in orgs]
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(orgs[0].id, "e-1", None, PRODUCT, NOW)
            wallet, version = seen.wallet, seen.wallet.version
            decision, stored = decide_and_apply(wallet, events[0].amount_micros, NOW, _tx_for(events[0]))
            assert decision.allowed and stored is not None
            assert uow.usage.record_debit(events[0], stored, wallet, version)
            uow.commit()
        with storage.uow() as uow:
            outcome = uow.wallets.debit(orgs[1].id, events[1].amount_micros, NOW, _tx_for(events[1]))
            assert uow.usage.record(events[1])
            uow.commit()
        assert outcome.transaction is not None
        with storage.uow() as uow:
            one, other = (uow.wallets.get(org.id) for org in orgs)
            assert msgspec.structs.replace(one, organization_id=other.organization_id) == other
            assert one == wallet
            first = uow.ledger.get_by_key(orgs[0].id, "usage:e-1")
            assert first == stored
            assert first is not None and first.postings == outcome.transaction.postings
            assert first.wallet_balance_after == outcome.transaction.wallet_balance_after == 5_000 - 450
            assert uow.usage.get_event(orgs[0].id, "e-1") == events[0]
            one_buckets, other_buckets = (uow.usage.buckets(org.id, NOW - timedelta(hours=1), NOW + timedelta(hours=1))
                                          for org in orgs)
            assert [(b.hour, b.quantity, b.amount_micros) for b in one_buckets] == \
                [(b.hour, b.quantity, b.amount_micros) for b in other_buckets] == [(NOW.replace(minute=0), 3, 450)]

    def test_a_used_key_writes_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        with storage.uow() as uow:
            uow.wallets.debit(org.id, 300, NOW, _tx_for(usage_event(org.id, "first"), key="usage:e-1"))
            uow.commit()
        event = usage_event(org.id, "e-1")
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, "e-1", None, PRODUCT, NOW)
            before = msgspec.structs.replace(seen.wallet)
            _, stored = decide_and_apply(seen.wallet, event.amount_micros, NOW, _tx_for(event))
            assert stored is not None
            assert not uow.usage.record_debit(event, stored, seen.wallet, before.version)
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org.id) == before
            assert uow.usage.get_event(org.id, "e-1") is None
            assert uow.usage.buckets(org.id, NOW - timedelta(hours=1), NOW + timedelta(hours=1)) == []

    def test_a_wallet_changed_since_the_read_is_a_conflict(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        event = usage_event(org.id, "e-1")
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, "e-1", None, PRODUCT, NOW)
            stale = seen.wallet.version - 1
            _, stored = decide_and_apply(seen.wallet, event.amount_micros, NOW, _tx_for(event))
            assert stored is not None
            with pytest.raises(Conflict):
                uow.usage.record_debit(event, stored, seen.wallet, stale)


def _decided(wallet: WalletAccount, events: list[UsageEvent]) -> list[tuple[UsageEvent, LedgerTransaction]]:
    """The events' debits decided in order on ``wallet`` (changed in place), as a usage batch does."""
    batch = decide_many(wallet, [DebitRequest(e.amount_micros, _tx_for(e), e.project_id, e.token_id) for e in events],
                        NOW)
    return [(event, outcome.transaction) for event, outcome in zip(events, batch.outcomes, strict=True)
            if outcome.transaction is not None and not outcome.replayed]


class UsageBatchWriteContract:
    """:meth:`~billing_core.ports.UsageRepository.record_debits`: a batch's write stores exactly what
    ``WalletRepository.debit_many`` followed by ``UsageRepository.record_many`` stores, or refuses."""

    def test_the_batch_write_stores_what_debit_many_and_record_many_store(self, storage: StorageBackend) -> None:
        orgs = [new_org(storage, name=name) for name in ("One", "Other")]
        project = uuid.uuid4()
        for org in orgs:
            fund(storage, org.id, 5_000)
        batches = [[usage_event(org.id, "e-1", quantity=3), usage_event(org.id, "e-2", quantity=40),
                    usage_event(org.id, "e-3", quantity=1, project_id=project),
                    usage_event(org.id, "e-4", quantity=2, at=NOW - timedelta(hours=2), product_id=OTHER_PRODUCT),
                    usage_event(org.id, "e-5", quantity=4)] for org in orgs]
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(orgs[0].id, "e-1", None, PRODUCT, NOW)
            wallet, version = seen.wallet, seen.wallet.version
            debits = _decided(wallet, batches[0])
            assert [event.event_id for event, _ in debits] == ["e-1", "e-3", "e-4", "e-5"]  # e-2: 6,000 > 4,550 left
            uow.usage.record_debits([DebitChunk(debits=debits, wallet=wallet, old_version=version)])
            uow.commit()
        with storage.uow() as uow:
            outcomes = uow.wallets.debit_many(orgs[1].id, [
                DebitRequest(e.amount_micros, _tx_for(e), e.project_id) for e in batches[1]], NOW)
            uow.usage.record_many([e for e, o in zip(batches[1], outcomes, strict=True) if o.transaction is not None])
            uow.commit()
        with storage.uow() as uow:
            one, other = (uow.wallets.get(org.id) for org in orgs)
            assert msgspec.structs.replace(one, organization_id=other.organization_id) == other
            assert one == wallet
            ledgers = [[(t.idempotency_key, t.postings, t.wallet_balance_after) for t in uow.ledger.list(org.id).items]
                       for org in orgs]
            assert ledgers[0] == ledgers[1]
            assert [key for key, _, _ in ledgers[0]] == ["usage:e-5", "usage:e-4", "usage:e-3", "usage:e-1", "grant"]
            for key in ("e-1", "e-3", "e-4", "e-5"):
                stored, reference = (uow.usage.get_event(org.id, key) for org in orgs)
                assert stored is not None and reference is not None
                assert stored == msgspec.structs.replace(reference, organization_id=orgs[0].id)
            assert uow.usage.get_event(orgs[0].id, "e-2") is None
            window = (NOW - timedelta(hours=3), NOW + timedelta(hours=1))
            one_buckets, other_buckets = ([(b.project_id, b.product_id, b.hour, b.quantity, b.amount_micros)
                                           for b in uow.usage.buckets(org.id, *window)] for org in orgs)
            assert one_buckets == other_buckets
            assert sorted(one_buckets, key=str) == sorted([
                (None, PRODUCT, NOW.replace(minute=0), 7, 1_050), (project, PRODUCT, NOW.replace(minute=0), 1, 150),
                (None, OTHER_PRODUCT, (NOW - timedelta(hours=2)).replace(minute=0), 2, 300)], key=str)

    def test_the_batch_write_keeps_every_value_exactly(self, storage: StorageBackend) -> None:
        """Text with quotes, backslashes and non-ASCII, a reason, times to the microsecond at other
        offsets, amounts near the largest, a project and a token come back as they went in (the
        SQL adapters send a batch's rows in bulk: multi-row VALUES, arrays per column)."""
        org = new_org(storage)
        fund(storage, org.id, 10**15)
        at = datetime(2026, 3, 14, 11, 59, 58, 123_456, tzinfo=timezone(timedelta(hours=2)))
        project, token = uuid.uuid4(), uuid.uuid4()
        text = 'Quote " back\\slash \u00e9\u2603 {"json": [1]} \t tab'
        event = msgspec.structs.replace(usage_event(org.id, "odd.id:1-_", quantity=123_456_789,
                                                    unit_price=7_654_321, at=at, project_id=project), token_id=token)
        tx = transfer(organization_id=org.id, idempotency_key=f"usage:{event.event_id}", kind=EntryKind.USAGE,
                      description=text, reason=text[::-1], created_at=at, source=Account.UNBILLED_USAGE,
                      target=Account.REVENUE, amount_micros=event.amount_micros, reference=text)
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, event.event_id, project, PRODUCT, at)
            wallet, version = seen.wallet, seen.wallet.version
            debits = [(event, outcome.transaction) for outcome in decide_many(
                wallet, [DebitRequest(event.amount_micros, tx, project, token)], at).outcomes
                      if outcome.transaction is not None]
            uow.usage.record_debits([DebitChunk(debits=debits, wallet=wallet, old_version=version)])
            uow.commit()
        with storage.uow() as uow:
            assert uow.usage.get_event(org.id, event.event_id) == event
            assert uow.ledger.get_by_key(org.id, tx.idempotency_key) == debits[0][1]
            assert uow.wallets.get(org.id) == wallet
            hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            assert [(b.project_id, b.hour, b.quantity, b.amount_micros)
                    for b in uow.usage.buckets(org.id, hour, hour + timedelta(hours=1))] \
                == [(project, hour, 123_456_789, 944_977_892_635_269)]

    @pytest.mark.parametrize("stale", ["used key", "stored event", "wallet version", "key twice"])
    def test_a_batch_write_on_stale_reads_is_a_conflict(self, storage: StorageBackend, stale: str) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        with storage.uow() as uow:
            if stale == "used key":
                uow.wallets.debit(org.id, 300, NOW, _tx_for(usage_event(org.id, "x"), key="usage:e-2"))
            if stale == "stored event":
                assert uow.usage.record(usage_event(org.id, "e-2"))
            uow.commit()
        events = [usage_event(org.id, "e-1"), usage_event(org.id, "e-2")]
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, "e-1", None, PRODUCT, NOW)
            before = msgspec.structs.replace(seen.wallet)
            version = seen.wallet.version - (stale == "wallet version")
            debits = _decided(seen.wallet, events)
            if stale == "key twice":
                debits.append((usage_event(org.id, "e-3"), debits[0][1]))
            with pytest.raises(ConcurrentUpdate):
                uow.usage.record_debits([DebitChunk(debits=debits, wallet=seen.wallet, old_version=version)])
        with storage.uow() as uow:
            assert uow.wallets.get(org.id) == before
            assert uow.ledger.get_by_key(org.id, "usage:e-1") is None
            assert uow.usage.get_event(org.id, "e-1") is None
            # nothing to write: nothing checked
            uow.usage.record_debits([DebitChunk(debits=[], wallet=before, old_version=0)])
            uow.usage.record_debits([])


def _parts(wallet: WalletAccount, events: list[list[UsageEvent]]) -> list[DebitChunk]:
    """Each list of ``events`` decided in order on ``wallet`` (changed in place) as one part of a
    batch's write, as ``report_usage_batch`` decides them: each part's wallet as it leaves it."""
    sequence = DebitSequence(wallet, NOW)
    parts = []
    for part in events:
        old_version = wallet.version
        outcomes = sequence.decide([DebitRequest(e.amount_micros, _tx_for(e)) for e in part])
        parts.append(DebitChunk(debits=[(e, o.transaction) for e, o in zip(part, outcomes, strict=True)
                                        if o.transaction is not None],
                                wallet=msgspec.structs.replace(wallet), old_version=old_version))
    return parts


class UsageBatchPartsContract:
    """:meth:`~billing_core.ports.UsageRepository.record_debits` in parts: a batch written a part at
    a time stores what it stores in one part; a part that fails, or an error raised while the
    parts are produced, leaves nothing once the unit of work is rolled back."""

    def test_a_batch_in_parts_stores_what_one_part_stores(self, storage: StorageBackend) -> None:
        orgs = [new_org(storage, name=name) for name in ("Parts", "Whole")]
        for org in orgs:
            fund(storage, org.id, 5_000)
        batches = [[usage_event(org.id, f"e-{i}", quantity=1 + i % 3,
                                at=NOW - timedelta(hours=i % 2)) for i in range(1, 8)] for org in orgs]
        batches[0].insert(3, usage_event(orgs[0].id, "big", quantity=500))  # denied: 75,000 > what is left
        batches[1].insert(3, usage_event(orgs[1].id, "big", quantity=500))
        layouts = [[batches[0][:2], batches[0][2:4], [], batches[0][4:5], batches[0][5:]], [batches[1]]]
        for org, layout in zip(orgs, layouts, strict=True):
            with storage.uow() as uow:
                seen = uow.usage.lock_for_event(org.id, "e-1", None, PRODUCT, NOW)
                uow.usage.record_debits(iter(_parts(seen.wallet, layout)))
                uow.commit()
        with storage.uow() as uow:
            parts, whole = (uow.wallets.get(org.id) for org in orgs)
            assert parts == msgspec.structs.replace(whole, organization_id=orgs[0].id)
            assert parts.version == whole.version
            ledgers = [[(t.idempotency_key, t.postings, t.wallet_balance_after) for t in uow.ledger.list(org.id).items]
                       for org in orgs]
            assert ledgers[0] == ledgers[1]
            assert len(ledgers[0]) == 8  # the grant and seven debits: "big" was denied
            window = (NOW - timedelta(hours=2), NOW + timedelta(hours=1))
            assert [(b.hour, b.quantity, b.amount_micros) for b in uow.usage.buckets(orgs[0].id, *window)] \
                == [(b.hour, b.quantity, b.amount_micros) for b in uow.usage.buckets(orgs[1].id, *window)]

    @pytest.mark.parametrize("stale", ["used key", "wallet version"])
    def test_a_stale_later_part_leaves_nothing(self, storage: StorageBackend, stale: str) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        if stale == "used key":
            with storage.uow() as uow:
                uow.wallets.debit(org.id, 300, NOW, _tx_for(usage_event(org.id, "x"), key="usage:e-3"))
                uow.commit()
        events = [usage_event(org.id, f"e-{i}") for i in range(1, 4)]
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, "e-1", None, PRODUCT, NOW)
            before = msgspec.structs.replace(seen.wallet)
            first, last = _parts(seen.wallet, [events[:2], events[2:]])
            if stale == "wallet version":  # as if the first part had not moved the stored wallet on
                last = msgspec.structs.replace(last, old_version=first.old_version)
            with pytest.raises(ConcurrentUpdate):
                uow.usage.record_debits(iter([first, last]))
        with storage.uow() as uow:
            assert uow.wallets.get(org.id) == before
            assert uow.ledger.get_by_key(org.id, "usage:e-1") is None
            assert uow.usage.get_event(org.id, "e-1") is None

    def test_an_error_while_producing_the_parts_is_raised_as_is_and_leaves_nothing(
            self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        events = [usage_event(org.id, f"e-{i}") for i in range(1, 4)]

        class Stop(Exception):
            pass

        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org.id, "e-1", None, PRODUCT, NOW)
            before = msgspec.structs.replace(seen.wallet)
            first = _parts(seen.wallet, [events[:2]])[0]

            def produced() -> Iterator[DebitChunk]:
                yield first
                raise Stop

            with pytest.raises(Stop):
                uow.usage.record_debits(produced())
        with storage.uow() as uow:
            assert uow.wallets.get(org.id) == before
            assert uow.ledger.get_by_key(org.id, "usage:e-1") is None
            assert uow.usage.get_event(org.id, "e-2") is None
