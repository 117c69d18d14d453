"""Credit packs and add-credits: what may be bought, by whom, and what the console says.

The three pack button states and their messages are the seed's, word for word.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from billing_core.catalog import Catalog
from billing_core.errors import InvalidInput
from billing_core.money import MICROS_PER_DOLLAR, format_credits
from billing_core.permissions import Action, Actor, allows


class PackState(StrEnum):
    NO_SUBSCRIPTION = "no_subscription"
    NOT_PRIMARY_OWNER = "not_primary_owner"
    AVAILABLE = "available"


PACK_MESSAGES: dict[PackState, str] = {
    PackState.NO_SUBSCRIPTION: "Subscribe to a plan first to purchase credit packs",
    PackState.NOT_PRIMARY_OWNER: "Only the team creator can purchase credit packs",
    PackState.AVAILABLE: "Purchase add-on packs for extra credits on top of your plan",
}


class CreditPack(msgspec.Struct, frozen=True):
    price_dollars: int
    credits_micros: int
    label: str
    credits_label: str


class PackOffer(msgspec.Struct, frozen=True):
    state: PackState
    message: str
    enabled: bool
    packs: tuple[CreditPack, ...]


def packs(catalog: Catalog) -> tuple[CreditPack, ...]:
    return tuple(
        CreditPack(d, d * MICROS_PER_DOLLAR, f"${d:,}", format_credits(d * MICROS_PER_DOLLAR))
        for d in catalog.credit_pack_dollars
    )


def pack_offer(catalog: Catalog, *, has_active_subscription: bool, actor: Actor) -> PackOffer:
    """The pack buttons' state for this viewer, as the seed's table says."""
    if not has_active_subscription:
        state = PackState.NO_SUBSCRIPTION
    elif not allows(actor, Action.PURCHASE_CREDIT_PACKS):
        state = PackState.NOT_PRIMARY_OWNER
    else:
        state = PackState.AVAILABLE
    return PackOffer(state, PACK_MESSAGES[state], state == PackState.AVAILABLE, packs(catalog))


def check_pack(catalog: Catalog, price_dollars: object) -> CreditPack:
    for pack in packs(catalog):
        if pack.price_dollars == price_dollars and type(price_dollars) is int:
            return pack
    raise InvalidInput("pack", "choose one of the packs: "
                       + ", ".join(f"${d:,}" for d in catalog.credit_pack_dollars), code="unknown_pack")


def check_add_credits_amount(catalog: Catalog, amount_micros: object) -> int:
    """Add-credits amounts: $5 to $5,000 in whole cents."""
    low = catalog.add_credits_min_dollars * MICROS_PER_DOLLAR
    high = catalog.add_credits_max_dollars * MICROS_PER_DOLLAR
    # The seed's note under the amount field, word for word.
    message = f"Enter an amount between ${catalog.add_credits_min_dollars} and ${catalog.add_credits_max_dollars}."
    if type(amount_micros) is not int or not low <= amount_micros <= high:
        raise InvalidInput("amount", message, code="amount_out_of_range")
    if amount_micros % 10_000:
        raise InvalidInput("amount", "amount must be whole cents", code="invalid_amount")
    return amount_micros
