"""Contract of :class:`~billing_core.ports.WalletRepository` (the debit hot path) and
:class:`~billing_core.ports.LedgerRepository`."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from adapters.fakes import InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import NOW, fund, grant, new_org, top_up, usage_refund, usage_tx
from adapters.testing.storage import StorageBackend
from adapters.testing.threads import run_in_threads
from billing_core.errors import InvalidInput, LedgerImbalance, NotFound
from billing_core.ledger import (
    Account,
    EntryKind,
    LedgerTransaction,
    Posting,
    credit_balance,
    transaction,
    transfer,
)
from billing_core.plan_subscription import SubscriptionStatus
from billing_core.spend_guard import DenialReason, SpendWarning, decide
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount


class WalletRepositoryContract:
    def test_create_is_a_no_op_the_second_time(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 7_000)
        with storage.uow() as uow:
            uow.wallets.create(WalletAccount(organization_id=org.id, wallet_micros=999))
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 7_000

    def test_get_unknown_wallet_is_not_found(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        with storage.uow() as uow, pytest.raises(NotFound):
            uow.wallets.get(org.id)

    def test_wallet_round_trips_every_field(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        wallet = WalletAccount(
            organization_id=org.id, wallet_micros=12, unbilled_micros=-5,
            limits=SpendLimits(credit_line_micros=3, minimum_production_credit_micros=1, daily_budget_micros=9,
                               monthly_cap_micros=10**15),
            gate=SubscriptionGate(status="past_due", past_due_since=NOW, grace_days=7),
            spend_day=NOW.date(), spent_today_micros=4, spent_yesterday_micros=2, spend_month="2026-03",
            spent_month_micros=6, spent_previous_month_micros=11, version=3)
        with storage.uow() as uow:
            uow.wallets.create(wallet)
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org.id) == wallet

    def test_post_moves_balances_and_stamps_the_balance_after(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            posted = uow.wallets.post(grant(org.id, 5_000_000))
            uow.commit()
        assert not posted.replayed
        assert posted.transaction.wallet_balance_after == 5_000_000
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
            assert (wallet.wallet_micros, wallet.unbilled_micros, wallet.version) == (5_000_000, 0, 1)
            assert uow.ledger.get_by_key(org.id, "grant") == posted.transaction

    def test_post_replay_returns_the_first_transaction_and_changes_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        with storage.uow() as uow:
            first = uow.ledger.get_by_key(org.id, "grant")
            again = uow.wallets.post(grant(org.id, 9_999, "grant", at=NOW + timedelta(hours=1)))
            uow.commit()
        assert again.replayed
        assert again.transaction == first
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 5_000
            assert len(uow.ledger.list(org.id).items) == 1

    def test_post_refuses_an_unbalanced_transaction(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        bad = LedgerTransaction(id=uuid.uuid4(), organization_id=org.id, idempotency_key="bad", kind=EntryKind.GRANT,
                                description="bad", reason=None, created_at=NOW,
                                postings=(Posting(Account.WALLET, 5), Posting(Account.REVENUE, -4)))
        with storage.uow() as uow, pytest.raises(LedgerImbalance):
            uow.wallets.post(bad)

    def test_post_without_wallet_is_not_found(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        with storage.uow() as uow, pytest.raises(NotFound):
            uow.wallets.post(grant(org.id, 5))

    def test_allowed_debit_moves_balance_counters_and_appends_the_ledger(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 1_000)
        with storage.uow() as uow:
            outcome = uow.wallets.debit(org.id, 300, NOW, usage_tx(org.id, 300, "u-1"))
            uow.commit()
        assert outcome.decision.allowed and not outcome.replayed
        assert outcome.transaction is not None and outcome.transaction.wallet_balance_after == 700
        assert outcome.wallet.balance_micros == 700
        assert (outcome.wallet.spent_today_micros, outcome.wallet.spent_month_micros) == (300, 300)
        with storage.uow() as uow:
            stored = uow.wallets.get(org.id)
            assert stored == outcome.wallet
            assert (stored.wallet_micros, stored.unbilled_micros) == (1_000, -300)
            assert (stored.spend_day, stored.spend_month) == (NOW.date(), "2026-03")
            assert uow.ledger.get_by_key(org.id, "u-1") == outcome.transaction

    def test_denied_debit_writes_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 100)
        with storage.uow() as uow:
            outcome = uow.wallets.debit(org.id, 101, NOW, usage_tx(org.id, 101, "u-1"))
            uow.commit()
        assert not outcome.decision.allowed
        assert outcome.decision.reason == DenialReason.INSUFFICIENT_CREDIT
        assert outcome.transaction is None and not outcome.replayed
        assert outcome.wallet.balance_micros == 100
        with storage.uow() as uow:
            assert uow.ledger.get_by_key(org.id, "u-1") is None
            wallet = uow.wallets.get(org.id)
            assert (wallet.balance_micros, wallet.spent_today_micros, wallet.version) == (100, 0, 1)

    def test_debit_replay_answers_allowed_and_replayed_even_once_credit_is_gone(
            self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 500)
        with storage.uow() as uow:
            first = uow.wallets.debit(org.id, 400, NOW, usage_tx(org.id, 400, "u-1"))
            uow.commit()
        with storage.uow() as uow:
            again = uow.wallets.debit(org.id, 400, NOW, usage_tx(org.id, 400, "u-1"))
            uow.commit()
        assert again.replayed and again.decision.allowed
        assert again.transaction == first.transaction
        assert again.wallet.balance_micros == 100
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).balance_micros == 100

    def test_debit_replay_while_still_affordable_changes_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 5_000)
        with storage.uow() as uow:
            first = uow.wallets.debit(org.id, 400, NOW, usage_tx(org.id, 400, "u-1"))
            again = uow.wallets.debit(org.id, 400, NOW, usage_tx(org.id, 400, "u-1"))
            uow.commit()
        assert again.replayed and again.transaction == first.transaction
        assert again.wallet == first.wallet
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
            assert (wallet.balance_micros, wallet.spent_today_micros) == (4_600, 400)

    def test_debit_of_a_transaction_of_another_organization_is_refused(self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage)
        with storage.uow() as uow, pytest.raises(InvalidInput):
            uow.wallets.debit(org.id, 1, NOW, usage_tx(other.id, 1, "u"))

    def test_debit_of_unknown_wallet_is_not_found(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        with storage.uow() as uow, pytest.raises(NotFound):
            uow.wallets.debit(org.id, 1, NOW, usage_tx(org.id, 1, "u"))

    def test_daily_budget_and_monthly_cap_are_enforced(self, storage: StorageBackend) -> None:
        """Denied once the day's (month's) usage already reaches the budget (cap); the debit that
        crosses it runs in full (:func:`billing_core.spend_guard.budget_reached`)."""
        org = new_org(storage)
        fund(storage, org.id, 10**9)
        with storage.uow() as uow:
            uow.wallets.set_limits(org.id, SpendLimits(daily_budget_micros=1_000, monthly_cap_micros=1_500))
            assert uow.wallets.debit(org.id, 600, NOW, usage_tx(org.id, 600, "a")).decision.allowed
            assert uow.wallets.debit(org.id, 500, NOW, usage_tx(org.id, 500, "b")).decision.allowed  # crosses
            denied = uow.wallets.debit(org.id, 1, NOW, usage_tx(org.id, 1, "c")).decision
            assert denied.reason == DenialReason.DAILY_BUDGET_REACHED
            assert denied.retry_at == NOW.replace(hour=0, minute=0) + timedelta(days=1)
            tomorrow = NOW + timedelta(days=1)
            assert uow.wallets.debit(org.id, 600, tomorrow, usage_tx(org.id, 600, "d")).decision.allowed  # crosses
            capped = uow.wallets.debit(org.id, 1, tomorrow, usage_tx(org.id, 1, "e")).decision
            assert capped.reason == DenialReason.MONTHLY_BUDGET_REACHED
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
        assert (wallet.spend_day, wallet.spent_today_micros, wallet.spent_yesterday_micros) == (
            tomorrow.date(), 600, 1_100)
        assert wallet.spent_month_micros == 1_700

    def test_a_debit_from_before_the_month_turned_still_meets_its_months_cap(self, storage: StorageBackend) -> None:
        """It committed after the new month's first debit: the new month's counter must not hide the
        old month's spend from it (the cap would let it through), nor may it count in the new month."""
        org = new_org(storage)
        fund(storage, org.id, 10**9)
        last_day, first_day = datetime(2026, 3, 31, 23, 0, tzinfo=UTC), datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
        late = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
        with storage.uow() as uow:
            uow.wallets.set_limits(org.id, SpendLimits(monthly_cap_micros=1_000))
            assert uow.wallets.debit(org.id, 900, last_day, usage_tx(org.id, 900, "march", last_day)).decision.allowed
            assert uow.wallets.debit(org.id, 300, first_day, usage_tx(org.id, 300, "april", first_day)).decision.allowed
            # March's 900 is under its cap: the late debit crosses it and runs; the next is capped.
            assert uow.wallets.debit(org.id, 200, late, usage_tx(org.id, 200, "late", late)).decision.allowed
            capped = uow.wallets.debit(org.id, 1, late, usage_tx(org.id, 1, "late-small", late)).decision
            assert capped.reason == DenialReason.MONTHLY_BUDGET_REACHED
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
        assert (wallet.spend_month, wallet.spent_month_micros, wallet.spent_previous_month_micros) == (
            "2026-04", 300, 1_100)

    def test_the_subscription_gate_is_enforced(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 10_000)
        with storage.uow() as uow:
            uow.wallets.set_gate(org.id, SubscriptionGate(status=SubscriptionStatus.PAST_DUE.value,
                                                          past_due_since=NOW - timedelta(days=1), grace_days=3))
            in_grace = uow.wallets.debit(org.id, 1, NOW, usage_tx(org.id, 1, "a")).decision
            assert in_grace.allowed and in_grace.warning == SpendWarning.PAYMENT_FAILURE_GRACE_ACTIVE
            assert in_grace.grace_ends_at == NOW + timedelta(days=2)
            late = uow.wallets.debit(org.id, 1, NOW + timedelta(days=3), usage_tx(org.id, 1, "b")).decision
            assert late.reason == DenialReason.PAYMENT_FAILURE_GRACE_EXPIRED
            uow.wallets.set_gate(org.id, SubscriptionGate(status=SubscriptionStatus.CANCELED.value))
            canceled = uow.wallets.debit(org.id, 1, NOW, usage_tx(org.id, 1, "c")).decision
            assert canceled.reason == DenialReason.SUBSCRIPTION_INACTIVE
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).gate == SubscriptionGate(status="canceled")

    def test_the_credit_line_allows_going_below_zero_down_to_the_minimum(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 100)
        with storage.uow() as uow:
            uow.wallets.set_limits(org.id, SpendLimits(credit_line_micros=1_000, minimum_production_credit_micros=50))
            assert uow.wallets.debit(org.id, 1_050, NOW, usage_tx(org.id, 1_050, "a")).decision.allowed
            assert not uow.wallets.debit(org.id, 1, NOW, usage_tx(org.id, 1, "b")).decision.allowed
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
            assert wallet.balance_micros == -950
            assert wallet.limits == SpendLimits(credit_line_micros=1_000, minimum_production_credit_micros=50)

    def test_set_limits_and_gate_of_unknown_wallet_are_not_found(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        with storage.uow() as uow:
            with pytest.raises(NotFound):
                uow.wallets.set_limits(org.id, SpendLimits())
            with pytest.raises(NotFound):
                uow.wallets.set_gate(org.id, SubscriptionGate())

    def test_concurrent_debits_never_overdraw(self, storage: StorageBackend) -> None:
        """A small version of the integration stress test, run on every backend."""
        org = new_org(storage)
        fund(storage, org.id, 30 * 100)
        allowed: list[int] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            for i in range(15):
                with storage.uow() as uow:
                    outcome = uow.wallets.debit(org.id, 100, NOW, usage_tx(org.id, 100, f"{n}-{i}"))
                    uow.commit()
                if outcome.decision.allowed:
                    with lock:
                        allowed.append(1)

        run_in_threads(worker, 4)
        assert len(allowed) == 30
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).balance_micros == 0
            assert credit_balance(uow.ledger.account_sums(org.id)) == 0

    def test_lock_serializes_check_then_act(self, storage: StorageBackend) -> None:
        """Eight units of work each lock the wallet, look for a grant and post one only if there is
        none: under the lock exactly one of them finds nothing, on every backend."""
        org = new_org(storage)
        barrier = threading.Barrier(8)

        def worker(n: int) -> None:
            barrier.wait(timeout=10)
            with storage.uow() as uow:
                uow.wallets.lock(org.id)
                if not uow.ledger.list(org.id, kinds=frozenset({EntryKind.GRANT})).items:
                    uow.wallets.post(grant(org.id, 1_000, key=f"once-{n}"))
                uow.commit()

        run_in_threads(worker, 8)
        with storage.uow() as uow:
            assert len(uow.ledger.list(org.id).items) == 1
            assert uow.wallets.lock(org.id).wallet_micros == 1_000

    def test_lock_of_an_unknown_wallet_is_not_found(self, storage: StorageBackend) -> None:
        org = new_org(storage, wallet=False)
        with storage.uow() as uow, pytest.raises(NotFound):
            uow.wallets.lock(org.id)


