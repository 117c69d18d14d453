"""The kit's :mod:`adapters.testing.contracts.repositories` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestOrganizationRepository(contracts.OrganizationRepositoryContract):
    pass


class TestPlanSubscriptionRepository(contracts.PlanSubscriptionRepositoryContract):
    pass


class TestProductSubscriptionRepository(contracts.ProductSubscriptionRepositoryContract):
    pass


class TestUsageRepository(contracts.UsageRepositoryContract):
    pass


class TestInvoiceRepository(contracts.InvoiceRepositoryContract):
    pass


class TestPaymentMethodRepository(contracts.PaymentMethodRepositoryContract):
    pass


class TestSettingsRepository(contracts.SettingsRepositoryContract):
    pass


class TestPaymentRepository(contracts.PaymentRepositoryContract):
    pass


class TestRefundRepository(contracts.RefundRepositoryContract):
    pass


class TestCheckoutRepository(contracts.CheckoutRepositoryContract):
    pass


class TestOutboxRepository(contracts.OutboxRepositoryContract):
    pass


class TestInboxRepository(contracts.InboxRepositoryContract):
    pass


class TestIdempotencyRepository(contracts.IdempotencyRepositoryContract):
    pass


class TestUsageTotals(contracts.UsageTotalsContract):
    pass


class TestPaymentByReference(contracts.PaymentByReferenceContract):
    pass
