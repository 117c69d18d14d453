"""The wallet's spend counters: today, yesterday and this month, rolling over at UTC midnight and at
month and year boundaries; and how stored balances move with transactions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from adapters.fakes import FixedClock, InMemoryStore, InMemoryUnitOfWork
from adapters.testing.builders import grant, top_up, usage_refund, usage_tx
from billing_core.errors import InvalidInput
from billing_core.wallet import (
    SpendCounters,
    WalletAccount,
    apply_spend,
    apply_transaction,
    check_debit,
    counters_at,
    give_back_spend,
    month_key,
)
from tests.unit.domain_builders import DOLLAR, ORG, wallet_account


def fresh() -> WalletAccount:
    return WalletAccount(organization_id=ORG)


class Meter:
    """Books spend on a wallet at the clock's time, as storage does after an allowed debit."""

    def __init__(self, start: datetime) -> None:
        self.clock = FixedClock(start)
        self.wallet = fresh()

    def spend(self, amount: int) -> None:
        apply_spend(self.wallet, amount, self.clock.now())

    def counters(self) -> SpendCounters:
        return counters_at(self.wallet, self.clock.now())


def test_a_fresh_wallet_has_spent_nothing() -> None:
    assert counters_at(fresh(), datetime(2026, 1, 1, tzinfo=UTC)) == SpendCounters(0, 0, 0)


def test_spend_accumulates_within_a_day() -> None:
    meter = Meter(datetime(2026, 3, 14, 0, 0, tzinfo=UTC))
    meter.spend(DOLLAR)
    meter.clock.advance(timedelta(hours=23, minutes=59, seconds=59))
    meter.spend(2 * DOLLAR)
    assert meter.counters() == SpendCounters(today=3 * DOLLAR, yesterday=0, month=3 * DOLLAR)
    assert meter.wallet.spend_day == date(2026, 3, 14)
    assert meter.wallet.spend_month == "2026-03"


def test_midnight_moves_today_to_yesterday() -> None:
    meter = Meter(datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC))
    meter.spend(5 * DOLLAR)
    meter.clock.advance(timedelta(seconds=1))
    assert meter.counters() == SpendCounters(today=0, yesterday=5 * DOLLAR, month=5 * DOLLAR)
    meter.spend(DOLLAR)
    assert meter.counters() == SpendCounters(today=DOLLAR, yesterday=5 * DOLLAR, month=6 * DOLLAR)
    # The stored record caught up with the new day.
    assert (meter.wallet.spend_day, meter.wallet.spent_today_micros, meter.wallet.spent_yesterday_micros) == (
        date(2026, 3, 15), DOLLAR, 5 * DOLLAR)


def test_two_midnights_forget_both_days() -> None:
    meter = Meter(datetime(2026, 3, 14, 12, tzinfo=UTC))
    meter.spend(5 * DOLLAR)
    meter.clock.advance(timedelta(days=2))
    assert meter.counters() == SpendCounters(today=0, yesterday=0, month=5 * DOLLAR)
    meter.spend(DOLLAR)
    assert meter.counters() == SpendCounters(today=DOLLAR, yesterday=0, month=6 * DOLLAR)


def test_a_quiet_day_in_between_leaves_yesterday_empty() -> None:
    meter = Meter(datetime(2026, 3, 14, 12, tzinfo=UTC))
    meter.spend(DOLLAR)
    meter.clock.advance(timedelta(days=1))
    assert meter.counters().yesterday == DOLLAR
    meter.clock.advance(timedelta(days=1))
    assert meter.counters().yesterday == 0