class DebitEqualsTheReferenceModelContract:
    """A seeded random walk of debits, replays, grants, limit and gate changes across days and
    months, run on the backend and on the in-memory reference in lock step: every outcome and every
    stored wallet must be identical, and each decision must be what ``spend_guard.decide`` says
    for the wallet as it was before the call."""

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_random_walk(self, storage: StorageBackend, seed: int) -> None:
        rng = random.Random(seed)
        org = new_org(storage)
        reference = InMemoryStore()
        with InMemoryUnitOfWork(reference) as ref:
            ref.wallets.create(WalletAccount(organization_id=org.id))
            ref.commit()
        now = NOW.replace(day=28, hour=20)
        keys: list[str] = []
        for step in range(80):
            now += timedelta(hours=rng.choice([0, 0, 1, 5, 30]))
            action = rng.random()
            with storage.uow() as uow, InMemoryUnitOfWork(reference) as ref:
                if action < 0.1:
                    tx = grant(org.id, rng.randrange(1, 3_000), f"g{step}", at=now)
                    assert uow.wallets.post(tx) == ref.wallets.post(tx)
                elif action < 0.2:
                    limits = SpendLimits(credit_line_micros=rng.choice([0, 500]),
                                         minimum_production_credit_micros=rng.choice([0, 100]),
                                         daily_budget_micros=rng.choice([None, 1_500, 4_000]),
                                         monthly_cap_micros=rng.choice([None, 6_000, 20_000]))
                    uow.wallets.set_limits(org.id, limits)
                    ref.wallets.set_limits(org.id, limits)
                elif action < 0.25:
                    gate = rng.choice([SubscriptionGate(), SubscriptionGate(status="active"),
                                       SubscriptionGate(status="past_due", past_due_since=now, grace_days=1),
                                       SubscriptionGate(status="unpaid")])
                    uow.wallets.set_gate(org.id, gate)
                    ref.wallets.set_gate(org.id, gate)
                else:
                    replay = keys and rng.random() < 0.2
                    key = rng.choice(keys) if replay else f"u{step}"
                    amount = rng.randrange(0, 900)
                    tx = usage_tx(org.id, max(amount, 1), key, at=now)
                    before = ref.wallets.get(org.id)
                    got = uow.wallets.debit(org.id, amount, now, tx)
                    expected = ref.wallets.debit(org.id, amount, now, tx)
                    assert got == expected, f"step {step}"
                    if not got.replayed:
                        assert got.decision == decide(before, amount, now)
                    if got.decision.allowed and not replay:
                        keys.append(key)
                if rng.random() < 0.9:
                    uow.commit()
                    ref.commit()
            with storage.uow() as uow, InMemoryUnitOfWork(reference) as ref:
                assert uow.wallets.get(org.id) == ref.wallets.get(org.id), f"step {step}"
        with storage.uow() as uow, InMemoryUnitOfWork(reference) as ref:
            assert uow.ledger.account_sums(org.id) == ref.ledger.account_sums(org.id)
            assert uow.ledger.list(org.id, limit=500) == ref.ledger.list(org.id, limit=500)


    def test_a_refund_posted_with_its_debit_time_gives_the_spend_back_once(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 10_000)
        with storage.uow() as uow:
            uow.wallets.set_limits(org.id, SpendLimits(daily_budget_micros=500))
            assert uow.wallets.debit(org.id, 300, NOW, usage_tx(org.id, 300, "a")).decision.allowed
            assert uow.wallets.debit(org.id, 400, NOW, usage_tx(org.id, 400, "b")).decision.allowed  # crosses
            assert uow.wallets.debit(org.id, 1, NOW, usage_tx(org.id, 1, "c")).decision.reason \
                is DenialReason.DAILY_BUDGET_REACHED
            uow.commit()
        later = NOW + timedelta(hours=2)
        for _ in range(2):  # the second post is a replay: it gives nothing back
            with storage.uow() as uow:
                uow.wallets.lock(org.id)
                uow.wallets.post(usage_refund(org.id, 400, "refund:b", at=later), gives_back_spend_of=NOW)
                uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
            assert (wallet.spent_today_micros, wallet.spent_month_micros) == (300, 300)
            assert wallet.balance_micros == 10_000 - 300
            assert uow.wallets.debit(org.id, 1, later, usage_tx(org.id, 1, "d")).decision.allowed
            uow.commit()

    def test_a_refund_of_an_earlier_day_leaves_that_day_counted(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 10_000)
        with storage.uow() as uow:
            uow.wallets.debit(org.id, 300, NOW, usage_tx(org.id, 300, "a"))
            uow.commit()
        tomorrow = NOW + timedelta(days=1)
        with storage.uow() as uow:
            uow.wallets.post(usage_refund(org.id, 300, "refund:a", at=tomorrow), gives_back_spend_of=NOW)
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org.id)
        assert (wallet.spend_day, wallet.spent_today_micros, wallet.spent_month_micros) == (NOW.date(), 300, 0)

    def test_giving_back_spend_refuses_a_transaction_that_takes_credit(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 10_000)
        with storage.uow() as uow, pytest.raises(InvalidInput):
            uow.wallets.post(usage_tx(org.id, 5, "u"), gives_back_spend_of=NOW)
        with storage.uow() as uow:
            assert uow.ledger.get_by_key(org.id, "u") is None


