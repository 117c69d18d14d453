"""Everything in memory, wired: the quickest way to embed or test billing-core."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from adapters.einvoice import XmlEInvoiceRenderer
from adapters.fakes.clock import FixedClock
from adapters.fakes.delivery import InMemoryLegalInvoicing, InMemoryMailer, InMemoryTaxIdVerifier, InMemoryWebhookSender
from adapters.fakes.payment_provider import InMemoryPaymentProvider
from adapters.fakes.storage import InMemoryStore, InMemoryTokenReader, in_memory_uow_factory
from billing_core.catalog import Catalog, load_catalog
from billing_core.services.context import BillingContext, BillingPolicy
from billing_core.services.dispatch import Deliverers


@dataclass
class InMemoryBilling:
    """A :class:`BillingContext` over fakes, with the fakes at hand for inspection."""

    clock: FixedClock
    store: InMemoryStore = field(default_factory=InMemoryStore)
    payments: InMemoryPaymentProvider = field(default_factory=InMemoryPaymentProvider)
    mailer: InMemoryMailer = field(default_factory=InMemoryMailer)
    webhooks: InMemoryWebhookSender = field(default_factory=InMemoryWebhookSender)
    legal: InMemoryLegalInvoicing = field(default_factory=InMemoryLegalInvoicing)
    tax_ids: InMemoryTaxIdVerifier = field(default_factory=InMemoryTaxIdVerifier)
    catalog: Catalog = field(default_factory=load_catalog)
    policy: BillingPolicy = field(default_factory=BillingPolicy)

    @property
    def ctx(self) -> BillingContext:
        return BillingContext(uow=in_memory_uow_factory(self.store), clock=self.clock, catalog=self.catalog,
                              payments=self.payments, tax_ids=self.tax_ids, policy=self.policy,
                              tokens=InMemoryTokenReader(self.store))

    @property
    def deliverers(self) -> Deliverers:
        return Deliverers(mailer=self.mailer, webhooks=self.webhooks, legal=self.legal, einvoice=XmlEInvoiceRenderer())


def in_memory_billing(start: datetime | None = None, *, policy: BillingPolicy | None = None) -> InMemoryBilling:
    return InMemoryBilling(clock=FixedClock(start), policy=policy or BillingPolicy())