def test_month_boundary_resets_the_month_but_keeps_yesterday() -> None:
    meter = Meter(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    meter.spend(7 * DOLLAR)
    meter.clock.set(datetime(2026, 2, 1, 0, 0, tzinfo=UTC))
    assert meter.counters() == SpendCounters(today=0, yesterday=7 * DOLLAR, month=0)
    meter.spend(DOLLAR)
    assert meter.counters() == SpendCounters(today=DOLLAR, yesterday=7 * DOLLAR, month=DOLLAR)
    assert meter.wallet.spend_month == "2026-02"


def test_year_boundary_resets_the_month() -> None:
    meter = Meter(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    meter.spend(9 * DOLLAR)
    meter.clock.advance(timedelta(minutes=1))
    assert meter.counters() == SpendCounters(today=0, yesterday=9 * DOLLAR, month=0)
    meter.spend(DOLLAR)
    assert meter.wallet.spend_month == "2027-01"
    assert meter.counters().month == DOLLAR


def test_leap_day_rolls_into_march() -> None:
    meter = Meter(datetime(2028, 2, 29, 23, 0, tzinfo=UTC))
    meter.spend(DOLLAR)
    meter.clock.advance(timedelta(hours=1))
    assert meter.counters() == SpendCounters(today=0, yesterday=DOLLAR, month=0)


def test_a_month_later_on_the_same_day_number_is_a_new_day_and_month() -> None:
    meter = Meter(datetime(2026, 3, 14, 12, tzinfo=UTC))
    meter.spend(DOLLAR)
    meter.clock.set(datetime(2026, 4, 14, 12, tzinfo=UTC))
    assert meter.counters() == SpendCounters(0, 0, 0)
    meter.clock.set(datetime(2027, 3, 14, 12, tzinfo=UTC))  # same month number, next year
    assert meter.counters() == SpendCounters(0, 0, 0)


def test_a_late_debit_from_before_midnight_is_booked_on_yesterday() -> None:
    """A request authorized at 23:59:59 that commits after another request of the new day."""
    w = fresh()
    apply_spend(w, 2 * DOLLAR, datetime(2026, 3, 15, 0, 0, 1, tzinfo=UTC))
    late = datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC)
    # Seen from the late request's own time, the stored "yesterday" is its today.
    assert counters_at(w, late) == SpendCounters(today=0, yesterday=0, month=2 * DOLLAR)
    apply_spend(w, DOLLAR, late)
    assert (w.spend_day, w.spent_today_micros, w.spent_yesterday_micros) == (date(2026, 3, 15), 2 * DOLLAR, DOLLAR)
    assert counters_at(w, late).today == DOLLAR
    assert counters_at(w, datetime(2026, 3, 15, 8, tzinfo=UTC)) == SpendCounters(2 * DOLLAR, DOLLAR, 3 * DOLLAR)


def test_a_late_debit_from_last_month_is_booked_on_last_month() -> None:
    w = fresh()
    apply_spend(w, 5 * DOLLAR, datetime(2026, 3, 31, 20, tzinfo=UTC))
    apply_spend(w, 2 * DOLLAR, datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC))
    assert (w.spend_month, w.spent_month_micros, w.spent_previous_month_micros) == ("2026-04", 2 * DOLLAR, 5 * DOLLAR)
    late = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    # Seen from the late request's own time, the stored previous month is its month.
    assert counters_at(w, late).month == 5 * DOLLAR
    apply_spend(w, DOLLAR, late)
    assert (w.spent_month_micros, w.spent_previous_month_micros) == (2 * DOLLAR, 6 * DOLLAR)
    assert w.spent_yesterday_micros == 6 * DOLLAR
    assert counters_at(w, datetime(2026, 4, 1, 8, tzinfo=UTC)).month == 2 * DOLLAR


def test_the_previous_month_is_kept_only_for_the_month_right_before() -> None:
    w = fresh()
    apply_spend(w, 5 * DOLLAR, datetime(2026, 12, 31, 20, tzinfo=UTC))
    apply_spend(w, DOLLAR, datetime(2027, 1, 1, 1, tzinfo=UTC))  # across a year, still the month before
    assert (w.spend_month, w.spent_previous_month_micros) == ("2027-01", 5 * DOLLAR)
    apply_spend(w, DOLLAR, datetime(2027, 3, 2, tzinfo=UTC))  # two months on: February spent nothing
    assert (w.spend_month, w.spent_month_micros, w.spent_previous_month_micros) == ("2027-03", DOLLAR, 0)
    assert counters_at(w, datetime(2027, 1, 31, tzinfo=UTC)).month == 0  # two months back: gone
    apply_spend(w, DOLLAR, datetime(2027, 1, 31, tzinfo=UTC))
    assert (w.spent_month_micros, w.spent_previous_month_micros) == (DOLLAR, 0)


