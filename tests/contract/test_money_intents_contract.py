"""The kit's :mod:`adapters.testing.contracts.money_intents` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestPaymentSaveIsConditional(contracts.PaymentSaveIsConditionalContract):
    pass


class TestRefundRequestsCompleteOnce(contracts.RefundRequestsCompleteOnceContract):
    pass


class TestPlanChangeRepository(contracts.PlanChangeRepositoryContract):
    pass
