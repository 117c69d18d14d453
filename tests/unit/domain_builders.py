"""Small builders of core values shared by the unit tests (no behaviour of their own)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from billing_core.ledger import Account, EntryKind, LedgerTransaction, transfer
from billing_core.permissions import Actor, Permission, Role
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount

ORG = uuid.UUID("0a000000-0000-4000-8000-00000000000a")
OTHER_ORG = uuid.UUID("0b000000-0000-4000-8000-00000000000b")
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)  # a Saturday
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


def top_up(amount: int, key: str, *, at: datetime = NOW, organization_id: uuid.UUID = ORG) -> LedgerTransaction:
    return transfer(organization_id=organization_id, idempotency_key=key, kind=EntryKind.TOP_UP,
                    description="Add Credits", created_at=at, source=Account.PAYMENT_CLEARING,
                    target=Account.WALLET, amount_micros=amount)


def usage(amount: int, key: str, *, at: datetime = NOW, organization_id: uuid.UUID = ORG) -> LedgerTransaction:
    return transfer(organization_id=organization_id, idempotency_key=key, kind=EntryKind.USAGE,
                    description="Compute usage", created_at=at, source=Account.UNBILLED_USAGE,
                    target=Account.REVENUE, amount_micros=amount, reference=key)


def usage_refund(amount: int, key: str, *, at: datetime = NOW, organization_id: uuid.UUID = ORG,
                 reason: str = "failed generation reimbursed") -> LedgerTransaction:
    return transfer(organization_id=organization_id, idempotency_key=key, kind=EntryKind.AUTOMATIC_REFUND,
                    description="Automatic refund", created_at=at, source=Account.REVENUE,
                    target=Account.UNBILLED_USAGE, amount_micros=amount, reason=reason)


def grant(amount: int, key: str, *, at: datetime = NOW, organization_id: uuid.UUID = ORG) -> LedgerTransaction:
    return transfer(organization_id=organization_id, idempotency_key=key, kind=EntryKind.GRANT,
                    description="Free Trial Credits", created_at=at, source=Account.PROMOTIONAL_GRANTS,
                    target=Account.WALLET, amount_micros=amount)
