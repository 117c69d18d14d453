"""Credit pack offers (the seed's three messages) and add-credits bounds."""

from __future__ import annotations

import uuid

import pytest

from billing_core.catalog import Catalog
from billing_core.credit_packs import PackState, check_add_credits_amount, check_pack, pack_offer, packs
from billing_core.errors import InvalidInput
from billing_core.permissions import Actor, Role


def actor(role: Role) -> Actor:
    return Actor(organization_id=uuid.uuid4(), subject="u", role=role)


def test_no_subscription_message(catalog: Catalog) -> None:
    offer = pack_offer(catalog, has_active_subscription=False, actor=actor(Role.PRIMARY_OWNER))
    assert offer.state is PackState.NO_SUBSCRIPTION
    assert offer.message == "Subscribe to a plan first to purchase credit packs"
    assert not offer.enabled


@pytest.mark.parametrize("role", [Role.OWNER, Role.MEMBER])
def test_not_primary_owner_message(catalog: Catalog, role: Role) -> None:
    offer = pack_offer(catalog, has_active_subscription=True, actor=actor(role))
    assert offer.state is PackState.NOT_PRIMARY_OWNER
    assert offer.message == "Only the team creator can purchase credit packs"
    assert not offer.enabled


def test_available_message(catalog: Catalog) -> None:
    offer = pack_offer(catalog, has_active_subscription=True, actor=actor(Role.PRIMARY_OWNER))
    assert offer.state is PackState.AVAILABLE
    assert offer.message == "Purchase add-on packs for extra credits on top of your plan"
    assert offer.enabled
    assert offer.packs == packs(catalog)


def test_pack_labels(catalog: Catalog) -> None:
    listed = packs(catalog)
    assert [p.label for p in listed] == ["$10", "$25", "$50", "$100", "$500", "$1,000"]
    assert listed[-1].credits_label == "$1,000.000"
    assert listed[0].credits_micros == 10_000_000


def test_check_pack(catalog: Catalog) -> None:
    assert check_pack(catalog, 25).credits_micros == 25_000_000
    for bad in (30, 25.0, "25", True):
        with pytest.raises(InvalidInput) as info:
            check_pack(catalog, bad)
        assert info.value.code == "unknown_pack"


@pytest.mark.parametrize("micros", [5_000_000, 5_000_000_000, 12_340_000, 5_000_010_000 - 10_000])
def test_add_credits_within_bounds(catalog: Catalog, micros: int) -> None:
    assert check_add_credits_amount(catalog, micros) == micros


@pytest.mark.parametrize("micros", [4_990_000, 5_000_010_000, 0, -5_000_000, 4_999_999])
def test_add_credits_out_of_bounds(catalog: Catalog, micros: int) -> None:
    with pytest.raises(InvalidInput) as info:
        check_add_credits_amount(catalog, micros)
    assert info.value.code == "amount_out_of_range"
    assert info.value.field == "amount"
    assert info.value.message == "Enter an amount between $5 and $5000."


@pytest.mark.parametrize("micros", [5_000_001, 12_345_678, 4_999_999_999])
def test_add_credits_whole_cents_only(catalog: Catalog, micros: int) -> None:
    with pytest.raises(InvalidInput) as info:
        check_add_credits_amount(catalog, micros)
    assert info.value.code == "invalid_amount"


@pytest.mark.parametrize("value", [5.0, "5000000", True, None])
def test_add_credits_requires_int(catalog: Catalog, value: object) -> None:
    with pytest.raises(InvalidInput):
        check_add_credits_amount(catalog, value)
