"""The shipped catalog: plans in tier order, stable product ids, credit packs."""

from __future__ import annotations

import uuid

import pytest

from billing_core.catalog import PRODUCT_NAMESPACE, Catalog, PlanCode, load_catalog, product_id_for
from billing_core.errors import InvalidInput, NotFound


def test_four_plans_in_tier_order(catalog: Catalog) -> None:
    assert [p.name for p in catalog.plans] == ["Starter", "Pro", "Scale", "Enterprise"]
    assert [p.code for p in catalog.plans] == [PlanCode.STARTER, PlanCode.PRO, PlanCode.SCALE, PlanCode.ENTERPRISE]
    prices = [p.price_cents for p in catalog.plans]
    assert prices == sorted(prices)


def test_plan_lookup_and_price(catalog: Catalog) -> None:
    pro = catalog.plan("pro")
    assert pro.code is PlanCode.PRO
    assert pro.price("EUR").cents == 9900
    assert pro.price("EUR").currency_iso == "EUR"


def test_unknown_plan_is_invalid_input(catalog: Catalog) -> None:
    with pytest.raises(InvalidInput) as info:
        catalog.plan("platinum")
    assert info.value.code == "unknown_plan"
    assert info.value.field == "plan"
    assert "starter, pro, scale, enterprise" in info.value.message


def test_product_ids_are_stable_uuid5(catalog: Catalog) -> None:
    compute = catalog.product_by_code("compute")
    assert compute.id == uuid.uuid5(PRODUCT_NAMESPACE, "compute") == product_id_for("compute")
    assert str(product_id_for("compute")) == str(uuid.uuid5(uuid.UUID("6f1c2a4e-9b3d-4c52-8a77-2d3e5f607182"),
                                                            "compute"))
    assert load_catalog().product_by_code("compute").id == compute.id
    assert len({p.id for p in catalog.products}) == len(catalog.products)
    assert catalog.product(compute.id) is compute


def test_unknown_product(catalog: Catalog) -> None:
    with pytest.raises(NotFound):
        catalog.product(uuid.uuid4())
    with pytest.raises(InvalidInput) as info:
        catalog.product_by_code("gpu")
    assert info.value.code == "unknown_product"


def test_credit_packs_ten_to_one_thousand(catalog: Catalog) -> None:
    assert catalog.credit_pack_dollars == (10, 25, 50, 100, 500, 1000)
    assert catalog.credit_pack_micros[0] == 10_000_000
    assert catalog.credit_pack_micros[-1] == 1_000_000_000
    assert (catalog.add_credits_min_dollars, catalog.add_credits_max_dollars) == (5, 5000)
