"""Payments we ask the provider for, and payment methods on file.

Credits from a payment land in the wallet only once the payment has succeeded; a later failure,
refund or dispute reverses them with a compensating ledger entry.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.errors import IllegalTransition


class PaymentPurpose(StrEnum):
    ADD_CREDITS = "add_credits"
    CREDIT_PACK = "credit_pack"
    AUTO_RECHARGE = "auto_recharge"
    INVOICE = "invoice"
    PLAN_CHANGE = "plan_change"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


_PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.REFUNDED, PaymentStatus.DISPUTED}),
    PaymentStatus.FAILED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.DISPUTED: frozenset(),
}


class PaymentType(StrEnum):
    CARD = "card"
    SEPA_DEBIT = "sepa_debit"
    CRYPTO = "crypto"
    US_BANK_ACCOUNT = "us_bank_account"


class Payment(msgspec.Struct, kw_only=True):
    """One charge: ``amount_cents`` of cash for ``credits_micros`` of credit (or an invoice)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    purpose: PaymentPurpose
    amount_cents: int
    currency_iso: str
    credits_micros: int
    status: PaymentStatus
    created_at: datetime
    payment_type: PaymentType = PaymentType.CARD
    payment_method_id: uuid.UUID | None = None
    provider_payment_id: str | None = None
    client_secret: str | None = None
    invoice_id: uuid.UUID | None = None
    failure_message: str | None = None
    settled_at: datetime | None = None
    refunded_cents: int = 0
    """Approved refunds, reserved before the provider is asked (ADR 0009); never above ``amount_cents``."""
    version: int = 0
    """Bumped by every save; a save of a copy loaded at an older version is refused."""

    def move_to(self, target: PaymentStatus) -> bool:
        """Return False when already there (webhooks repeat), raise when the move is illegal."""
        if target == self.status:
            return False
        if target not in _PAYMENT_TRANSITIONS[self.status]:
            raise IllegalTransition(self.status.value, target.value, subject="payment")
        self.status = target
        return True


class PaymentMethod(msgspec.Struct, kw_only=True):
    """A payment instrument on file, in the seed's fields. ``iban_last4`` only, never the IBAN."""

    id: uuid.UUID
    organization_id: uuid.UUID
    provider_payment_method_id: str
    payment_type: PaymentType
    default: bool = False
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    iban_last4: str | None = None
    name: str | None = None
    created_at: datetime | None = None


class ProviderPaymentMethod(msgspec.Struct, frozen=True, kw_only=True):
    """What the payment provider tells us of an instrument."""

    provider_payment_method_id: str
    payment_type: PaymentType
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    iban_last4: str | None = None
    name: str | None = None