def test_a_debit_older_than_yesterday_never_moves_counters_back_in_time() -> None:
    w = fresh()
    apply_spend(w, 2 * DOLLAR, datetime(2026, 3, 15, 12, tzinfo=UTC))
    apply_spend(w, DOLLAR, datetime(2026, 3, 13, 12, tzinfo=UTC))
    assert (w.spend_day, w.spent_today_micros, w.spent_yesterday_micros) == (date(2026, 3, 15), 2 * DOLLAR, 0)
    assert w.spent_month_micros == 3 * DOLLAR  # same month: it still counts against the cap


@pytest.mark.parametrize(("day", "key"), [(date(2026, 3, 14), "2026-03"), (date(2026, 12, 1), "2026-12"),
                                          (date(987, 1, 1), "0987-01")])
def test_month_key(day: date, key: str) -> None:
    assert month_key(day) == key


def test_counters_roll_through_storage_debits_across_midnight_and_month() -> None:
    clock = FixedClock(datetime(2026, 1, 31, 22, 0, tzinfo=UTC))
    store = InMemoryStore()
    with InMemoryUnitOfWork(store) as uow:
        uow.wallets.create(wallet_account(wallet=1_000 * DOLLAR))
        uow.commit()
    plan = [(timedelta(0), 3), (timedelta(hours=1, minutes=59), 4), (timedelta(minutes=2), 5),
            (timedelta(hours=5), 6), (timedelta(days=1), 7)]
    for step, (delta, dollars) in enumerate(plan):
        clock.advance(delta)
        with InMemoryUnitOfWork(store) as uow:
            outcome = uow.wallets.debit(ORG, dollars * DOLLAR, clock.now(), usage_tx(ORG, dollars * DOLLAR, f"u{step}"))
            uow.commit()
        assert outcome.decision.allowed
    # Jan 31: 3 + 4; Feb 1: 5 + 6; Feb 2: 7.
    with InMemoryUnitOfWork(store) as uow:
        w = uow.wallets.get(ORG)
    assert counters_at(w, clock.now()) == SpendCounters(today=7 * DOLLAR, yesterday=11 * DOLLAR, month=18 * DOLLAR)
    assert w.balance_micros == (1_000 - 25) * DOLLAR


# --------------------------------------------------------------------------- balances


def test_apply_transaction_moves_the_balance_accounts_and_stamps_the_balance_after() -> None:
    w = fresh()
    first = apply_transaction(w, top_up(ORG, 20 * DOLLAR, "t"))
    assert (w.wallet_micros, w.unbilled_micros, w.balance_micros) == (20 * DOLLAR, 0, 20 * DOLLAR)
    assert first.wallet_balance_after == 20 * DOLLAR
    second = apply_transaction(w, usage_tx(ORG, 3 * DOLLAR, "u"))
    assert (w.wallet_micros, w.unbilled_micros) == (20 * DOLLAR, -3 * DOLLAR)
    assert second.wallet_balance_after == 17 * DOLLAR
    third = apply_transaction(w, usage_refund(ORG, DOLLAR, "r"))
    assert third.wallet_balance_after == 18 * DOLLAR
    apply_transaction(w, grant(ORG, 5 * DOLLAR, "g"))
    assert w.balance_micros == 23 * DOLLAR
    assert w.version == 4


def test_apply_transaction_never_touches_the_spend_counters() -> None:
    w = fresh()
    apply_transaction(w, usage_tx(ORG, 3 * DOLLAR, "u"))
    assert (w.spend_day, w.spent_today_micros, w.spend_month, w.spent_month_micros) == (None, 0, None, 0)


# --------------------------------------------------------------------------- refunds give spend back


