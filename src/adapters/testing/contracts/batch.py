"""Contract of the batch storage steps: :meth:`WalletRepository.debit_many` and
:meth:`UsageRepository.record_many` are exactly their single-item methods called in order."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from adapters.fakes import InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import NOW, OTHER_PRODUCT, PRODUCT, fund, grant, new_org, usage_event, usage_tx
from adapters.testing.storage import StorageBackend
from billing_core.errors import ConcurrentUpdate, InvalidInput, LedgerImbalance, NotFound
from billing_core.ledger import Account, EntryKind, LedgerTransaction, Posting, credit_balance
from billing_core.organization import Organization
from billing_core.ports import DebitRequest, UnitOfWork
from billing_core.spend_guard import DenialReason
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount

FAR_FUTURE = NOW + timedelta(days=3650)


def _debit(org_id: uuid.UUID, amount: int, key: str, at: datetime = NOW) -> DebitRequest:
    return DebitRequest(amount, usage_tx(org_id, amount, key, at=at))


class DebitManyContract:
    def test_debits_are_decided_in_order_against_the_running_wallet(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 1_000)
        with storage.uow() as uow:
            outcomes = uow.wallets.debit_many(org.id, [
                _debit(org.id, 400, "a"), _debit(org.id, 700, "b"), _debit(org.id, 500, "c"), _debit(org.id, 200, "d"),
            ], NOW)
            uow.commit()
        assert [o.decision.allowed for o in outcomes] == [True, False, True, False]
        assert outcomes[1].decision.reason == DenialReason.INSUFFICIENT_CREDIT
        assert [o.wallet.balance_micros for o in outcomes] == [600, 600, 100, 100]
        assert [o.transaction.wallet_balance_after if o.transaction else None for o in outcomes] == [
            600, None, 100, None]
        assert not any(o.replayed for o in outcomes)
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
            assert wallet == outcomes[-1].wallet
            assert (wallet.balance_micros, wallet.spent_today_micros, wallet.version) == (100, 900, 3)
            assert [t.idempotency_key for t in uow.ledger.list(org.id).items] == ["c", "a", "grant"]
            assert uow.ledger.get_by_key(org.id, "a") == outcomes[0].transaction

    def test_replays_of_the_ledger_and_of_the_batch_write_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 1_000)
        with storage.uow() as uow:
            earlier = uow.wallets.debit(org.id, 300, NOW, usage_tx(org.id, 300, "old"))
            uow.commit()
        with storage.uow() as uow:
            outcomes = uow.wallets.debit_many(org.id, [
                _debit(org.id, 300, "old"),      # in the ledger before
                _debit(org.id, 900, "big"),      # denied: 700 left
                _debit(org.id, 100, "x"),
                _debit(org.id, 100, "x"),        # allowed earlier in the batch
                _debit(org.id, 500, "big"),      # denied before, affordable now: a new debit
                _debit(org.id, 999, "grant"),    # the grant's key: a replay, however large
            ], NOW)
            uow.commit()
        assert [(o.decision.allowed, o.replayed) for o in outcomes] == [
            (True, True), (False, False), (True, False), (True, True), (True, False), (True, True)]
        assert outcomes[0].transaction == earlier.transaction
        assert outcomes[3].transaction == outcomes[2].transaction
        assert outcomes[3].wallet == outcomes[2].wallet
        with storage.uow() as uow:
            assert outcomes[5].transaction == uow.ledger.get_by_key(org.id, "grant")
            assert uow.wallets.get(org.id).balance_micros == 100
            assert [t.idempotency_key for t in uow.ledger.list(org.id).items] == ["big", "x", "old", "grant"]

    def test_an_invalid_request_refuses_the_batch_before_anything_is_written(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        fund(storage, org.id, 1_000)
        unbalanced = LedgerTransaction(
            id=uuid.uuid4(), organization_id=org.id, idempotency_key="bad", kind=EntryKind.USAGE,
            description="bad", reason=None, created_at=NOW,
            postings=(Posting(Account.REVENUE, 5), Posting(Account.UNBILLED_USAGE, -4)))
        with storage.uow() as uow:
            before = uow.wallets.get(org.id)
            for bad, error in ((DebitRequest(4, unbalanced), LedgerImbalance),
                               (_debit(other.id, 10, "theirs"), InvalidInput),
                               (DebitRequest(11, usage_tx(org.id, 10, "wrong-amount")), InvalidInput)):
                with pytest.raises(error):
                    uow.wallets.debit_many(org.id, [_debit(org.id, 10, "ok"), bad], NOW)
                assert uow.wallets.get(org.id) == before
                assert uow.ledger.get_by_key(org.id, "ok") is None

    def test_an_empty_batch_is_empty_and_a_missing_wallet_is_not_found(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        with storage.uow() as uow:
            assert uow.wallets.debit_many(org.id, [], NOW) == []
            with pytest.raises(NotFound):
                uow.wallets.debit_many(org.id, [_debit(org.id, 1, "a")], NOW)

    def test_a_wallet_already_locked_gives_what_locking_again_gives(self, storage: StorageBackend) -> None:
        """``locked`` (the wallet read under this unit of work's lock) spares the second locked read:
        the same outcomes, rows and stored wallet as without it, and the snapshot is left as it was."""
        answers = []
        for pass_locked in (False, True):
            org = _funded_with_an_old_debit(storage)
            with storage.uow() as uow:
                snapshot = uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW)
                seen = snapshot.wallet.balance_micros, snapshot.wallet.version
                outcomes = uow.wallets.debit_many(org.id, [
                    _debit(org.id, 400, "a"), _debit(org.id, 100, "old"), _debit(org.id, 900, "b"),
                    _debit(org.id, 300, "c")], NOW, locked=snapshot.wallet if pass_locked else None)
                assert (snapshot.wallet.balance_micros, snapshot.wallet.version) == seen
                uow.commit()
            with storage.uow() as uow:
                wallet = uow.wallets.get(org.id)
                keys = [t.idempotency_key for t in uow.ledger.list(org.id).items]
            answers.append(([(o.decision.allowed, o.replayed, o.wallet.balance_micros) for o in outcomes],
                            (wallet.balance_micros, wallet.spent_today_micros, wallet.version), keys))
        assert answers[0] == answers[1]
        assert answers[1][1] == (200, 800, 4)

    def test_a_stale_locked_wallet_is_a_conflict_and_writes_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 1_000)
        with storage.uow() as uow:
            stale = uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW).wallet
            uow.wallets.debit(org.id, 100, NOW, usage_tx(org.id, 100, "between"))
            with pytest.raises(ConcurrentUpdate):
                uow.wallets.debit_many(org.id, [_debit(org.id, 50, "a")], NOW, locked=stale)
        other = new_org(storage, name="Other")
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).balance_micros == 1_000
            assert uow.ledger.get_by_key(org.id, "a") is None
            for batch in ([_debit(org.id, 50, "a")], []):
                with pytest.raises(InvalidInput):
                    uow.wallets.debit_many(org.id, batch, NOW, locked=uow.wallets.get(other.id))

    def test_the_lock_tells_which_ledger_keys_are_used(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        other = new_org(storage, name="Other")
        for owner in (org, other):
            fund(storage, owner.id, 1_000)
            with storage.uow() as uow:
                uow.wallets.debit(owner.id, 10, NOW, usage_tx(owner.id, 10, f"used-{owner.name}"))
                uow.wallets.debit(owner.id, 10, NOW, usage_tx(owner.id, 10, "both"))
                uow.commit()
        asked = ["new", f"used-{org.name}", "both", f"used-{other.name}", "grant", "new-2"]
        with storage.uow() as uow:
            snapshot = uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW, ledger_keys=asked)
            assert snapshot.stored_keys == {f"used-{org.name}", "both", "grant"}
            assert uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW).stored_keys == frozenset()

    def test_the_lock_sees_keys_used_while_it_waited(self, storage: StorageBackend) -> None:
        """Used keys are read once the lock is held, not before waiting for it: a batch that queued
        behind another writer sees what that writer committed (else it would debit a replay again,
        or be refused as a conflict)."""
        org = new_org(storage)
        fund(storage, org.id, 1_000)
        seen: list[tuple[frozenset[str], int]] = []

        def second() -> None:
            with storage.uow() as uow:
                snapshot = uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW, ledger_keys=["k", "new"])
                seen.append((snapshot.stored_keys, snapshot.wallet.balance_micros))

        waiting = threading.Thread(target=second)
        with storage.uow() as uow:
            uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW)
            uow.wallets.debit(org.id, 100, NOW, usage_tx(org.id, 100, "k"))
            waiting.start()
            _until_waiting_for_a_lock(storage)
            uow.commit()
        waiting.join(timeout=30)
        assert seen == [(frozenset({"k"}), 900)]

    def test_stored_keys_read_under_the_lock_give_the_same_batch(self, storage: StorageBackend) -> None:
        """``stored_keys`` spare the batch its read of replays: same outcomes and rows as without."""
        answers = []
        for pass_keys in (False, True):
            org = _funded_with_an_old_debit(storage)
            batch = [_debit(org.id, 400, "a"), _debit(org.id, 100, "old"), _debit(org.id, 50, "a"),
                     _debit(org.id, 900, "b"), _debit(org.id, 300, "c")]
            with storage.uow() as uow:
                snapshot = uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW,
                                                    ledger_keys=[r.transaction.idempotency_key for r in batch])
                outcomes = uow.wallets.debit_many(org.id, batch, NOW, locked=snapshot.wallet,
                                                  stored_keys=snapshot.stored_keys if pass_keys else None)
                uow.commit()
            with storage.uow() as uow:
                wallet = uow.wallets.get(org.id)
                keys = [t.idempotency_key for t in uow.ledger.list(org.id).items]
            answers.append(([(o.decision.allowed, o.replayed, o.wallet.balance_micros) for o in outcomes],
                            (wallet.balance_micros, wallet.version), keys))
        assert answers[0] == answers[1]
        assert answers[1][0] == [(True, False, 500), (True, True, 500), (True, True, 500), (False, False, 500),
                                 (True, False, 200)]

    def test_stored_keys_that_miss_a_used_key_are_a_conflict(self, storage: StorageBackend) -> None:
        org = _funded_with_an_old_debit(storage)
        with storage.uow() as uow:
            locked = uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW).wallet
            with pytest.raises(ConcurrentUpdate):
                uow.wallets.debit_many(org.id, [_debit(org.id, 50, "a"), _debit(org.id, 100, "old")], NOW,
                                       locked=locked, stored_keys=frozenset())
        with storage.uow() as uow, pytest.raises(InvalidInput):
            uow.wallets.debit_many(org.id, [_debit(org.id, 50, "a")], NOW, stored_keys=frozenset())
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).balance_micros == 900
            assert uow.ledger.get_by_key(org.id, "a") is None

    def test_a_large_batch_with_scattered_replays_equals_debits_one_by_one(self, storage: StorageBackend) -> None:
        """More rows and keys than one multi-row statement or keyed read takes."""
        org = new_org(storage)
        fund(storage, org.id, 10**9)
        with storage.uow() as uow:
            for i in range(0, 1_200, 7):
                uow.wallets.debit(org.id, 5, NOW, usage_tx(org.id, 5, f"k{i}"))
            uow.commit()
        batch = [_debit(org.id, 1 + i % 9, f"k{i}") for i in range(1_200)]
        with storage.uow() as uow:
            outcomes = uow.wallets.debit_many(org.id, batch, NOW)
            uow.commit()
        assert sum(o.replayed for o in outcomes) == len(range(0, 1_200, 7))
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).spent_today_micros == 5 * len(range(0, 1_200, 7)) + sum(
                1 + i % 9 for i in range(1_200) if i % 7)
            assert len(uow.ledger.list(org.id, limit=2_000).items) == 1_201


def _funded_with_an_old_debit(storage: StorageBackend) -> Organization:
    """An organization with 1,000 granted and 100 debited under the key ``old``."""
    org = new_org(storage)
    fund(storage, org.id, 1_000)
    with storage.uow() as uow:
        uow.wallets.debit(org.id, 100, NOW, usage_tx(org.id, 100, "old"))
        uow.commit()
    return org


def _until_waiting_for_a_lock(storage: StorageBackend) -> None:
    """On PostgreSQL until another session waits for a lock (at most 10 s); elsewhere a short pause
    (SQLite's writer and the fake's store lock queue the other unit of work at its start)."""
    if storage.kind != "postgresql":
        time.sleep(0.2)
        return
    assert storage.engine is not None
    deadline = time.monotonic() + 10
    with storage.engine.connect() as connection:
        while time.monotonic() < deadline:
            if connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND datname = current_database()")).scalar():
                return
            connection.rollback()
            time.sleep(0.01)


# --------------------------------------------------------------------------- the property

_limits = st.builds(SpendLimits, credit_line_micros=st.sampled_from([0, 500]),
                    minimum_production_credit_micros=st.sampled_from([0, 100]),
                    daily_budget_micros=st.sampled_from([None, 1_500, 4_000]),
                    monthly_cap_micros=st.sampled_from([None, 3_000, 20_000]))
_gates = st.sampled_from([
    SubscriptionGate(), SubscriptionGate(status="active"),
    SubscriptionGate(status="past_due", past_due_since=NOW - timedelta(hours=20), grace_days=1),
    SubscriptionGate(status="past_due", past_due_since=NOW - timedelta(days=3), grace_days=1),
    SubscriptionGate(status="canceled"),
])
# (amount, key number): few key numbers, so replays within the batch and of earlier debits are
# common; large and small amounts mixed, so a denial is often followed by a debit that passes.
_items = st.lists(st.tuples(st.integers(1, 900) | st.integers(1, 40), st.integers(0, 14)), max_size=30)


class DebitManyEqualsDebitsOneByOneContract:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(funds=st.integers(0, 5_000), limits=_limits, gate=_gates, earlier=_items, batch=_items,
           earlier_day=st.sampled_from([timedelta(0), timedelta(hours=-13), timedelta(days=-31)]),
           through_lock=st.booleans())
    def test_batch_equals_one_by_one(self, storage: StorageBackend, funds: int, limits: SpendLimits,
                                     gate: SubscriptionGate, earlier: list[tuple[int, int]],
                                     batch: list[tuple[int, int]], earlier_day: timedelta,
                                     through_lock: bool) -> None:
        """On the backend a batch; on the in-memory reference the same debits one by one (the
        reference's single debits equal every backend's, per the wallet contract's random walk).
        Outcomes, stored wallet and ledger must be identical, and the ledger must reconcile.
        ``through_lock``: as the usage batch calls it, on the wallet and used keys that
        ``lock_for_event`` read."""
        org = new_org(storage)
        reference = InMemoryStore()
        at = NOW + earlier_day
        funding = grant(org.id, funds) if funds else None
        history = [_debit(org.id, amount, f"k{key}", at=at) for amount, key in earlier]
        with storage.uow() as uow, InMemoryUnitOfWork(reference) as ref:
            ref.wallets.create(WalletAccount(organization_id=org.id))
            for work in (uow, ref):
                _prepare(work, org.id, funding, limits, gate, history, at)
            uow.commit()
            ref.commit()
        requests = [_debit(org.id, amount, f"k{key}") for amount, key in batch]
        with storage.uow() as uow, InMemoryUnitOfWork(reference) as ref:
            if through_lock:
                snapshot = uow.usage.lock_for_event(org.id, "e", None, PRODUCT, NOW,
                                                    ledger_keys=[r.transaction.idempotency_key for r in requests])
                got = uow.wallets.debit_many(org.id, requests, NOW, locked=snapshot.wallet,
                                             stored_keys=snapshot.stored_keys)
            else:
                got = uow.wallets.debit_many(org.id, requests, NOW)
            expected = [ref.wallets.debit(org.id, r.amount_micros, NOW, r.transaction) for r in requests]
            assert got == expected
            uow.commit()
            ref.commit()
        with storage.uow() as uow, InMemoryUnitOfWork(reference) as ref:
            wallet = uow.wallets.get(org.id)
            assert wallet == ref.wallets.get(org.id)
            assert uow.ledger.list(org.id, limit=500) == ref.ledger.list(org.id, limit=500)
            sums = uow.ledger.account_sums(org.id)
            assert sum(sums.values()) == 0 and credit_balance(sums) == wallet.balance_micros


def _prepare(uow: UnitOfWork, org_id: uuid.UUID, funding: LedgerTransaction | None, limits: SpendLimits,
             gate: SubscriptionGate, history: list[DebitRequest], at: datetime) -> None:
    if funding is not None:
        uow.wallets.post(funding)
    uow.wallets.set_limits(org_id, limits)
    for request in history:
        uow.wallets.debit(org_id, request.amount_micros, at, request.transaction)
    uow.wallets.set_gate(org_id, gate)


class RecordManyContract:
    def test_record_many_is_record_one_by_one(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        project = uuid.uuid4()
        with storage.uow() as uow:
            assert uow.usage.record(usage_event(org.id, "before", quantity=1))
            assert uow.usage.record_many([]) == []
            stored = uow.usage.record_many([
                usage_event(org.id, "before", quantity=9),                      # stored before
                usage_event(org.id, "a", quantity=2),
                usage_event(org.id, "a", quantity=40),                          # earlier in the call
                usage_event(other.id, "a", quantity=3),                         # same id, other organization
                usage_event(org.id, "b", quantity=4, at=NOW + timedelta(minutes=20)),
                usage_event(org.id, "c", quantity=5, project_id=project),
                usage_event(org.id, "d", quantity=6, product_id=OTHER_PRODUCT, at=NOW + timedelta(hours=1)),
            ])
            uow.commit()
        assert stored == [False, True, False, True, True, True, True]
        hour = NOW.replace(minute=0)
        with storage.uow() as uow:
            assert uow.usage.get_event(org.id, "a") == usage_event(org.id, "a", quantity=2)
            assert uow.usage.get_event(other.id, "a") == usage_event(other.id, "a", quantity=3)
            mine = {(b.project_id, b.product_id, b.hour): (b.quantity, b.amount_micros)
                    for b in uow.usage.uninvoiced(org.id, FAR_FUTURE)}
            assert mine == {(None, PRODUCT, hour): (7, 1_050), (project, PRODUCT, hour): (5, 750),
                            (None, OTHER_PRODUCT, hour + timedelta(hours=1)): (6, 900)}
            assert [(b.quantity, b.amount_micros) for b in uow.usage.uninvoiced(other.id, FAR_FUTURE)] == [(3, 450)]

    def test_record_many_leaves_invoiced_buckets_alone(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        invoice_id = uuid.uuid4()
        with storage.uow() as uow:
            uow.usage.record(usage_event(org.id, "a", quantity=2))
            uow.usage.mark_invoiced(org.id, FAR_FUTURE, invoice_id)
            assert uow.usage.record_many([usage_event(org.id, "late", quantity=4),
                                          usage_event(org.id, "late:2", quantity=1)]) == [True, True]
            uow.commit()
        with storage.uow() as uow:
            buckets = uow.usage.buckets(org.id, NOW.replace(minute=0), FAR_FUTURE)
        assert sorted((b.invoice_id is None, b.quantity) for b in buckets) == [(False, 2), (True, 5)]

    def test_a_large_call_spans_several_statements(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        events = [usage_event(org.id, f"e{i}", quantity=1 + i % 3, at=NOW - timedelta(hours=i % 5))
                  for i in range(450)]
        with storage.uow() as uow:
            assert uow.usage.record_many(events[:200:3]) == [True] * len(events[:200:3])
            stored = uow.usage.record_many(events)
            uow.commit()
        assert stored == [i >= 200 or i % 3 != 0 for i in range(450)]
        with storage.uow() as uow:
            total = sum(b.quantity for b in uow.usage.uninvoiced(org.id, FAR_FUTURE))
        assert total == sum(e.quantity for e in events)
