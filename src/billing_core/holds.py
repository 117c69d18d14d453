"""Holds: credits reserved for a call whose cost is known only when it ends (ADR 0011).

A hold reserves an amount (or the price of a maximum quantity of a product) within every cap at
once: the spend guard counts ``WalletAccount.held_micros`` as spent, so for every cap
spent + held <= cap. Settling debits the actual amount and releases the rest in one step;
releasing (or the expiry the background worker applies) gives the whole amount back. A closed hold
never changes again, so settle and release are idempotent.

Pure: the decisions here run inside the storage critical section on the locked wallet.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from billing_core.budgets import ScopedBudget
from billing_core.catalog import Product
from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS
from billing_core.spend_guard import DenialReason, decide
from billing_core.usage import MAX_QUANTITY
from billing_core.wallet import WalletAccount


class HoldStatus(StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class HoldOverrun(StrEnum):
    """What settling above the held amount does (the organization's billing setting)."""

    REJECT = "reject"
    """The settle is refused (409 ``settle_exceeds_hold``); the hold stays active."""
    CAP_AT_HOLD = "cap_at_hold"
    """The held amount is charged and the rest is reported as ``uncharged_micros`` (the default)."""
    ALLOW_WITHIN_CREDIT_LINE = "allow_within_credit_line"
    """The actual amount is charged if the spend guard allows it (balance and credit line, budgets);
    otherwise the held amount, as with ``cap_at_hold``."""


DEFAULT_HOLD_OVERRUN = HoldOverrun.CAP_AT_HOLD
DEFAULT_HOLD_TTL = timedelta(minutes=15)
MIN_HOLD_TTL = timedelta(seconds=1)
MAX_HOLD_TTL = timedelta(hours=24)


class Hold(msgspec.Struct, kw_only=True):
    """One reservation. ``amount_micros`` is what it holds; the settle fields are set once, when it
    closes (``status`` leaves ``active`` and never changes again)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    product_id: uuid.UUID
    project_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    """The API token that placed the hold: its budget (and the project's) counts the hold as held."""
    max_quantity: int | None = None
    amount_micros: int
    created_at: datetime
    expires_at: datetime
    status: HoldStatus = HoldStatus.ACTIVE
    closed_at: datetime | None = None
    event_id: str | None = None
    settled_quantity: int | None = None
    charged_micros: int = 0
    uncharged_micros: int = 0
    overrun: HoldOverrun | None = None
    """The rule applied when the settle asked for more than the hold (None: it did not)."""
    overrun_denial: DenialReason | None = None
    """Why ``allow_within_credit_line`` charged only the hold (the spend guard's reason)."""

    @property
    def active(self) -> bool:
        return self.status == HoldStatus.ACTIVE


def check_ttl(ttl_seconds: object) -> timedelta:
    if ttl_seconds is None:
        return DEFAULT_HOLD_TTL
    low, high = int(MIN_HOLD_TTL.total_seconds()), int(MAX_HOLD_TTL.total_seconds())
    if type(ttl_seconds) is not int or not low <= ttl_seconds <= high:
        raise InvalidInput("ttl_seconds", f"ttl_seconds must be a whole number from {low} to {high}",
                           code="invalid_ttl")
    return timedelta(seconds=ttl_seconds)


def new_hold(*, hold_id: uuid.UUID, organization_id: uuid.UUID, product: Product, project_id: uuid.UUID | None,
             max_quantity: int | None, amount_micros: int | None, ttl: timedelta, now: datetime,
             token_id: uuid.UUID | None = None) -> Hold:
    """A hold of ``amount_micros``, or of the price of ``max_quantity`` units (exactly one of them)."""
    if (max_quantity is None) == (amount_micros is None):
        raise InvalidInput("amount_micros", "give either amount_micros or max_quantity", code="invalid_hold")
    if max_quantity is not None:
        if type(max_quantity) is not int or not 1 <= max_quantity <= MAX_QUANTITY:
            raise InvalidInput("max_quantity", f"max_quantity must be a whole number from 1 to {MAX_QUANTITY}",
                               code="invalid_quantity")
        amount = max_quantity * product.unit_price_micros
    else:
        amount = amount_micros  # type: ignore[assignment]
    if type(amount) is not int or not 1 <= amount <= MAX_MICROS:
        raise InvalidInput("max_quantity" if max_quantity is not None else "amount_micros",
                           "the hold must be a positive whole number of micro-dollars within range",
                           code="amount_out_of_range")
    return Hold(id=hold_id, organization_id=organization_id, product_id=product.id, project_id=project_id,
                token_id=token_id, max_quantity=max_quantity, amount_micros=amount, created_at=now,
                expires_at=now + ttl)


def same_request(stored: Hold, requested: Hold) -> bool:
    """Whether a retried hold request (same id) describes the stored hold."""
    return (stored.product_id, stored.project_id, stored.max_quantity, stored.amount_micros) == (
        requested.product_id, requested.project_id, requested.max_quantity, requested.amount_micros)


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """What settling a hold charges. ``rejected``: nothing is written (the ``reject`` rule)."""

    charge_micros: int
    uncharged_micros: int = 0
    overrun: HoldOverrun | None = None
    rejected: bool = False
    denial: DenialReason | None = None
    """Why ``allow_within_credit_line`` charged only the hold (the spend guard's reason)."""


def settle(wallet: WalletAccount, hold: Hold, actual_micros: int, rule: HoldOverrun, now: datetime,
           budgets: Sequence[ScopedBudget] = ()) -> Settlement:
    """Decide what settling ``hold`` at ``actual_micros`` charges, on the locked ``wallet`` that still
    counts the hold as held.

    Up to the held amount, the actual amount is charged whatever the caps say now: the hold was the
    decision, and every debit and hold since was decided with it counted as spent. Above it, ``rule``
    decides; ``allow_within_credit_line`` asks the spend guard about the whole actual amount with this
    hold released, so spent + held <= cap still holds for every cap, the hold's project and token
    budgets (``budgets``, which still count the hold as held) included.
    """
    if actual_micros <= hold.amount_micros:
        return Settlement(charge_micros=actual_micros)
    excess = actual_micros - hold.amount_micros
    if rule == HoldOverrun.REJECT:
        return Settlement(charge_micros=0, uncharged_micros=excess, overrun=rule, rejected=True)
    if rule == HoldOverrun.ALLOW_WITHIN_CREDIT_LINE:
        released = msgspec.structs.replace(wallet, held_micros=wallet.held_micros - hold.amount_micros)
        scoped = [msgspec.structs.replace(b, held_micros=max(b.held_micros - hold.amount_micros, 0)) for b in budgets]
        decision = decide(released, actual_micros, now, reserve=True, budgets=scoped)
        if decision.allowed:
            return Settlement(charge_micros=actual_micros, overrun=rule)
        return Settlement(charge_micros=hold.amount_micros, uncharged_micros=excess, overrun=rule,
                          denial=decision.reason)
    return Settlement(charge_micros=hold.amount_micros, uncharged_micros=excess, overrun=rule)


def closed(hold: Hold, status: HoldStatus, now: datetime, *, event_id: str | None = None,
           quantity: int | None = None, settlement: Settlement | None = None) -> Hold:
    """The hold as it closes (settled, released or expired)."""
    return msgspec.structs.replace(
        hold, status=status, closed_at=now, event_id=event_id, settled_quantity=quantity,
        charged_micros=settlement.charge_micros if settlement else 0,
        uncharged_micros=settlement.uncharged_micros if settlement else 0,
        overrun=settlement.overrun if settlement else None,
        overrun_denial=settlement.denial if settlement else None)