def test_a_refund_the_same_day_gives_back_the_day_and_the_month_exactly() -> None:
    w = fresh()
    debited = datetime(2026, 3, 14, 9, tzinfo=UTC)
    apply_spend(w, 2 * DOLLAR, debited)
    before = counters_at(w, debited)
    apply_spend(w, 3 * DOLLAR, debited)
    give_back_spend(w, 3 * DOLLAR, debited, datetime(2026, 3, 14, 23, 59, tzinfo=UTC))
    assert counters_at(w, debited) == before == SpendCounters(2 * DOLLAR, 0, 2 * DOLLAR)


def test_a_refund_on_a_later_day_of_the_month_gives_back_only_the_month() -> None:
    w = fresh()
    apply_spend(w, 3 * DOLLAR, datetime(2026, 3, 13, 22, tzinfo=UTC))
    refunded_at = datetime(2026, 3, 14, 1, tzinfo=UTC)
    apply_spend(w, DOLLAR, refunded_at)
    give_back_spend(w, 3 * DOLLAR, datetime(2026, 3, 13, 22, tzinfo=UTC), refunded_at)
    # Yesterday's budget has already reset: its usage stays counted there.
    assert counters_at(w, refunded_at) == SpendCounters(today=DOLLAR, yesterday=3 * DOLLAR, month=DOLLAR)


def test_a_refund_in_a_later_month_gives_nothing_back() -> None:
    w = fresh()
    apply_spend(w, 3 * DOLLAR, datetime(2026, 3, 31, 23, tzinfo=UTC))
    refunded_at = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
    apply_spend(w, DOLLAR, refunded_at)
    stored = (w.spent_today_micros, w.spent_yesterday_micros, w.spent_month_micros, w.spent_previous_month_micros)
    give_back_spend(w, 3 * DOLLAR, datetime(2026, 3, 31, 23, tzinfo=UTC), refunded_at)
    assert (w.spent_today_micros, w.spent_yesterday_micros, w.spent_month_micros,
            w.spent_previous_month_micros) == stored == (DOLLAR, 3 * DOLLAR, DOLLAR, 3 * DOLLAR)


def test_a_late_refund_gives_back_the_slot_its_day_moved_to() -> None:
    """A refund computed at 23:59:59 that commits after a debit of the new day rolled the counters:
    its day is then the stored "yesterday", and that slot is given back, as apply_spend books it."""
    w = fresh()
    late = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    apply_spend(w, 4 * DOLLAR, late)
    apply_spend(w, DOLLAR, datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC))
    give_back_spend(w, 3 * DOLLAR, late, late)
    assert counters_at(w, late) == SpendCounters(today=DOLLAR, yesterday=0, month=DOLLAR)
    assert counters_at(w, datetime(2026, 4, 1, 8, tzinfo=UTC)) == SpendCounters(DOLLAR, DOLLAR, DOLLAR)


def test_giving_back_never_goes_below_zero_nor_takes_a_negative_amount() -> None:
    w = fresh()
    now = datetime(2026, 3, 14, 9, tzinfo=UTC)
    apply_spend(w, DOLLAR, now)
    give_back_spend(w, 5 * DOLLAR, now, now)
    assert counters_at(w, now) == SpendCounters(0, 0, 0)
    give_back_spend(fresh(), DOLLAR, now, now)  # nothing was booked: nothing to give back
    for bad in (-1, True):
        with pytest.raises(InvalidInput):
            give_back_spend(w, bad, now, now)


def test_check_debit_requires_the_amount_its_transaction_takes() -> None:
    check_debit(3 * DOLLAR, usage_tx(ORG, 3 * DOLLAR, "u"))
    for amount in (3 * DOLLAR - 1, 3 * DOLLAR + 1, -3 * DOLLAR, 0):
        with pytest.raises(InvalidInput) as info:
            check_debit(amount, usage_tx(ORG, 3 * DOLLAR, "u"))
        assert info.value.field == "amount_micros"
    with pytest.raises(InvalidInput):
        check_debit(-DOLLAR, top_up(ORG, DOLLAR, "t"))  # a top-up is no debit
    with pytest.raises(InvalidInput):
        check_debit(True, usage_tx(ORG, 1, "u"))
