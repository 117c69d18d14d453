"""A hypothesis state machine over the in-memory wallet and ledger.

Random sequences of top-ups, usage debits (through the atomic ``uow.wallets.debit``), automatic
refunds, grants and their expiry, period closes, retried keys, abandoned units of work, days
passing, and holds (ADR 0011) placed, settled (under every over-hold rule, twice), released (twice)
and expired by the worker's step. After EVERY step: all transactions balance, the stored balances
are the sums of the postings, the balance never passes the credit line, the wallet's held credits
are the active holds', no hold is left active past its expiry once the worker ran, a UTC day's
(month's) usage plus held credits never pass its budget (cap) but by the one call that crossed it
(a hold must fit), the counters match an independent model (refunds give back the current day's
and month's spend), and every idempotency key was applied once.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters.fakes import FixedClock, InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import PRODUCT, usage_refund, usage_tx
from billing_core.holds import Hold, HoldOverrun, HoldStatus, Settlement, closed
from billing_core.holds import settle as settle_hold
from billing_core.ledger import Account, EntryKind, LedgerTransaction, check_balanced, transaction, transfer
from billing_core.spend_guard import DenialReason, decide
from billing_core.wallet import SpendLimits, WalletAccount, counters_at, month_key
from tests.unit.domain_builders import DOLLAR, ORG

T0 = datetime(2026, 1, 30, 21, 0, tzinfo=UTC)

limits_strategy = st.builds(
    SpendLimits,
    credit_line_micros=st.sampled_from([0, 10 * DOLLAR, 50 * DOLLAR]),
    minimum_production_credit_micros=st.sampled_from([0, DOLLAR]),
    daily_budget_micros=st.one_of(st.none(), st.integers(min_value=DOLLAR, max_value=40 * DOLLAR)),
    monthly_cap_micros=st.one_of(st.none(), st.integers(min_value=2 * DOLLAR, max_value=60 * DOLLAR)),
)
money = st.integers(min_value=1, max_value=30 * DOLLAR)
spend = st.integers(min_value=1, max_value=12 * DOLLAR)


class WalletMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = InMemoryStore()
        self.clock = FixedClock(T0)
        self.limits = SpendLimits()
        self.seq = 0
        self.keys: set[str] = set()
        """Every idempotency key applied so far (each exactly once)."""
        self.open_debits: dict[str, int] = {}
        """Usage debits not yet invoiced by a period close: key → amount."""
        self.debited_at: dict[str, datetime] = {}
        self.last_debit: dict[date | str, int] = {}
        """The last allowed debit of each day and month: what may lie past the budget."""
        self.refunded: set[str] = set()
        self.grants: dict[str, int] = {}
        """Grants that have not expired: key → amount."""
        self.per_day: dict[date, int] = defaultdict(int)
        self.per_month: dict[str, int] = defaultdict(int)
        self.active_holds: dict[str, Hold] = {}
        """Holds not settled, released or expired: id (text) → hold."""
        self.closed_holds: dict[str, Hold] = {}

    # ------------------------------------------------------------------ helpers

    def uow(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store)

    def wallet(self) -> WalletAccount:
        with self.uow() as uow:
            return uow.wallets.get(ORG)

    def key(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq}"

    def post(self, tx: LedgerTransaction) -> None:
        with self.uow() as uow:
            posted = uow.wallets.post(tx)
            uow.commit()
        assert not posted.replayed
        self.keys.add(tx.idempotency_key)

    def held(self) -> int:
        return sum(h.amount_micros for h in self.active_holds.values())

    def expected_denial(self, amount: int, balance: int, *, reserve: bool = False) -> DenialReason | None:
        """The spend guard's answer as the model sees it: held credits count as used; a call is
        denied once used reaches a budget (the crossing call runs), a hold (``reserve``) must fit."""
        now = self.clock.now()
        day, month = now.date(), month_key(now.date())
        budget, cap = self.limits.daily_budget_micros, self.limits.monthly_cap_micros
        floor = self.limits.minimum_production_credit_micros - self.limits.credit_line_micros
        used_day, used_month = self.per_day[day] + self.held(), self.per_month[month] + self.held()
        reserving = amount if reserve else 0
        if budget is not None and (used_day >= budget or used_day + reserving > budget):
            return DenialReason.DAILY_BUDGET_REACHED
        if cap is not None and (used_month >= cap or used_month + reserving > cap):
            return DenialReason.MONTHLY_BUDGET_REACHED
        if balance - self.held() - amount < floor:
            return DenialReason.INSUFFICIENT_CREDIT
        return None

    def transactions(self) -> list[LedgerTransaction]:
        return [tx for tx in self.store.ledger.values() if tx.organization_id == ORG]

    # ------------------------------------------------------------------ rules

    @initialize(limits=limits_strategy)
    def open_wallet(self, limits: SpendLimits) -> None:
        self.limits = limits
        with self.uow() as uow:
            uow.wallets.create(WalletAccount(organization_id=ORG, limits=limits))
            uow.commit()

    @rule(amount=money)
    def top_up(self, amount: int) -> None:
        self.post(transfer(organization_id=ORG, idempotency_key=self.key("top-up"), kind=EntryKind.TOP_UP,
                           description="Add Credits", created_at=self.clock.now(), source=Account.PAYMENT_CLEARING,
                           target=Account.WALLET, amount_micros=amount))

    @rule(amount=spend)
    def usage_debit(self, amount: int) -> None:
        now = self.clock.now()
        before = self.wallet()
        key = self.key("usage")
        with self.uow() as uow:
            outcome = uow.wallets.debit(ORG, amount, now, usage_tx(ORG, amount, key, at=now))
            uow.commit()
        day, month = now.date(), month_key(now.date())
        floor = self.limits.minimum_production_credit_micros - self.limits.credit_line_micros
        expected = self.expected_denial(amount, before.balance_micros)
        assert outcome.decision.reason is expected
        assert not outcome.replayed
        if expected is None:
            assert outcome.transaction is not None
            assert outcome.wallet.balance_micros == before.balance_micros - amount >= floor
            self.keys.add(key)
            self.open_debits[key] = amount
            self.debited_at[key] = now
            self.per_day[day] += amount
            self.per_month[month] += amount
            self.last_debit[day] = self.last_debit[month] = amount
        else:
            assert outcome.transaction is None
            assert self.wallet() == before

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data(), amount=money)
    def retry_a_used_key(self, data: st.DataObject, amount: int) -> None:
        """A retry with a key already used changes nothing, whatever it carries."""
        key = data.draw(st.sampled_from(sorted(self.keys)))
        before, count = self.wallet(), len(self.transactions())
        now = self.clock.now()
        with self.uow() as uow:
            if data.draw(st.booleans()):
                outcome = uow.wallets.debit(ORG, amount, now, usage_tx(ORG, amount, key, at=now))
                assert outcome.replayed and outcome.decision.allowed
                assert outcome.transaction is not None and outcome.transaction.idempotency_key == key
            else:
                posted = uow.wallets.post(transfer(
                    organization_id=ORG, idempotency_key=key, kind=EntryKind.TOP_UP, description="retry",
                    created_at=now, source=Account.PAYMENT_CLEARING, target=Account.WALLET, amount_micros=amount))
                assert posted.replayed and posted.transaction.idempotency_key == key
            uow.commit()
        assert self.wallet() == before
        assert len(self.transactions()) == count

    @rule(amount=money, debit=st.booleans())
    def abandoned_unit_of_work(self, amount: int, debit: bool) -> None:
        """Leaving the unit of work without commit() undoes everything done inside it."""
        before, count = self.wallet(), len(self.transactions())
        now = self.clock.now()
        with self.uow() as uow:
            if debit:
                uow.wallets.debit(ORG, amount, now, usage_tx(ORG, amount, "abandoned", at=now))
            else:
                uow.wallets.post(transfer(organization_id=ORG, idempotency_key="abandoned", kind=EntryKind.GRANT,
                                          description="Free Trial Credits", created_at=now,
                                          source=Account.PROMOTIONAL_GRANTS, target=Account.WALLET,
                                          amount_micros=amount))
        assert self.wallet() == before
        assert len(self.transactions()) == count
        with self.uow() as uow:
            assert uow.ledger.get_by_key(ORG, "abandoned") is None

    @precondition(lambda self: bool(self.open_debits))
    @rule(data=st.data())
    def automatic_refund(self, data: st.DataObject) -> None:
        """A failed generation is reimbursed, once: a second refund of the same debit is a replay."""
        debit_key = data.draw(st.sampled_from(sorted(self.open_debits)))
        key = f"refund:{debit_key}"
        before, now, amount = self.wallet(), self.clock.now(), self.open_debits[debit_key]
        debited = self.debited_at[debit_key]
        with self.uow() as uow:
            posted = uow.wallets.post(usage_refund(ORG, amount, key, at=now), gives_back_spend_of=debited)
            uow.commit()
        assert posted.replayed is (debit_key in self.refunded)
        if posted.replayed:
            assert self.wallet() == before
        else:
            assert self.wallet().balance_micros == before.balance_micros + amount
            assert posted.transaction.reason == "failed generation reimbursed"
            # The spend leaves the counters of its day and month while they are the current ones.
            if debited.date() == now.date():
                self.per_day[now.date()] -= amount
            if month_key(debited.date()) == month_key(now.date()):
                self.per_month[month_key(now.date())] -= amount
            self.refunded.add(debit_key)
            self.keys.add(key)

    @rule(amount=money)
    def grant(self, amount: int) -> None:
        key = self.key("grant")
        self.post(transfer(organization_id=ORG, idempotency_key=key, kind=EntryKind.GRANT,
                           description="Free Trial Credits", created_at=self.clock.now(),
                           source=Account.PROMOTIONAL_GRANTS, target=Account.WALLET, amount_micros=amount))
        self.grants[key] = amount

    @precondition(lambda self: bool(self.grants))
    @rule(data=st.data())
    def grant_expires(self, data: st.DataObject) -> None:
        """Only the unused part of a grant expires: never more than a positive balance holds."""
        grant_key = data.draw(st.sampled_from(sorted(self.grants)))
        # Neither what is spent nor what holds reserve expires.
        amount = min(self.grants.pop(grant_key), max(self.wallet().balance_micros - self.held(), 0))
        if amount > 0:
            self.post(transfer(organization_id=ORG, idempotency_key=f"expire:{grant_key}",
                               kind=EntryKind.GRANT_EXPIRY, description="Free Trial Credits expired",
                               created_at=self.clock.now(), source=Account.WALLET,
                               target=Account.PROMOTIONAL_GRANTS, amount_micros=amount))

    @rule()
    def period_close(self) -> None:
        """Uninvoiced usage is cleared: the wallet pays what it holds, the rest is owed."""
        before = self.wallet()
        used = -before.unbilled_micros
        assert used >= 0
        self.open_debits.clear()
        self.refunded.clear()
        if used == 0:
            return
        applied = min(max(before.wallet_micros, 0), used)
        postings = [(Account.UNBILLED_USAGE, used), (Account.WALLET, -applied), (Account.RECEIVABLE, applied - used)]
        self.post(transaction(organization_id=ORG, idempotency_key=self.key("close"),
                              kind=EntryKind.INVOICE_CREDIT_APPLIED, description="Applied credit balance to invoice",
                              created_at=self.clock.now(), postings=[(a, m) for a, m in postings if m != 0]))
        after = self.wallet()
        assert after.unbilled_micros == 0
        assert after.wallet_micros == before.wallet_micros - applied
        assert after.balance_micros >= before.balance_micros  # closing never costs credit

    @rule(amount=spend, ttl=st.sampled_from([timedelta(minutes=10), timedelta(hours=5), timedelta(days=1)]))
    def place_hold(self, amount: int, ttl: timedelta) -> None:
        now = self.clock.now()
        before = self.wallet()
        expected = self.expected_denial(amount, before.balance_micros, reserve=True)
        hold = Hold(id=uuid.UUID(int=self.seq + 1), organization_id=ORG, product_id=PRODUCT, amount_micros=amount,
                    created_at=now, expires_at=now + ttl)
        self.seq += 1
        with self.uow() as uow:
            decision = decide(uow.wallets.lock(ORG), amount, now, reserve=True)
            assert decision.reason is expected
            if decision.allowed:
                assert uow.holds.add(hold)
                assert not uow.holds.add(hold), "a retried hold id adds nothing"
                uow.commit()
        if expected is None:
            self.active_holds[str(hold.id)] = hold
        else:
            assert self.wallet() == before

    def _live_holds(self) -> list[str]:
        return sorted(k for k, h in self.active_holds.items() if h.expires_at > self.clock.now())

    @precondition(lambda self: bool(self._live_holds()))
    @rule(data=st.data(), rule=st.sampled_from(list(HoldOverrun)))
    def settle_a_hold(self, data: st.DataObject, rule: HoldOverrun) -> None:
        hold_key = data.draw(st.sampled_from(self._live_holds()))
        hold = self.active_holds[hold_key]
        actual = data.draw(st.integers(min_value=0, max_value=2 * hold.amount_micros))
        now = self.clock.now()
        key = self.key("usage:hold")
        before = self.wallet()
        applied: list[Settlement] = []
        for attempt in range(2):  # a duplicate delivery applies nothing
            with self.uow() as uow:
                wallet = uow.wallets.lock(ORG)
                settlement = settle_hold(wallet, hold, actual, rule, now)
                applied.append(settlement)
                if settlement.rejected:
                    assert actual > hold.amount_micros and rule == HoldOverrun.REJECT
                    return
                charge = usage_tx(ORG, settlement.charge_micros, key, at=now) if settlement.charge_micros else None
                done = uow.holds.close(closed(hold, HoldStatus.SETTLED, now, event_id=key, quantity=1,
                                              settlement=settlement), now=now, charge=charge)
                assert done is (attempt == 0)
                uow.commit()
        # The first delivery's settlement is what was charged: the duplicate decides against the
        # wallet the first one left (a cap it now reaches may cap it) and then applies nothing.
        charged = applied[0].charge_micros
        assert charged <= max(actual, 0) and (charged == actual or rule != HoldOverrun.REJECT)
        if actual <= hold.amount_micros:
            assert charged == actual
        after = self.wallet()
        assert after.balance_micros == before.balance_micros - charged
        assert after.held_micros == before.held_micros - hold.amount_micros
        self.closed_holds[hold_key] = self.active_holds.pop(hold_key)
        if charged:
            self.keys.add(key)
            self.open_debits[key] = charged
            self.debited_at[key] = now
            self.per_day[now.date()] += charged
            self.per_month[month_key(now.date())] += charged

    @precondition(lambda self: bool(self.active_holds))
    @rule(data=st.data())
    def release_a_hold(self, data: st.DataObject) -> None:
        hold_key = data.draw(st.sampled_from(sorted(self.active_holds)))
        hold = self.active_holds.pop(hold_key)
        before = self.wallet()
        for attempt in range(2):
            with self.uow() as uow:
                uow.wallets.lock(ORG)
                assert uow.holds.close(closed(hold, HoldStatus.RELEASED, self.clock.now()),
                                       now=self.clock.now()) is (attempt == 0)
                uow.commit()
        assert self.wallet().balance_micros == before.balance_micros
        self.closed_holds[hold_key] = hold

    @rule()
    def worker_expires_holds(self) -> None:
        """The background worker's step: every hold past its expiry is released, once."""
        now = self.clock.now()
        with self.uow() as uow:
            due = uow.holds.due(now, limit=1000)
        assert {str(h.id) for h in due} == {k for k, h in self.active_holds.items() if h.expires_at <= now}
        for hold in due:
            with self.uow() as uow:
                uow.wallets.lock(ORG)
                assert uow.holds.close(closed(hold, HoldStatus.EXPIRED, now), now=now)
                uow.commit()
            self.closed_holds[str(hold.id)] = self.active_holds.pop(str(hold.id))
        with self.uow() as uow:
            assert uow.holds.due(now) == [], "no hold is left active past its expiry after a worker cycle"

    @rule(delta=st.sampled_from([timedelta(minutes=20), timedelta(hours=3), timedelta(hours=11),
                                 timedelta(days=1), timedelta(days=2), timedelta(days=17)]))
    def time_passes(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def every_transaction_balances(self) -> None:
        for tx in self.transactions():
            check_balanced(tx)
            assert len(tx.postings) >= 2
        with self.uow() as uow:
            assert sum(uow.ledger.account_sums(ORG).values()) == 0

    @invariant()
    def stored_balances_are_the_sums_of_postings(self) -> None:
        wallet = self.wallet()
        with self.uow() as uow:
            sums = uow.ledger.account_sums(ORG)
        assert wallet.wallet_micros == sums[Account.WALLET]
        assert wallet.unbilled_micros == sums[Account.UNBILLED_USAGE]
        newest = self.transactions()[-1:] if self.transactions() else []
        for tx in newest:
            assert tx.wallet_balance_after == wallet.balance_micros

    @invariant()
    def the_balance_never_passes_the_credit_line(self) -> None:
        assert self.wallet().balance_micros >= -self.limits.credit_line_micros

    @invariant()
    def spend_counters_match_the_model_and_the_limits(self) -> None:
        now = self.clock.now()
        counters = counters_at(self.wallet(), now)
        today = now.date()
        assert counters.today == self.per_day[today]
        assert counters.yesterday == self.per_day[today - timedelta(days=1)]
        assert counters.month == self.per_month[month_key(today)]
        assert min(self.per_day.values(), default=0) >= 0 and min(self.per_month.values(), default=0) >= 0

    @invariant()
    def used_plus_held_passes_a_budget_only_by_the_crossing_call(self) -> None:
        """For every cap, what was used plus what holds reserve passes it by at most the last plain
        call (it ran because what came before it was under the budget; a hold must fit)."""
        wallet = self.wallet()
        now = self.clock.now()
        counters = counters_at(wallet, now)
        assert wallet.held_micros == self.held()
        with self.uow() as uow:
            assert {str(h.id) for h in uow.holds.active(ORG)} == set(self.active_holds)
        today, month = now.date(), month_key(now.date())
        budget, cap = self.limits.daily_budget_micros, self.limits.monthly_cap_micros
        if budget is not None:
            assert counters.today + wallet.held_micros - self.last_debit.get(today, 0) <= budget
            assert all(spent - self.last_debit.get(day, 0) <= budget for day, spent in self.per_day.items())
        if cap is not None:
            assert counters.month + wallet.held_micros - self.last_debit.get(month, 0) <= cap
            assert all(spent - self.last_debit.get(key, 0) <= cap for key, spent in self.per_month.items())

    @invariant()
    def each_idempotency_key_was_applied_once(self) -> None:
        keys = Counter(tx.idempotency_key for tx in self.transactions())
        assert all(n == 1 for n in keys.values())
        assert set(keys) == self.keys
        assert len(self.store.ledger_keys) == len(self.keys)


WalletMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestWalletStateMachine = WalletMachine.TestCase
