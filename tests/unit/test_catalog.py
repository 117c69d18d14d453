"""The catalog: four tiers in order, metered products with stable ids, packs and add-credit bounds."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from billing_core.catalog import PRODUCT_NAMESPACE, Catalog, Plan, PlanCode, load_catalog, product_id_for
from billing_core.errors import InvalidInput, NotFound
from billing_core.money import Money
from tests.unit.domain_builders import DOLLAR


def test_tiers_are_the_seeds_four_in_order(catalog: Catalog) -> None:
    assert [p.name for p in catalog.plans] == ["Starter", "Pro", "Scale", "Enterprise"]
    assert [p.code for p in catalog.plans] == [PlanCode.STARTER, PlanCode.PRO, PlanCode.SCALE, PlanCode.ENTERPRISE]
    assert catalog.currency == "USD"


def test_every_plan_carries_its_terms(catalog: Catalog) -> None:
    for plan in catalog.plans:
        assert plan.description and plan.features
        assert plan.interval in ("month", "year")
        assert plan.price_cents > 0 and plan.included_credits_micros > 0
        assert plan.trial_days > 0 and plan.grace_days > 0 and plan.refund_window_days > 0
        assert plan.overage_credit_line_micros >= 0
    # Higher tiers cost more and protect more.
    prices = [p.price_cents for p in catalog.plans]
    lines = [p.overage_credit_line_micros for p in catalog.plans]
    assert prices == sorted(prices) and len(set(prices)) == 4
    assert lines == sorted(lines)


def test_shipped_plan_values(catalog: Catalog) -> None:
    pro = catalog.plan("pro")
    assert pro.price(catalog.currency) == Money(9900, "USD")
    assert pro.price("EUR") == Money(9900, "EUR")
    assert pro.included_credits_micros == 100 * DOLLAR
    assert pro.overage_credit_line_micros == 50 * DOLLAR
    assert (pro.trial_days, pro.grace_days, pro.refund_window_days, pro.prorate_refunds) == (14, 7, 14, True)
    assert catalog.plan("starter").overage_credit_line_micros == 0
    assert catalog.plan("enterprise").overage_credit_line_micros == 5_000 * DOLLAR
    assert catalog.plan(PlanCode.SCALE).price_cents == 49900


def test_unknown_plan_names_the_choices(catalog: Catalog) -> None:
    with pytest.raises(InvalidInput) as info:
        catalog.plan("platinum")
    assert (info.value.code, info.value.field) == ("unknown_plan", "plan")
    assert "starter, pro, scale, enterprise" in info.value.message
    with pytest.raises(InvalidInput):
        catalog.plan("Pro")  # codes are exact


def test_products_have_stable_ids_derived_from_their_code(catalog: Catalog) -> None:
    codes = [p.code for p in catalog.products]
    assert codes == ["compute", "storage", "inference"]
    for product in catalog.products:
        assert product.id == uuid.uuid5(PRODUCT_NAMESPACE, product.code) == product_id_for(product.code)
        assert catalog.product(product.id) is product
        assert catalog.product_by_code(product.code) is product
        assert product.unit and product.unit_price_micros > 0
    # Every installation agrees on the ids: a fresh load gives the same ones, and the namespace never changes.
    assert uuid.UUID("6f1c2a4e-9b3d-4c52-8a77-2d3e5f607182") == PRODUCT_NAMESPACE
    assert [p.id for p in load_catalog().products] == [p.id for p in catalog.products]
    compute = catalog.product_by_code("compute")
    assert (compute.unit, compute.unit_price_micros) == ("vCPU-hour", 40_000)


def test_unknown_products(catalog: Catalog) -> None:
    with pytest.raises(NotFound) as missing:
        catalog.product(uuid.uuid4())
    assert missing.value.kind == "product"
    with pytest.raises(InvalidInput) as info:
        catalog.product_by_code("gpu")
    assert (info.value.code, info.value.field) == ("unknown_product", "product")


def test_credit_packs_and_add_credit_bounds_are_the_seeds(catalog: Catalog) -> None:
    assert catalog.credit_pack_dollars == (10, 25, 50, 100, 500, 1000)
    assert catalog.credit_pack_micros == tuple(d * DOLLAR for d in (10, 25, 50, 100, 500, 1000))
    assert (catalog.add_credits_min_dollars, catalog.add_credits_max_dollars) == (5, 5000)
    assert catalog.wallet.trial_grant_micros == 5 * DOLLAR
    assert catalog.wallet.minimum_production_credit_micros == 0


_CUSTOM = """
currency = "EUR"
[[plans]]
code = "pro"
name = "Pro"
description = "d"
price_cents = 1234
interval = "year"
features = ["a", "b"]
included_credits_micros = 7
trial_days = 3
overage_credit_line_micros = 0
grace_days = 2
refund_window_days = 5
prorate_refunds = false
[[products]]
code = "gpu"
name = "GPU"
unit = "GPU-hour"
unit_price_micros = 900000
[credit_packs]
amounts_dollars = [20]
[add_credits]
min_dollars = 1
max_dollars = 9
[wallet]
trial_grant_micros = 0
minimum_production_credit_micros = 1000000
"""


def test_a_host_can_load_its_own_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(_CUSTOM, encoding="utf-8")
    custom = load_catalog(path)
    assert custom.currency == "EUR"
    assert custom.plans == (Plan(code=PlanCode.PRO, name="Pro", description="d", price_cents=1234, interval="year",
                                 features=("a", "b"), included_credits_micros=7, trial_days=3,
                                 overage_credit_line_micros=0, grace_days=2, refund_window_days=5,
                                 prorate_refunds=False),)
    assert custom.products[0].id == product_id_for("gpu")
    assert custom.credit_pack_micros == (20 * DOLLAR,)
    assert custom.wallet.minimum_production_credit_micros == DOLLAR


def test_a_catalog_with_an_unknown_plan_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(_CUSTOM.replace('code = "pro"', 'code = "gold"'), encoding="utf-8")
    with pytest.raises(ValueError, match="gold"):
        load_catalog(path)


@pytest.mark.parametrize("price", ["0", "-5"])
def test_a_catalog_with_a_product_that_costs_nothing_is_refused(tmp_path: Path, price: str) -> None:
    # Each metered event is a ledger transfer of its price; the ledger refuses a zero posting.
    path = tmp_path / "catalog.toml"
    path.write_text(_CUSTOM.replace("unit_price_micros = 900000", f"unit_price_micros = {price}"), encoding="utf-8")
    with pytest.raises(ValueError, match="'gpu': unit_price_micros must be a positive integer"):
        load_catalog(path)


def test_a_catalog_that_names_a_product_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    second = '[[products]]\ncode = "gpu"\nname = "GPU again"\nunit = "hour"\nunit_price_micros = 1\n'
    path.write_text(_CUSTOM.replace("[credit_packs]", second + "[credit_packs]"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"unique.*gpu"):
        load_catalog(path)


def test_a_provider_price_maps_to_its_plan_by_id_then_by_lookup_key(tmp_path: Path, catalog: Catalog) -> None:
    assert catalog.plan_for_price("price_anything", "scale") == catalog.plan("scale")
    assert catalog.plan_for_price("price_anything", "gold") is None
    assert catalog.plan_for_price("price_anything") is None
    path = tmp_path / "catalog.toml"
    path.write_text(_CUSTOM.replace('code = "pro"', 'code = "pro"\nprovider_price_id = "price_pro_eur"', 1),
                    encoding="utf-8")
    custom = load_catalog(path)
    assert custom.plan("pro").provider_price_id == "price_pro_eur"
    assert custom.plan_for_price("price_pro_eur", None) == custom.plan("pro")
    assert catalog.plan("pro").provider_price_id is None
