"""In-memory adapters for every port: used by tests, by the offline ``make run`` and by hosts."""

from adapters.fakes.bundle import InMemoryBilling, in_memory_billing
from adapters.fakes.clock import FixedClock, OffsetFileClock, SystemClock
from adapters.fakes.delivery import (
    InMemoryLegalInvoicing,
    InMemoryMailer,
    InMemoryTaxIdVerifier,
    InMemoryWebhookSender,
)
from adapters.fakes.payment_provider import InMemoryPaymentProvider
from adapters.fakes.storage import InMemoryStore, InMemoryTokenReader, InMemoryUnitOfWork

__all__ = [
    "FixedClock",
    "InMemoryBilling",
    "InMemoryLegalInvoicing",
    "InMemoryMailer",
    "InMemoryPaymentProvider",
    "InMemoryStore",
    "InMemoryTaxIdVerifier",
    "InMemoryTokenReader",
    "InMemoryUnitOfWork",
    "InMemoryWebhookSender",
    "OffsetFileClock",
    "SystemClock",
    "in_memory_billing",
]
