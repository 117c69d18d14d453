"""Contract of :class:`~billing_core.ports.GrantRepository` (ADR 0016) and of
:meth:`~billing_core.ports.LedgerRepository.after` and ``balance_moves``: the ledger read forward from a cursor, grants
and movements stored with the cursor in one conditional step, terms kept first-wins, and the
worker's cross-organization reads (due expiries, organizations behind), on every backend."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
import pytest

from adapters.testing.builders import NOW, grant, new_org, top_up, usage_tx
from adapters.testing.storage import StorageBackend
from billing_core.errors import InvalidInput
from billing_core.grants import Grant, GrantSource, GrantTerms, MovementSpan
from billing_core.ledger import BalanceMove, EntryKind
from billing_core.ports import GrantCursor


def _grant(org: uuid.UUID, amount: int, *, remaining: int | None = None, expires_in: timedelta | None = None,
           source: GrantSource = GrantSource.PROMOTION, age: timedelta = timedelta(0)) -> Grant:
    return Grant(id=uuid.uuid4(), organization_id=org, source=source, amount_micros=amount,
                 remaining_micros=amount if remaining is None else remaining, created_at=NOW + age,
                 expires_at=None if expires_in is None else NOW + expires_in, priority=1,
                 created_by=uuid.uuid4(), reference="payment-1")


def _span(org: uuid.UUID, tx: uuid.UUID, grant_id: uuid.UUID | None, amount: int, first: int,
          last: int | None = None) -> MovementSpan:
    return MovementSpan(organization_id=org, transaction_id=tx, grant_id=grant_id, amount_micros=amount,
                        first_sequence=first, last_sequence=first if last is None else last)


def _three_moves_and_another_org(storage: StorageBackend) -> tuple[uuid.UUID, uuid.UUID]:
    """An organization whose ledger holds a grant "a", a usage debit "b" and a top-up "c", in that
    order, and another organization with a grant "x" posted between them."""
    org, other = new_org(storage).id, new_org(storage).id
    with storage.uow() as uow:
        uow.wallets.post(grant(org, 500, "a"))
        uow.wallets.post(grant(other, 100, "x"))
        uow.wallets.debit(org, 200, NOW, usage_tx(org, 200, "b"))
        uow.wallets.post(top_up(org, 300, "c"))
        uow.commit()
    return org, other


class GrantRepositoryContract:
    def test_the_ledger_reads_forward_from_a_sequence_in_append_order(self, storage: StorageBackend) -> None:
        org, other = _three_moves_and_another_org(storage)
        with storage.uow() as uow:
            every = uow.ledger.after(org, 0)
            assert [s.transaction.idempotency_key for s in every] == ["a", "b", "c"]
            sequences = [s.sequence for s in every]
            assert sequences == sorted(set(sequences))
            assert every[1].transaction.balance_delta == -200, "postings come with the transaction"
            assert [s.transaction.idempotency_key for s in uow.ledger.after(org, sequences[0])] == ["b", "c"]
            assert [s.transaction.idempotency_key for s in uow.ledger.after(org, sequences[0], limit=1)] == ["b"]
            assert uow.ledger.after(org, sequences[-1]) == []
            assert [s.transaction.idempotency_key for s in uow.ledger.after(other, 0)] == ["x"]
            with pytest.raises(InvalidInput):
                uow.ledger.after(org, 0, limit=0)

    def test_balance_moves_are_the_ledger_read_forward_reduced_to_what_allocation_reads(
            self, storage: StorageBackend) -> None:
        org, other = _three_moves_and_another_org(storage)
        with storage.uow() as uow:
            every = uow.ledger.after(org, 0)
            moves = uow.ledger.balance_moves(org, 0)
            assert moves == [BalanceMove.of(s.sequence, s.transaction) for s in every]
            assert [(m.idempotency_key, m.balance_delta) for m in moves] == [("a", 500), ("b", -200), ("c", 300)]
            assert moves[1].kind == EntryKind.USAGE and moves[1].created_at == NOW
            first = moves[0].sequence
            assert [m.idempotency_key for m in uow.ledger.balance_moves(org, first)] == ["b", "c"]
            assert [m.idempotency_key for m in uow.ledger.balance_moves(org, first, limit=1)] == ["b"]
            assert uow.ledger.balance_moves(org, moves[-1].sequence) == []
            assert [m.idempotency_key for m in uow.ledger.balance_moves(other, 0)] == ["x"]
            with pytest.raises(InvalidInput):
                uow.ledger.balance_moves(org, 0, limit=0)

    def test_balance_move_is_one_transaction_as_balance_moves_reads_it(self, storage: StorageBackend) -> None:
        org, other = _three_moves_and_another_org(storage)
        with storage.uow() as uow:
            moves = uow.ledger.balance_moves(org, 0)
            assert [uow.ledger.balance_move(org, m.id) for m in moves] == moves
            assert uow.ledger.balance_move(org, uuid.uuid4()) is None
            assert uow.ledger.balance_move(other, moves[1].id) is None, "another organization's transaction"

    def test_apply_stores_grants_movements_and_cursor_once(self, storage: StorageBackend) -> None:
        org = new_org(storage).id
        promo = _grant(org, 1_000, expires_in=timedelta(days=1))
        paid = _grant(org, 500, source=GrantSource.PURCHASE, age=timedelta(seconds=1))
        tx = uuid.uuid4()
        spans = [_span(org, tx, promo.id, -300, 7), _span(org, tx, None, -50, 7)]
        with storage.uow() as uow:
            assert uow.grants.cursor(org) == GrantCursor(organization_id=org)
            assert uow.grants.apply(GrantCursor(organization_id=org, sequence=7, uncovered_micros=50),
                                    [promo, paid], spans, expected_sequence=0)
            # A second catch-up that read the old cursor writes nothing.
            assert not uow.grants.apply(GrantCursor(organization_id=org, sequence=9), [paid], spans,
                                        expected_sequence=0)
            uow.commit()
        used = msgspec.structs.replace(promo, remaining_micros=400)
        run = _span(org, uuid.uuid4(), promo.id, -300, 9, 12)
        with storage.uow() as uow:
            assert uow.grants.cursor(org) == GrantCursor(organization_id=org, sequence=7, uncovered_micros=50)
            assert uow.grants.spans_at(org, 7) == spans
            assert uow.grants.apply(GrantCursor(organization_id=org, sequence=12), [used], [run],
                                    expected_sequence=7)
            uow.commit()
        with storage.uow() as uow:
            assert uow.grants.cursor(org).sequence == 12
            assert uow.grants.open(org) == [used, paid]
            assert uow.grants.list(org) == [paid, used]
            assert uow.grants.get_many(org, [used.id, uuid.uuid4()]) == [used]
            assert dict(uow.grants.span_totals(org)) == {(7, 7): -350, (9, 12): -300}

    def test_spans_at_finds_the_spans_that_cover_a_sequence(self, storage: StorageBackend) -> None:
        org, other = new_org(storage).id, new_org(storage).id
        g1, g2 = uuid.uuid4(), uuid.uuid4()
        own = [_span(org, uuid.uuid4(), g1, -10, 3), _span(org, uuid.uuid4(), g2, -5, 3)]  # one transaction, two grants
        run = _span(org, uuid.uuid4(), g2, -40, 5, 9)
        late = _span(org, uuid.uuid4(), None, -7, 20)
        with storage.uow() as uow:
            assert uow.grants.apply(GrantCursor(organization_id=org, sequence=20), [], [*own, run, late],
                                    expected_sequence=0)
            assert uow.grants.apply(GrantCursor(organization_id=other, sequence=6),
                                    [], [_span(other, uuid.uuid4(), g1, -1, 6)], expected_sequence=0)
            uow.commit()
        with storage.uow() as uow:
            assert uow.grants.spans_at(org, 3) == own
            assert [uow.grants.spans_at(org, seq) for seq in (5, 6, 9)] == [[run]] * 3
            assert uow.grants.spans_at(org, 20) == [late]
            for uncovered in (1, 2, 4, 10, 19, 21):
                assert uow.grants.spans_at(org, uncovered) == [], uncovered
            assert uow.grants.spans_at(other, 3) == []
            assert dict(uow.grants.span_totals(other)) == {(6, 6): -1}

    def test_apply_refuses_a_span_that_ends_before_it_starts_and_writes_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage).id
        made = _grant(org, 100)
        with storage.uow() as uow:
            with pytest.raises(InvalidInput):
                uow.grants.apply(GrantCursor(organization_id=org, sequence=9), [made],
                                 [_span(org, uuid.uuid4(), made.id, 100, 9, 8)], expected_sequence=0)
            assert uow.grants.list(org) == []
            assert uow.grants.cursor(org).sequence == 0
            assert dict(uow.grants.span_totals(org)) == {}
            uow.commit()  # the unit of work is still usable

    @pytest.mark.parametrize("take", ["lock_cursor", "try_lock_cursor"])
    def test_the_locked_cursor_reads_as_the_cursor_and_a_first_catch_up_still_moves_it(
            self, storage: StorageBackend, take: str) -> None:
        """Either way of taking the cursor (``try_lock_cursor`` finds no other holder here)."""
        org = new_org(storage).id
        with storage.uow() as uow:
            assert getattr(uow.grants, take)(org) == GrantCursor(organization_id=org)
            assert uow.grants.apply(GrantCursor(organization_id=org, sequence=4, uncovered_micros=9), [], [],
                                    expected_sequence=0)
            uow.commit()
        with storage.uow() as uow:
            assert getattr(uow.grants, take)(org) == GrantCursor(organization_id=org, sequence=4, uncovered_micros=9)
            assert uow.grants.cursor(org) == getattr(uow.grants, take)(org)
        other = new_org(storage).id
        with storage.uow() as uow:  # locked, then rolled back: nothing allocated, still at the start
            assert getattr(uow.grants, take)(other).sequence == 0
        with storage.uow() as uow:
            assert uow.grants.cursor(other) == GrantCursor(organization_id=other)
            assert uow.grants.apply(GrantCursor(organization_id=other, sequence=2), [], [], expected_sequence=0)
            uow.commit()
        with storage.uow() as uow:
            assert uow.grants.cursor(other).sequence == 2

    def test_a_rolled_back_allocation_leaves_nothing(self, storage: StorageBackend) -> None:
        org = new_org(storage).id
        with storage.uow() as uow:
            uow.grants.apply(GrantCursor(organization_id=org, sequence=3), [_grant(org, 10)], [], expected_sequence=0)
        with storage.uow() as uow:
            assert uow.grants.cursor(org).sequence == 0
            assert uow.grants.list(org) == []

    def test_rows_are_scoped_and_remaining_stays_within_the_amount(self, storage: StorageBackend) -> None:
        org, other = new_org(storage).id, new_org(storage).id
        mine = _grant(org, 10)
        with storage.uow() as uow:
            uow.grants.apply(GrantCursor(organization_id=org, sequence=1), [mine], [], expected_sequence=0)
            uow.commit()
        with storage.uow() as uow:
            assert uow.grants.open(other) == [] and uow.grants.get_many(other, [mine.id]) == []
            with pytest.raises(InvalidInput):
                uow.grants.apply(GrantCursor(organization_id=other, sequence=1), [mine], [], expected_sequence=0)
        with storage.uow() as uow, pytest.raises(InvalidInput):
            uow.grants.apply(GrantCursor(organization_id=org, sequence=2),
                             [msgspec.structs.replace(mine, remaining_micros=11)], [], expected_sequence=1)

    def test_terms_are_first_wins_and_scoped(self, storage: StorageBackend) -> None:
        org, other = new_org(storage).id, new_org(storage).id
        first = GrantTerms(organization_id=org, idempotency_key="promo:1", source=GrantSource.PROMOTION,
                           expires_at=NOW + timedelta(days=3), priority=2)
        with storage.uow() as uow:
            uow.grants.put_terms(first)
            uow.grants.put_terms(msgspec.structs.replace(first, source=GrantSource.TRIAL, priority=9))
            uow.commit()
        with storage.uow() as uow:
            assert uow.grants.terms(org, ["promo:1", "nope"]) == {"promo:1": first}
            assert uow.grants.terms(other, ["promo:1"]) == {}

    def test_due_and_behind_find_work_across_organizations(self, storage: StorageBackend) -> None:
        first, second = new_org(storage).id, new_org(storage).id
        soon = _grant(first, 10, expires_in=timedelta(hours=1))
        sooner = _grant(second, 10, expires_in=timedelta(minutes=1))
        later = _grant(second, 10, expires_in=timedelta(days=1))
        spent = _grant(first, 10, remaining=0, expires_in=timedelta(minutes=1))
        expired = msgspec.structs.replace(_grant(first, 10, expires_in=timedelta(minutes=1)), expired_by=uuid.uuid4())
        with storage.uow() as uow:
            uow.wallets.post(grant(first, 500, "a"))
            uow.wallets.post(grant(second, 500, "b"))
            uow.commit()
        with storage.uow() as uow:
            assert sorted(uow.grants.behind(), key=str) == sorted([first, second], key=str)
            last = uow.ledger.after(first, 0)[-1].sequence
            uow.grants.apply(GrantCursor(organization_id=first, sequence=last), [soon, spent, expired], [],
                             expected_sequence=0)
            uow.grants.apply(GrantCursor(organization_id=second, sequence=1), [sooner, later], [],
                             expected_sequence=0)
            uow.commit()
        with storage.uow() as uow:
            assert uow.grants.due(NOW + timedelta(hours=2)) == [sooner, soon]
            assert uow.grants.due(NOW + timedelta(hours=2), limit=1) == [sooner]
            assert uow.grants.due(NOW) == []
            behind = uow.grants.behind()
            assert first not in behind
            assert (second in behind) == (uow.ledger.after(second, 1) != [])
