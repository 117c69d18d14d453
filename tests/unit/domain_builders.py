"""Small builders of core values shared by the unit tests (no behaviour of their own).

Ledger transactions come from :mod:`adapters.testing.builders` (``grant``, ``top_up``, ``usage_tx``,
``usage_refund``), the one place for them."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from adapters.testing.builders import NOW as NOW  # 2026-03-14 09:30 UTC, a Saturday; re-exported
from billing_core.permissions import Actor, Permission, Role
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount

ORG = uuid.UUID("0a000000-0000-4000-8000-00000000000a")
OTHER_ORG = uuid.UUID("0b000000-0000-4000-8000-00000000000b")
DOLLAR = 1_000_000
CENT = 10_000
ROLES = (Role.PRIMARY_OWNER, Role.OWNER, Role.MEMBER)


def person(role: Role, *, organization_id: uuid.UUID = ORG, email: str | None = None,
           email_verified: bool = False) -> Actor:
    return Actor(organization_id=organization_id, subject=f"user-{role.value}", role=role, email=email,
                 email_verified=email_verified)


def token(*scopes: Permission, organization_id: uuid.UUID = ORG) -> Actor:
    return Actor(organization_id=organization_id, subject="token", scopes=frozenset(scopes))


def wallet_account(*, wallet: int = 100 * DOLLAR, unbilled: int = 0, status: str | None = "active",
                   limits: SpendLimits | None = None, past_due_since: datetime | None = None,
                   grace_days: int = 7, spend_day: date | None = None, today: int = 0, yesterday: int = 0,
                   spend_month: str | None = None, month: int = 0,
                   organization_id: uuid.UUID = ORG) -> WalletAccount:
    return WalletAccount(
        organization_id=organization_id, wallet_micros=wallet, unbilled_micros=unbilled,
        limits=limits or SpendLimits(),
        gate=SubscriptionGate(status=status, past_due_since=past_due_since, grace_days=grace_days),
        spend_day=spend_day, spent_today_micros=today, spent_yesterday_micros=yesterday,
        spend_month=spend_month, spent_month_micros=month,
    )
