"""The storage contract suites, one class per port (or per guarantee), to subclass in a test module.

Every test takes the ``storage`` fixture (a :class:`~adapters.testing.storage.StorageBackend`); the
``Sql*`` classes take ``sql_storage`` and need a SQLAlchemy engine on the shipped schema. A host
proves its own unit of work by providing that fixture and subclassing the classes it wants::

    class TestWalletRepository(contracts.WalletRepositoryContract):
        pass

:data:`STORAGE_CONTRACTS` lists every class that runs on ``storage``; see ``docs/contract-kit.md``.
"""

from __future__ import annotations

from adapters.testing.contracts.batch import (
    DebitManyContract,
    DebitManyEqualsDebitsOneByOneContract,
    RecordManyContract,
)
from adapters.testing.contracts.budgets import BudgetRepositoryContract
from adapters.testing.contracts.checkout import (
    ConditionalCheckoutWritesContract,
    InboxInTheUnitOfWorkContract,
    OnePlanSubscriptionPerProviderIdContract,
    OrganizationListingsContract,
)
from adapters.testing.contracts.grants import GrantRepositoryContract
from adapters.testing.contracts.holds import HoldRepositoryContract
from adapters.testing.contracts.isolation import IsolationContract
from adapters.testing.contracts.money_intents import (
    PaymentSaveIsConditionalContract,
    PlanChangeRepositoryContract,
    RefundRequestsCompleteOnceContract,
)
from adapters.testing.contracts.repositories import (
    CheckoutRepositoryContract,
    IdempotencyRepositoryContract,
    InboxRepositoryContract,
    InvoiceRepositoryContract,
    OrganizationRepositoryContract,
    OutboxRepositoryContract,
    PaymentByReferenceContract,
    PaymentMethodRepositoryContract,
    PaymentRepositoryContract,
    PlanSubscriptionRepositoryContract,
    ProductSubscriptionRepositoryContract,
    RefundRepositoryContract,
    SettingsRepositoryContract,
    UsageRepositoryContract,
    UsageTotalsContract,
)
from adapters.testing.contracts.scheduled_jobs import ScheduledJobRepositoryContract
from adapters.testing.contracts.sql_driver import SqlDriverStatementsContract
from adapters.testing.contracts.sql_storage import SqlStorageContract
from adapters.testing.contracts.tokens import TokenReaderContract
from adapters.testing.contracts.unit_of_work import UnitOfWorkContract
from adapters.testing.contracts.usage_debit import (
    UsageBatchPartsContract,
    UsageBatchWriteContract,
    UsageDebitContract,
)
from adapters.testing.contracts.wallet_ledger import (
    DebitEqualsTheReferenceModelContract,
    LedgerRepositoryContract,
    WalletRepositoryContract,
)

STORAGE_CONTRACTS: tuple[type, ...] = (
    BudgetRepositoryContract,
    HoldRepositoryContract,
    GrantRepositoryContract,
    OrganizationRepositoryContract,
    PlanSubscriptionRepositoryContract,
    ProductSubscriptionRepositoryContract,
    UsageRepositoryContract,
    InvoiceRepositoryContract,
    PaymentMethodRepositoryContract,
    SettingsRepositoryContract,
    PaymentRepositoryContract,
    RefundRepositoryContract,
    CheckoutRepositoryContract,
    OutboxRepositoryContract,
    InboxRepositoryContract,
    IdempotencyRepositoryContract,
    UsageTotalsContract,
    PaymentByReferenceContract,
    WalletRepositoryContract,
    DebitEqualsTheReferenceModelContract,
    LedgerRepositoryContract,
    UnitOfWorkContract,
    IsolationContract,
    DebitManyContract,
    DebitManyEqualsDebitsOneByOneContract,
    RecordManyContract,
    ScheduledJobRepositoryContract,
    ConditionalCheckoutWritesContract,
    OrganizationListingsContract,
    OnePlanSubscriptionPerProviderIdContract,
    InboxInTheUnitOfWorkContract,
    PaymentSaveIsConditionalContract,
    RefundRequestsCompleteOnceContract,
    PlanChangeRepositoryContract,
    UsageDebitContract,
    UsageBatchWriteContract,
    UsageBatchPartsContract,
    TokenReaderContract,
)
"""Every contract that runs on the ``storage`` fixture, i.e. on any implementation of the ports."""

SQL_CONTRACTS: tuple[type, ...] = (SqlStorageContract, SqlDriverStatementsContract)
"""The contracts of the SQLAlchemy adapter itself (its schema, driver statements): ``sql_storage``."""

__all__ = [
    "SQL_CONTRACTS",
    "STORAGE_CONTRACTS",
    "BudgetRepositoryContract",
    "CheckoutRepositoryContract",
    "ConditionalCheckoutWritesContract",
    "DebitEqualsTheReferenceModelContract",
    "DebitManyContract",
    "DebitManyEqualsDebitsOneByOneContract",
    "GrantRepositoryContract",
    "HoldRepositoryContract",
    "IdempotencyRepositoryContract",
    "InboxInTheUnitOfWorkContract",
    "InboxRepositoryContract",
    "InvoiceRepositoryContract",
    "IsolationContract",
    "LedgerRepositoryContract",
    "OnePlanSubscriptionPerProviderIdContract",
    "OrganizationListingsContract",
    "OrganizationRepositoryContract",
    "OutboxRepositoryContract",
    "PaymentByReferenceContract",
    "PaymentMethodRepositoryContract",
    "PaymentRepositoryContract",
    "PaymentSaveIsConditionalContract",
    "PlanChangeRepositoryContract",
    "PlanSubscriptionRepositoryContract",
    "ProductSubscriptionRepositoryContract",
    "RecordManyContract",
    "RefundRepositoryContract",
    "RefundRequestsCompleteOnceContract",
    "ScheduledJobRepositoryContract",
    "SettingsRepositoryContract",
    "SqlDriverStatementsContract",
    "SqlStorageContract",
    "TokenReaderContract",
    "UnitOfWorkContract",
    "UsageBatchPartsContract",
    "UsageBatchWriteContract",
    "UsageDebitContract",
    "UsageRepositoryContract",
    "UsageTotalsContract",
    "WalletRepositoryContract",
]
