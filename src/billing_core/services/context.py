"""What every use case receives: the ports and the configuration, built once by the host."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from billing_core.catalog import Catalog
from billing_core.einvoice import DEMO_SELLER, SellerConfig
from billing_core.ports import Clock, PaymentProvider, TaxIdVerifier, TokenReader, UnitOfWorkFactory
from billing_core.tax import TaxConfig


@dataclass(frozen=True, kw_only=True)
class BillingPolicy:
    """Deployment choices that are not prices."""

    invoice_number_prefix: str = "INV-"
    invoice_due_days: int = 14
    allow_private_webhook_urls: bool = False
    require_https_webhooks: bool = True
    auto_recharge_max_failures: int = 3
    seller_name: str = "billing-core demo GmbH"
    outbox_lease: timedelta = timedelta(minutes=10)
    """How long a dispatcher keeps the messages it claimed before another may take them over."""


@dataclass(frozen=True, kw_only=True)
class BillingContext:
    """The ports a use case may use. Hosts build one (the HTTP app's container does)."""

    uow: UnitOfWorkFactory
    clock: Clock
    catalog: Catalog
    payments: PaymentProvider
    tax_ids: TaxIdVerifier | None = None
    tax: TaxConfig = field(default_factory=TaxConfig)
    policy: BillingPolicy = field(default_factory=BillingPolicy)
    seller: SellerConfig = DEMO_SELLER
    """Who issues the legal invoices: the seller terms of every e-invoice (EN 16931)."""
    snapshot: UnitOfWorkFactory | None = None
    """Read-only units of work that do not wait for writers (on SQLite: a read of the WAL snapshot
    outside the single writer's queue), for background reads whose result a later, guarded write
    checks (the worker's grant sweep, ADR 0016). They cannot commit. None: ``uow``."""
    tokens: TokenReader | None = None
    """How :func:`~billing_core.services.organizations.authenticate` reads a token: in one statement
    outside any transaction (the HTTP app's hot path); None: inside a unit of work of ``uow``."""
