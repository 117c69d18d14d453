"""The six wallet figures of the Billing Overview page, derived from the wallet and settings."""

from __future__ import annotations

from datetime import datetime

import msgspec

from billing_core.spend_guard import available_micros
from billing_core.wallet import WalletAccount, counters_at


class WalletOverview(msgspec.Struct, frozen=True, kw_only=True):
    """All in micro-dollars.

    - ``total_credits``: settled credits purchased or granted, net of what invoices already used.
    - ``usage_this_period``: uninvoiced usage (may include earlier periods not yet invoiced).
    - ``remaining_credits``: total credits minus uninvoiced usage (the real-time balance).
    - ``overage_protection``: the credit line usable on a negative balance, billed next invoice.
    - ``daily_hard_limit_used`` / ``daily_hard_limit``: today's spend against the daily budget.
    - ``available_to_use``: what can be spent right now, all limits and active holds considered.
    - ``held``: what active holds reserve (counted against every cap until settled or released).
    """

    total_credits: int
    usage_this_period: int
    remaining_credits: int
    overage_protection: int
    daily_hard_limit_used: int
    daily_hard_limit: int | None
    available_to_use: int
    consumed_today: int
    consumed_yesterday: int
    held: int = 0
    """Credits reserved by active holds (ADR 0011), already taken off ``available_to_use``."""


def wallet_overview(wallet: WalletAccount, now: datetime) -> WalletOverview:
    counters = counters_at(wallet, now)
    return WalletOverview(
        total_credits=wallet.wallet_micros,
        usage_this_period=-wallet.unbilled_micros,
        remaining_credits=wallet.balance_micros,
        overage_protection=wallet.limits.credit_line_micros,
        daily_hard_limit_used=counters.today,
        daily_hard_limit=wallet.limits.daily_budget_micros,
        available_to_use=available_micros(wallet, now),
        consumed_today=counters.today,
        consumed_yesterday=counters.yesterday,
        held=wallet.held_micros,
    )
