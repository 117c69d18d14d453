"""The organization's credit wallet as storage keeps it for the hot path.

One row per organization holds the two balance accounts of the ledger (settled wallet and unbilled
usage), the spend limits in force and the UTC day/month spend counters, plus the subscription gate
(status, past_due_since, grace days). Keeping all of it on one record lets storage make each debit
one atomic step: lock or conditionally update that record, decide with :mod:`spend_guard`, append
the ledger rows.
"""

from __future__ import annotations

import functools
import uuid
from datetime import date, datetime
from typing import Protocol

import msgspec

from billing_core.errors import InvalidInput
from billing_core.ledger import Account, LedgerTransaction


class SpendLimits(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Limits the spend guard enforces, in micro-dollars. ``None`` means no limit of that kind."""

    credit_line_micros: int = 0
    minimum_production_credit_micros: int = 0
    daily_budget_micros: int | None = None
    monthly_cap_micros: int | None = None


class SubscriptionGate(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What the spend guard needs to know of the plan subscription. ``status`` None: no plan."""

    status: str | None = None
    past_due_since: datetime | None = None
    grace_days: int = 0


class WalletAccount(msgspec.Struct, kw_only=True, gc=False):
    organization_id: uuid.UUID
    wallet_micros: int = 0
    unbilled_micros: int = 0
    limits: SpendLimits = SpendLimits()
    gate: SubscriptionGate = SubscriptionGate()
    spend_day: date | None = None
    spent_today_micros: int = 0
    spent_yesterday_micros: int = 0
    spend_month: str | None = None
    spent_month_micros: int = 0
    spent_previous_month_micros: int = 0
    """The month before ``spend_month``: what a request that started before the month turned is
    checked against and booked on (as ``spent_yesterday_micros`` is for the day)."""
    version: int = 0
    held_micros: int = 0
    """Credits reserved by active holds (:mod:`billing_core.holds`): the spend guard counts them as
    spent against every cap (balance and credit line, daily budget, monthly cap) until the hold is
    settled, released or expired. Only the hold repository moves it."""
    scoped_budgets: int = 0
    """How many project and token budgets (:mod:`billing_core.budgets`) the organization has: the
    usage path reads budgets only when there are some, so an organization without any pays nothing
    for them. Only the budget repository moves it."""

    @property
    def balance_micros(self) -> int:
        """The real-time credit balance shown to people (``$12.480``)."""
        return self.wallet_micros + self.unbilled_micros


class SpendCounted(Protocol):
    """Anything that keeps UTC day/month spend counters: the wallet (the organization's budgets)
    and a scoped budget (a project's or a token's, :class:`billing_core.budgets.ScopedBudget`).
    The counter functions below serve both, so the two roll days and months the same way."""

    spend_day: date | None
    spent_today_micros: int
    spent_yesterday_micros: int
    spend_month: str | None
    spent_month_micros: int
    spent_previous_month_micros: int


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _months(year: int, month: int) -> int:
    """Months since year 0: consecutive months are consecutive numbers, across years too."""
    return year * 12 + month - 1


@functools.lru_cache(maxsize=256)
def _key_number(key: str) -> int:
    """:func:`_months` of a stored :func:`month_key`, parsed once: it is read twice per debit,
    and only a few distinct keys are ever live."""
    return _months(int(key[:4]), int(key[5:7]))


class SpendCounters(msgspec.Struct, frozen=True):
    today: int
    yesterday: int
    month: int


def counters_at(wallet: SpendCounted, now: datetime) -> SpendCounters:
    """The spend counters as seen at ``now`` (UTC), rolling over days and months that have passed.

    A request that started before midnight may commit after one of the new day; seen from its own
    ``now``, the stored "today" is tomorrow and the stored "yesterday" is its today. Months roll the
    same way: at the turn of a month, the stored previous month is the late request's own.
    """
    today = now.date()
    day = wallet.spend_day
    spent_today = spent_yesterday = 0
    if day == today:
        spent_today, spent_yesterday = wallet.spent_today_micros, wallet.spent_yesterday_micros
    elif day is not None and (today - day).days == 1:
        spent_yesterday = wallet.spent_today_micros
    elif day is not None and (day - today).days == 1:
        spent_today = wallet.spent_yesterday_micros
    spent_month = 0
    if wallet.spend_month is not None:
        behind = _key_number(wallet.spend_month) - _months(today.year, today.month)
        if behind == 0:
            spent_month = wallet.spent_month_micros
        elif behind == 1:
            spent_month = wallet.spent_previous_month_micros
    return SpendCounters(spent_today, spent_yesterday, spent_month)


def apply_spend(wallet: SpendCounted, amount_micros: int, now: datetime) -> None:
    """Add usage spend to the counters at ``now``, never moving them back in time: a late debit
    from before midnight is booked on yesterday's counter, and one from before the month turned on
    the previous month's, so each day's budget and each month's cap hold whatever the commit order."""
    today = now.date()
    if wallet.spend_day is not None and today < wallet.spend_day:
        if (wallet.spend_day - today).days == 1:
            wallet.spent_yesterday_micros += amount_micros
    else:
        counters = counters_at(wallet, now)
        wallet.spend_day = today
        wallet.spent_today_micros = counters.today + amount_micros
        wallet.spent_yesterday_micros = counters.yesterday
    ahead = 1 if wallet.spend_month is None else _months(today.year, today.month) - _key_number(wallet.spend_month)
    if ahead > 0:
        wallet.spent_previous_month_micros = wallet.spent_month_micros if ahead == 1 else 0
        wallet.spend_month, wallet.spent_month_micros = month_key(today), amount_micros
    elif ahead == 0:
        wallet.spent_month_micros += amount_micros
    elif ahead == -1:
        wallet.spent_previous_month_micros += amount_micros


def give_back_spend(wallet: SpendCounted, amount_micros: int, spent_at: datetime, now: datetime) -> None:
    """Take refunded usage back off the spend counters: ``amount_micros`` (>= 0) of usage debited at
    ``spent_at`` leaves the day's counter if that UTC day is still the current one at ``now``, and
    the month's counter if that month still is. Usage of an earlier day (month) stays counted there:
    the budget it counted against has already reset.

    The inverse of :func:`apply_spend` for the same day: applying then giving back the same amount
    leaves the counters as they were. Like it, it never moves the counters back in time; a stored
    day one ahead of ``now`` (a later debit rolled it) keeps ``now``'s day in the yesterday slot,
    and that slot is given back instead. Counters never go below zero.
    """
    if type(amount_micros) is not int or amount_micros < 0:
        raise InvalidInput("amount_micros", "the spend given back must be a non-negative integer")
    day, today = spent_at.date(), now.date()
    if day == today and wallet.spend_day is not None:
        if wallet.spend_day == today:
            wallet.spent_today_micros = max(wallet.spent_today_micros - amount_micros, 0)
        elif (wallet.spend_day - today).days == 1:
            wallet.spent_yesterday_micros = max(wallet.spent_yesterday_micros - amount_micros, 0)
    if (day.year, day.month) == (today.year, today.month) and wallet.spend_month is not None:
        behind = _key_number(wallet.spend_month) - _months(today.year, today.month)
        if behind == 0:
            wallet.spent_month_micros = max(wallet.spent_month_micros - amount_micros, 0)
        elif behind == 1:
            wallet.spent_previous_month_micros = max(wallet.spent_previous_month_micros - amount_micros, 0)


def check_debit(amount_micros: int, tx: LedgerTransaction) -> None:
    """A debit's amount is exactly what its transaction takes off the credit balance."""
    if type(amount_micros) is not int or amount_micros < 0 or -tx.balance_delta != amount_micros:
        raise InvalidInput("amount_micros", "the debit amount must equal what its transaction takes off the balance")


def apply_transaction(wallet: WalletAccount, tx: LedgerTransaction) -> LedgerTransaction:
    """Move the stored balances by ``tx`` and return it stamped with the balance after it.

    Spend counters are not touched here: only an authorized usage debit counts as spend
    (:func:`apply_spend`), and only a refund of usage gives it back (:func:`give_back_spend`)."""
    for posting in tx.postings:  # one pass: this runs for every debit of the hot path
        if posting.account is Account.WALLET:
            wallet.wallet_micros += posting.amount_micros
        elif posting.account is Account.UNBILLED_USAGE:
            wallet.unbilled_micros += posting.amount_micros
    wallet.version += 1
    return msgspec.structs.replace(tx, wallet_balance_after=wallet.balance_micros)
