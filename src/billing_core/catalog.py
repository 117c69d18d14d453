"""Plans, metered products, credit packs and the add-credits bounds, loaded from configuration.

The shipped configuration is ``catalog.toml`` beside this module; a host can pass its own file.
Product ids are stable UUIDs derived from the product code, so every installation agrees on them.
"""

from __future__ import annotations

import tomllib
import uuid
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from billing_core.errors import InvalidInput, NotFound
from billing_core.money import MICROS_PER_DOLLAR, Money

PRODUCT_NAMESPACE = uuid.UUID("6f1c2a4e-9b3d-4c52-8a77-2d3e5f607182")


class PlanCode(StrEnum):
    STARTER = "starter"
    PRO = "pro"
    SCALE = "scale"
    ENTERPRISE = "enterprise"


class Plan(msgspec.Struct, frozen=True):
    """A subscription tier with its price and terms."""

    code: PlanCode
    name: str
    description: str
    price_cents: int
    interval: str
    features: tuple[str, ...]
    included_credits_micros: int
    trial_days: int
    overage_credit_line_micros: int
    grace_days: int
    refund_window_days: int
    prorate_refunds: bool
    provider_price_id: str | None = None
    """The payment provider's recurring price for this plan (Stripe ``price_…``), when the catalog
    names one; otherwise the provider's price whose lookup key is the plan code stands for it."""

    def price(self, currency_iso: str) -> Money:
        return Money(self.price_cents, currency_iso)


class Product(msgspec.Struct, frozen=True):
    """A metered resource: usage is counted in ``unit`` and priced per unit in micro-dollars."""

    id: uuid.UUID
    code: str
    name: str
    unit: str
    unit_price_micros: int


class WalletTerms(msgspec.Struct, frozen=True):
    trial_grant_micros: int
    minimum_production_credit_micros: int


class Catalog(msgspec.Struct, frozen=True):
    """Everything priced: plans in tier order, products, packs and add-credit bounds."""

    currency: str
    plans: tuple[Plan, ...]
    products: tuple[Product, ...]
    credit_pack_dollars: tuple[int, ...]
    add_credits_min_dollars: int
    add_credits_max_dollars: int
    wallet: WalletTerms

    def plan(self, code: str) -> Plan:
        for plan in self.plans:
            if plan.code == code:
                return plan
        raise InvalidInput("plan", f"unknown plan {code!r}; choose one of "
                           + ", ".join(p.code for p in self.plans), code="unknown_plan")

    def plan_for_price(self, price_id: str, lookup_key: str | None = None) -> Plan | None:
        """The plan a provider price stands for: the one naming ``price_id``, else the one whose
        code is the price's lookup key; None for a price the catalog does not know."""
        for plan in self.plans:
            if plan.provider_price_id is not None and plan.provider_price_id == price_id:
                return plan
        for plan in self.plans:
            if lookup_key is not None and plan.code == lookup_key:
                return plan
        return None

    def product(self, product_id: uuid.UUID) -> Product:
        for product in self.products:
            if product.id == product_id:
                return product
        raise NotFound("product", product_id)

    def product_by_code(self, code: str) -> Product:
        for product in self.products:
            if product.code == code:
                return product
        raise InvalidInput("product", f"unknown product {code!r}", code="unknown_product")

    @property
    def credit_pack_micros(self) -> tuple[int, ...]:
        return tuple(d * MICROS_PER_DOLLAR for d in self.credit_pack_dollars)


def product_id_for(code: str) -> uuid.UUID:
    """The stable id of a product code."""
    return uuid.uuid5(PRODUCT_NAMESPACE, code)


def _build(raw: dict[str, Any]) -> Catalog:
    plans = tuple(
        Plan(
            code=PlanCode(p["code"]), name=p["name"], description=p["description"],
            price_cents=int(p["price_cents"]), interval=p["interval"], features=tuple(p["features"]),
            included_credits_micros=int(p["included_credits_micros"]), trial_days=int(p["trial_days"]),
            overage_credit_line_micros=int(p["overage_credit_line_micros"]), grace_days=int(p["grace_days"]),
            refund_window_days=int(p["refund_window_days"]), prorate_refunds=bool(p["prorate_refunds"]),
            provider_price_id=str(p["provider_price_id"]) if p.get("provider_price_id") else None,
        )
        for p in raw["plans"]
    )
    products = tuple(
        Product(id=product_id_for(p["code"]), code=p["code"], name=p["name"], unit=p["unit"],
                unit_price_micros=int(p["unit_price_micros"]))
        for p in raw["products"]
    )
    for product in products:
        # Every metered event is a ledger transfer of its price, and the ledger refuses a zero
        # posting: a free product would make each of its events fail at the debit.
        if product.unit_price_micros <= 0:
            raise ValueError(f"product {product.code!r}: unit_price_micros must be a positive integer, "
                             f"not {product.unit_price_micros}")
    codes = [product.code for product in products]
    if len(set(codes)) != len(codes):
        raise ValueError(f"product codes must be unique: {sorted(c for c in set(codes) if codes.count(c) > 1)}")
    return Catalog(
        currency=raw.get("currency", "USD"),
        plans=plans,
        products=products,
        credit_pack_dollars=tuple(int(d) for d in raw["credit_packs"]["amounts_dollars"]),
        add_credits_min_dollars=int(raw["add_credits"]["min_dollars"]),
        add_credits_max_dollars=int(raw["add_credits"]["max_dollars"]),
        wallet=WalletTerms(
            trial_grant_micros=int(raw["wallet"]["trial_grant_micros"]),
            minimum_production_credit_micros=int(raw["wallet"]["minimum_production_credit_micros"]),
        ),
    )


def load_catalog(path: Path | None = None) -> Catalog:
    """Load the catalog from ``path``, or the one shipped with the package."""
    if path is None:
        text = resources.files("billing_core").joinpath("catalog.toml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return _build(tomllib.loads(text))
