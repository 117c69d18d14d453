"""Credit packs and add-credits: the seed's packs, its three button states word for word, and the
$5–$5,000 bounds of adding credits."""

from __future__ import annotations

import pytest

from billing_core.catalog import Catalog
from billing_core.credit_packs import (
    PACK_MESSAGES,
    CreditPack,
    PackState,
    check_add_credits_amount,
    check_pack,
    pack_offer,
    packs,
)
from billing_core.errors import InvalidInput
from billing_core.permissions import Actor, Permission, Role
from tests.unit.domain_builders import CENT, DOLLAR, ROLES, person, token

# The seed's table: | Pack | Credits added |
SEED_PACKS = [("$10", "$10.000"), ("$25", "$25.000"), ("$50", "$50.000"), ("$100", "$100.000"),
              ("$500", "$500.000"), ("$1,000", "$1,000.000")]


def test_the_seeds_six_packs(catalog: Catalog) -> None:
    offered = packs(catalog)
    assert [(p.label, p.credits_label) for p in offered] == SEED_PACKS
    assert offered[-1] == CreditPack(1000, 1000 * DOLLAR, "$1,000", "$1,000.000")
    assert all(p.credits_micros == p.price_dollars * DOLLAR for p in offered)


@pytest.mark.parametrize("role", ROLES)
def test_no_active_subscription(catalog: Catalog, role: Role) -> None:
    offer = pack_offer(catalog, has_active_subscription=False, actor=person(role))
    assert offer.state is PackState.NO_SUBSCRIPTION
    assert offer.message == "Subscribe to a plan first to purchase credit packs"
    assert offer.enabled is False
    assert len(offer.packs) == 6  # the packs still show, disabled


@pytest.mark.parametrize("role", [Role.OWNER, Role.MEMBER])
def test_active_subscription_viewer_is_owner_or_member(catalog: Catalog, role: Role) -> None:
    offer = pack_offer(catalog, has_active_subscription=True, actor=person(role))
    assert offer.state is PackState.NOT_PRIMARY_OWNER
    assert offer.message == "Only the team creator can purchase credit packs"
    assert offer.enabled is False


def test_active_subscription_viewer_is_primary_owner(catalog: Catalog) -> None:
    offer = pack_offer(catalog, has_active_subscription=True, actor=person(Role.PRIMARY_OWNER))
    assert offer.state is PackState.AVAILABLE
    assert offer.message == "Purchase add-on packs for extra credits on top of your plan"
    assert offer.enabled is True
    assert offer.packs == packs(catalog)


@pytest.mark.parametrize(("actor", "state"), [
    (token(Permission.CREDIT_PACKS_PURCHASE), PackState.AVAILABLE),
    (token(Permission.BILLING_READ, Permission.BILLING_UPDATE), PackState.NOT_PRIMARY_OWNER),
])
def test_tokens_follow_their_scopes(catalog: Catalog, actor: Actor, state: PackState) -> None:
    assert pack_offer(catalog, has_active_subscription=True, actor=actor).state is state


def test_messages_cover_every_state() -> None:
    assert set(PACK_MESSAGES) == set(PackState)


@pytest.mark.parametrize("dollars", [10, 25, 50, 100, 500, 1000])
def test_check_pack_accepts_the_packs(catalog: Catalog, dollars: int) -> None:
    assert check_pack(catalog, dollars).credits_micros == dollars * DOLLAR


@pytest.mark.parametrize("choice", [0, 5, 15, 2000, -10, "10", 10.0, True, None])
def test_check_pack_refuses_anything_else(catalog: Catalog, choice: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_pack(catalog, choice)
    assert (info.value.field, info.value.code) == ("pack", "unknown_pack")
    assert info.value.message == "choose one of the packs: $10, $25, $50, $100, $500, $1,000"


@pytest.mark.parametrize("amount", [5 * DOLLAR, 5 * DOLLAR + CENT, 12_340_000, 4_999 * DOLLAR + 99 * CENT,
                                    5_000 * DOLLAR])
def test_add_credits_between_5_and_5000_dollars(catalog: Catalog, amount: int) -> None:
    assert check_add_credits_amount(catalog, amount) == amount


@pytest.mark.parametrize("amount", [0, 5 * DOLLAR - CENT, 5 * DOLLAR - 1, 5_000 * DOLLAR + 1, 5_000 * DOLLAR + CENT,
                                    -5 * DOLLAR, 5.0 * DOLLAR, "5000000", True, None])
def test_add_credits_outside_the_bounds_shows_the_seeds_note(catalog: Catalog, amount: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_add_credits_amount(catalog, amount)
    assert (info.value.field, info.value.code) == ("amount", "amount_out_of_range")
    assert info.value.message == "Enter an amount between $5 and $5000."


@pytest.mark.parametrize("amount", [5 * DOLLAR + 1, 12_345_678, 5_000 * DOLLAR - 1])
def test_add_credits_in_whole_cents_only(catalog: Catalog, amount: int) -> None:
    with pytest.raises(InvalidInput) as info:
        check_add_credits_amount(catalog, amount)
    assert (info.value.field, info.value.code) == ("amount", "invalid_amount")
