"""Contract of :class:`~billing_core.ports.HoldRepository` (ADR 0011): holds and the wallet's
``held_micros`` move together, a hold closes once, a settle's charge moves the balance and the
spend counters, and the spend guard counts held credits as spent, on every backend."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from adapters.testing.builders import NOW, PRODUCT, grant, new_org, usage_event, usage_tx
from adapters.testing.storage import StorageBackend
from adapters.testing.threads import run_in_threads
from billing_core.errors import Conflict, NotFound
from billing_core.holds import Hold, HoldStatus, Settlement, closed
from billing_core.spend_guard import decide, decide_and_apply
from billing_core.wallet import SpendLimits, counters_at

TTL = timedelta(minutes=5)


def _hold(org_id: uuid.UUID, amount: int, *, expires_in: timedelta = TTL) -> Hold:
    return Hold(id=uuid.uuid4(), organization_id=org_id, product_id=PRODUCT, amount_micros=amount,
                created_at=NOW, expires_at=NOW + expires_in)


def _funded(storage: StorageBackend, amount: int = 1_000_000) -> uuid.UUID:
    org = new_org(storage)
    with storage.uow() as uow:
        uow.wallets.post(grant(org.id, amount))
        uow.commit()
    return org.id


class HoldRepositoryContract:
    def test_add_and_close_move_held_micros_and_the_spend_guard_counts_them(self, storage: StorageBackend) -> None:
        org = _funded(storage)
        first, second = _hold(org, 400_000), _hold(org, 500_000)
        with storage.uow() as uow:
            uow.wallets.lock(org)
            assert uow.holds.add(first)
            assert uow.holds.add(second)
            assert not uow.holds.add(first), "a hold id is stored once"
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org)
            assert wallet.held_micros == 900_000
            assert wallet.balance_micros == 1_000_000
            assert not decide(wallet, 100_001, NOW).allowed
            assert decide(wallet, 100_000, NOW).allowed
            assert [h.id for h in uow.holds.active(org)] == sorted([first.id, second.id], key=str)
            assert uow.holds.get(org, first.id) == first
            denied = uow.wallets.debit(org, 200_000, NOW, usage_tx(org, 200_000, "usage:plain"))
            assert not denied.decision.allowed, "a plain debit sees the held credits as spent"
        with storage.uow() as uow:
            uow.wallets.lock(org)
            assert uow.holds.close(closed(first, HoldStatus.RELEASED, NOW), now=NOW)
            assert not uow.holds.close(closed(first, HoldStatus.EXPIRED, NOW), now=NOW), "closes once"
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org).held_micros == 500_000
            assert uow.holds.get(org, first.id).status == HoldStatus.RELEASED
            assert [h.id for h in uow.holds.active(org)] == [second.id]

    def test_the_live_usage_path_counts_held_credits_and_keeps_them(self, storage: StorageBackend) -> None:
        org = _funded(storage, 1_500)
        hold = _hold(org, 900)
        with storage.uow() as uow:
            uow.wallets.lock(org)
            assert uow.holds.add(hold)
            uow.commit()
        too_much, fits = usage_event(org, "too-much", quantity=5), usage_event(org, "fits", quantity=4)
        with storage.uow() as uow:
            seen = uow.usage.lock_for_event(org, "fits", None, PRODUCT, NOW)
            assert seen.wallet.held_micros == 900
            assert seen.wallet == uow.wallets.get(org)
            decision, stored = decide_and_apply(seen.wallet, too_much.amount_micros, NOW,
                                                usage_tx(org, too_much.amount_micros, "usage:too-much"))
            assert not decision.allowed and stored is None, "spent + held <= the balance on the live path too"
            version = seen.wallet.version
            decision, stored = decide_and_apply(seen.wallet, fits.amount_micros, NOW,
                                                usage_tx(org, fits.amount_micros, "usage:fits"))
            assert decision.allowed and stored is not None
            assert uow.usage.record_debit(fits, stored, seen.wallet, version)
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org)
            assert (wallet.balance_micros, wallet.held_micros) == (900, 900), "the debit's write keeps held_micros"
            assert [h.id for h in uow.holds.active(org)] == [hold.id]
            assert not decide(wallet, 1, NOW).allowed

    def test_settle_charges_the_actual_amount_and_releases_the_rest(self, storage: StorageBackend) -> None:
        org = _funded(storage)
        hold = _hold(org, 400_000)
        with storage.uow() as uow:
            uow.wallets.lock(org)
            uow.holds.add(hold)
            uow.commit()
        charge = usage_tx(org, 150_000, "usage:evt-1")
        settled = closed(hold, HoldStatus.SETTLED, NOW, event_id="evt-1", quantity=3,
                         settlement=Settlement(charge_micros=150_000))
        with storage.uow() as uow:
            uow.wallets.lock(org)
            assert uow.holds.close(settled, now=NOW, charge=charge)
            uow.commit()
        with storage.uow() as uow:
            wallet = uow.wallets.get(org)
            assert (wallet.balance_micros, wallet.held_micros) == (850_000, 0)
            assert counters_at(wallet, NOW).today == 150_000
            stored = uow.ledger.get_by_key(org, "usage:evt-1")
            assert stored is not None and stored.wallet_balance_after == 850_000
            assert uow.holds.get(org, hold.id) == settled
        with storage.uow() as uow:
            uow.wallets.lock(org)
            assert not uow.holds.close(settled, now=NOW, charge=usage_tx(org, 150_000, "usage:evt-2"))
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org).balance_micros == 850_000, "a second settle charges nothing"
            assert uow.ledger.get_by_key(org, "usage:evt-2") is None

    def test_a_charge_whose_key_is_taken_is_a_conflict_and_writes_nothing(self, storage: StorageBackend) -> None:
        org = _funded(storage)
        hold = _hold(org, 400_000)
        with storage.uow() as uow:
            uow.wallets.lock(org)
            uow.holds.add(hold)
            uow.wallets.debit(org, 10_000, NOW, usage_tx(org, 10_000, "usage:taken"))
            uow.commit()
        with storage.uow() as uow:
            uow.wallets.lock(org)
            try:
                uow.holds.close(closed(hold, HoldStatus.SETTLED, NOW, event_id="taken", quantity=1),
                                now=NOW, charge=usage_tx(org, 20_000, "usage:taken"))
            except Conflict:
                pass
            else:  # pragma: no cover - the contract's failure
                raise AssertionError("a taken ledger key must be refused")
        with storage.uow() as uow:
            assert uow.holds.get(org, hold.id).status == HoldStatus.ACTIVE
            assert uow.wallets.get(org).held_micros == 400_000

    def test_settled_by_event_finds_the_hold_a_settle_closed(self, storage: StorageBackend) -> None:
        org, other = _funded(storage), _funded(storage)
        settled_hold, released_hold, active_hold = _hold(org, 400_000), _hold(org, 100_000), _hold(org, 100_000)
        settled = closed(settled_hold, HoldStatus.SETTLED, NOW, event_id="evt-explained", quantity=3,
                         settlement=Settlement(charge_micros=150_000))
        with storage.uow() as uow:
            uow.wallets.lock(org)
            for hold in (settled_hold, released_hold, active_hold):
                assert uow.holds.add(hold)
            assert uow.holds.close(settled, now=NOW, charge=usage_tx(org, 150_000, "usage:evt-explained"))
            assert uow.holds.close(closed(released_hold, HoldStatus.RELEASED, NOW), now=NOW)
            uow.commit()
        with storage.uow() as uow:
            assert uow.holds.settled_by_event(org, "evt-explained") == settled
            assert uow.holds.settled_by_event(org, "evt-other") is None
            assert uow.holds.settled_by_event(other, "evt-explained") is None, "scoped by organization"

    def test_due_lists_expired_active_holds_across_organizations(self, storage: StorageBackend) -> None:
        a, b = _funded(storage), _funded(storage)
        soon, later, fresh = _hold(a, 1_000, expires_in=timedelta(seconds=1)), \
            _hold(b, 1_000, expires_in=timedelta(seconds=2)), _hold(a, 1_000, expires_in=timedelta(hours=1))
        with storage.uow() as uow:
            for hold in (soon, later, fresh):
                uow.wallets.lock(hold.organization_id)
                uow.holds.add(hold)
            uow.commit()
        with storage.uow() as uow:
            assert [h.id for h in uow.holds.due(NOW + timedelta(seconds=5))] == [soon.id, later.id]
            assert [h.id for h in uow.holds.due(NOW + timedelta(seconds=5), limit=1)] == [soon.id]
            assert uow.holds.due(NOW) == []

    def test_scoped_uncommitted_and_missing(self, storage: StorageBackend) -> None:
        a, b = _funded(storage), _funded(storage)
        hold = _hold(a, 1_000)
        with storage.uow() as uow:
            uow.wallets.lock(a)
            uow.holds.add(hold)
        with storage.uow() as uow:
            assert uow.holds.find(a, hold.id) is None, "an uncommitted hold leaves nothing"
            assert uow.wallets.get(a).held_micros == 0
            uow.wallets.lock(a)
            uow.holds.add(hold)
            uow.commit()
        with storage.uow() as uow:
            assert uow.holds.find(b, hold.id) is None
            try:
                uow.holds.get(b, hold.id)
            except NotFound:
                pass
            else:  # pragma: no cover
                raise AssertionError("another organization's hold is NotFound")

    def test_concurrent_holds_never_exceed_the_balance(self, storage: StorageBackend) -> None:
        org = _funded(storage, 1_000_000)
        with storage.uow() as uow:
            uow.wallets.set_limits(org, SpendLimits(daily_budget_micros=10_000_000))
            uow.commit()
        barrier = threading.Barrier(8)
        granted: list[int] = []

        def worker(n: int) -> None:
            barrier.wait(timeout=10)
            for _ in range(4):
                with storage.uow() as uow:
                    wallet = uow.wallets.lock(org)
                    if decide(wallet, 100_000, NOW).allowed and uow.holds.add(_hold(org, 100_000)):
                        uow.commit()
                        granted.append(n)

        run_in_threads(worker, 8)
        assert len(granted) == 10
        with storage.uow() as uow:
            assert uow.wallets.get(org).held_micros == 1_000_000
            assert sum(h.amount_micros for h in uow.holds.active(org)) == 1_000_000
