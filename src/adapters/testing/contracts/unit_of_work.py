"""Contract of :class:`billing_core.ports.UnitOfWork`: one transaction over every repository."""

from __future__ import annotations

import pytest

from adapters.testing.builders import NOW, fund, grant, new_org, outbox_message, payment, usage_event
from adapters.testing.storage import StorageBackend
from adapters.testing.threads import run_in_threads
from billing_core.errors import NotFound
from billing_core.ledger import Account


class UnitOfWorkContract:
    def test_commit_makes_every_repository_write_visible_to_the_next_unit_of_work(
            self, storage: StorageBackend) -> None:
        org = new_org(storage)
        pay = payment(org.id)
        with storage.uow() as uow:
            uow.wallets.post(grant(org.id, 5_000_000))
            uow.payments.add(pay)
            uow.usage.record(usage_event(org.id, "e-1"))
            assert uow.outbox.add(outbox_message(org.id, "k-1"))
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 5_000_000
            assert uow.payments.get(org.id, pay.id) == pay
            assert uow.usage.get_event(org.id, "e-1") is not None
            assert [m.dedupe_key for m in uow.outbox.list(organization_id=org.id)] == ["k-1"]

    def test_leaving_without_commit_rolls_back_everything(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        pay = payment(org.id)
        with storage.uow() as uow:
            uow.wallets.post(grant(org.id, 5_000_000))
            uow.payments.add(pay)
            uow.usage.record(usage_event(org.id, "e-1"))
            uow.outbox.add(outbox_message(org.id, "k-1"))
            assert uow.invoices.next_number("INV-") == "INV-000001"
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 0
            assert uow.ledger.get_by_key(org.id, "grant") is None
            assert uow.ledger.account_sums(org.id)[Account.WALLET] == 0
            with pytest.raises(NotFound):
                uow.payments.get(org.id, pay.id)
            assert uow.usage.get_event(org.id, "e-1") is None
            assert uow.usage.uninvoiced(org.id, NOW.replace(year=2100)) == []
            assert uow.outbox.list(organization_id=org.id) == []
            assert uow.invoices.next_number("INV-") == "INV-000001"

    def test_an_exception_inside_the_block_rolls_back_and_propagates(self, storage: StorageBackend) -> None:
        org = new_org(storage)

        def fail_midway() -> None:
            with storage.uow() as uow:
                uow.wallets.post(grant(org.id, 1_000))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            fail_midway()
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 0

    def test_explicit_rollback_discards_and_the_unit_of_work_stays_usable(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            uow.wallets.post(grant(org.id, 1_000, "a"))
            uow.rollback()
            uow.wallets.post(grant(org.id, 2_000, "b"))
            uow.commit()
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 2_000
            assert uow.ledger.get_by_key(org.id, "a") is None

    def test_work_after_a_commit_is_a_new_transaction(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            uow.wallets.post(grant(org.id, 1_000, "a"))
            uow.commit()
            uow.wallets.post(grant(org.id, 2_000, "b"))
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 1_000

    def test_reads_inside_see_own_uncommitted_writes(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        with storage.uow() as uow:
            uow.wallets.post(grant(org.id, 1_000))
            assert uow.wallets.get(org.id).wallet_micros == 1_000
            assert uow.ledger.get_by_key(org.id, "grant") is not None

    def test_committed_is_recorded(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        uow = storage.uow()
        with uow:
            uow.wallets.get(org.id)
            assert not getattr(uow, "committed", False)
            uow.commit()
            assert getattr(uow, "committed", True)

    def test_a_unit_of_work_cannot_be_entered_twice_at_once(self, storage: StorageBackend) -> None:
        uow = storage.uow()
        with uow, pytest.raises(RuntimeError):
            uow.__enter__()

    def test_a_unit_of_work_can_be_used_again_after_exit(self, storage: StorageBackend) -> None:
        org = new_org(storage)
        uow = storage.uow()
        with uow:
            uow.wallets.post(grant(org.id, 1_000, "a"))
            uow.commit()
        with uow:
            uow.wallets.post(grant(org.id, 1_000, "b"))
            uow.commit()
        with storage.uow() as check:
            assert check.wallets.get(org.id).wallet_micros == 2_000

    def test_units_of_work_in_threads_serialize_their_read_modify_writes(self, storage: StorageBackend) -> None:
        """Four threads each post 10 grants through their own units of work: nothing is lost."""
        org = new_org(storage)
        fund(storage, org.id, 1, "seed")

        def worker(n: int) -> None:
            for i in range(10):
                with storage.uow() as uow:
                    uow.wallets.post(grant(org.id, 100, f"t{n}-{i}"))
                    uow.commit()

        run_in_threads(worker, 4)
        with storage.uow() as uow:
            assert uow.wallets.get(org.id).wallet_micros == 1 + 4 * 10 * 100
            assert uow.ledger.account_sums(org.id)[Account.WALLET] == 1 + 4 * 10 * 100