class LedgerRepositoryContract:
    def test_get_by_key(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        tx = grant(org.id, 42, "k")
        with storage.uow() as uow:
            posted = uow.wallets.post(tx)
            uow.commit()
        with storage.uow() as uow:
            assert uow.ledger.get_by_key(org.id, "k") == posted.transaction
            assert uow.ledger.get_by_key(org.id, "missing") is None
        assert posted.transaction == msgspec.structs.replace(tx, wallet_balance_after=42)

    def test_transaction_round_trips_with_several_postings_in_order(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        tx = LedgerTransaction(
            id=uuid.uuid4(), organization_id=org.id, idempotency_key="close:2026-02",
            kind=EntryKind.INVOICE_CREDIT_APPLIED, description="Applied credit balance to invoice",
            reason="period close", created_at=NOW,
            postings=(Posting(Account.UNBILLED_USAGE, 1_234_567), Posting(Account.WALLET, -1_230_000),
                      Posting(Account.RECEIVABLE, -4_000), Posting(Account.REVENUE, -567)),
            reference="inv-1")
        with storage.uow() as uow:
            stored = uow.wallets.post(tx).transaction
            uow.commit()
        with storage.uow() as uow:
            assert uow.ledger.get_by_key(org.id, "close:2026-02") == stored
            assert stored.postings == tx.postings

    def test_list_is_newest_first_filters_kinds_and_pages_through_everything(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 10**6)
        with storage.uow() as uow:
            for i in range(7):
                uow.wallets.debit(org.id, 10, NOW, usage_tx(org.id, 10, f"u{i}"))
            uow.wallets.post(grant(org.id, 5, "late-grant", at=NOW - timedelta(days=1)))
            uow.commit()
        with storage.uow() as uow:
            everything = uow.ledger.list(org.id, limit=100).items
            assert [t.idempotency_key for t in everything] == [
                "late-grant", "u6", "u5", "u4", "u3", "u2", "u1", "u0", "grant"]
            usage = uow.ledger.list(org.id, kinds=frozenset({EntryKind.USAGE}), limit=100).items
            assert [t.idempotency_key for t in usage] == ["u6", "u5", "u4", "u3", "u2", "u1", "u0"]
            seen: list[str] = []
            cursor: str | None = None
            pages = 0
            while True:
                page = uow.ledger.list(org.id, limit=2, cursor=cursor)
                seen += [t.idempotency_key for t in page.items]
                pages += 1
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == [t.idempotency_key for t in everything]
            assert pages == 5
            page = uow.ledger.list(org.id, kinds=frozenset({EntryKind.GRANT}), limit=1)
            assert [t.idempotency_key for t in page.items] == ["late-grant"]
            rest = uow.ledger.list(org.id, kinds=frozenset({EntryKind.GRANT}), limit=1, cursor=page.next_cursor)
            assert [t.idempotency_key for t in rest.items] == ["grant"] and rest.next_cursor is None

    def test_bad_paging_arguments_are_invalid_input(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            with pytest.raises(InvalidInput):
                uow.ledger.list(org.id, limit=0)
            with pytest.raises(InvalidInput):
                uow.ledger.list(org.id, cursor="not-a-cursor")
            with pytest.raises(InvalidInput):
                uow.ledger.list(org.id, cursor="-3")

    def test_account_sums_by_kind_split_one_account_by_the_kind_of_its_transactions(
            self, storage: StorageBackend) -> None:
        org, other = new_org(storage), new_org(storage, name="Other")
        fund(storage, org.id, 1_000)
        fund(storage, other.id, 77)
        with storage.uow() as uow:
            uow.wallets.post(top_up(org.id, 5_000, "t1"))
            uow.wallets.post(top_up(org.id, 2_500, "t2"))
            uow.wallets.debit(org.id, 300, NOW, usage_tx(org.id, 300, "u"))
            uow.wallets.post(transfer(
                organization_id=org.id, idempotency_key="reversal", kind=EntryKind.PAYMENT_REVERSAL,
                description="Reversal", created_at=NOW, source=Account.WALLET, target=Account.PAYMENT_CLEARING,
                amount_micros=2_500))
            uow.wallets.post(transaction(
                organization_id=org.id, idempotency_key="close", kind=EntryKind.INVOICE_CREDIT_APPLIED,
                description="Applied credit balance to invoice", created_at=NOW,
                postings=[(Account.UNBILLED_USAGE, 300), (Account.WALLET, -300)]))
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.ledger.account_sums_by_kind(org.id, Account.WALLET)
            unbilled = uow.ledger.account_sums_by_kind(org.id, Account.UNBILLED_USAGE)
            sums = uow.ledger.account_sums(org.id)
            nothing = uow.ledger.account_sums_by_kind(uuid.uuid4(), Account.WALLET)
        assert dict(wallet) == {**dict.fromkeys(EntryKind, 0), EntryKind.GRANT: 1_000, EntryKind.TOP_UP: 7_500,
                                EntryKind.PAYMENT_REVERSAL: -2_500, EntryKind.INVOICE_CREDIT_APPLIED: -300}
        assert dict(unbilled) == {**dict.fromkeys(EntryKind, 0), EntryKind.USAGE: -300,
                                  EntryKind.INVOICE_CREDIT_APPLIED: 300}
        assert sum(wallet.values()) == sums[Account.WALLET] and sum(unbilled.values()) == sums[Account.UNBILLED_USAGE]
        assert dict(nothing) == dict.fromkeys(EntryKind, 0)

    def test_account_sums_cover_every_account_from_the_rows(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        fund(storage, org.id, 1_000)
        with storage.uow() as uow:
            uow.wallets.debit(org.id, 300, NOW, usage_tx(org.id, 300, "u"))
            uow.commit()
        with storage.uow() as uow:
            sums = uow.ledger.account_sums(org.id)
        assert dict(sums) == {**dict.fromkeys(Account, 0), Account.WALLET: 1_000, Account.PROMOTIONAL_GRANTS: -1_000,
                              Account.UNBILLED_USAGE: -300, Account.REVENUE: 300}
        assert sum(sums.values()) == 0
        assert credit_balance(sums) == 700
