"""The six wallet figures of the Billing Overview page, derived from the wallet and settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec

from billing_core.ledger import EntryKind
from billing_core.spend_guard import available_micros
from billing_core.wallet import WalletAccount, counters_at


class WalletOverview(msgspec.Struct, frozen=True, kw_only=True):
    """All in micro-dollars.

    - ``total_credits``: the seed's "total number of usage credits (gross) you've purchased or have
      been granted" (:func:`gross_credits`): usage and invoices do not lower it.
    - ``usage_this_period``: uninvoiced usage (may include earlier periods not yet invoiced).
    - ``remaining_credits``: purchased credits after uninvoiced usage (the real-time balance: the
      settled wallet, which invoices draw on, plus the negative unbilled usage).
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


GROSS_CREDIT_KINDS = frozenset({
    EntryKind.TOP_UP, EntryKind.CREDIT_PACK, EntryKind.AUTO_RECHARGE, EntryKind.GRANT,
    EntryKind.PAYMENT_REVERSAL, EntryKind.CREDIT_REFUND, EntryKind.GRANT_EXPIRY,
})
"""The ledger entries that make up Total Credits: what was purchased (top-ups, packs, auto-recharge)
or granted, less what was taken back (reversed or refunded payments, expired grants; a failed
refund gives its credits back as a positive refund entry). Usage, invoices applying the credit
balance and voided invoices returning it are not purchases, so they do not move it."""


def gross_credits(wallet_sums_by_kind: Mapping[EntryKind, int]) -> int:
    """Total Credits from the settled wallet's postings summed per entry kind
    (:meth:`~billing_core.ports.LedgerRepository.account_sums_by_kind`)."""
    return sum(amount for kind, amount in wallet_sums_by_kind.items() if kind in GROSS_CREDIT_KINDS)


def wallet_overview(wallet: WalletAccount, now: datetime, *, total_credits: int) -> WalletOverview:
    """The figures at ``now``; ``total_credits`` is :func:`gross_credits` of the organization's ledger."""
    counters = counters_at(wallet, now)
    return WalletOverview(
        total_credits=total_credits,
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
