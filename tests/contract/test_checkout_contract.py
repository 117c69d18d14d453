"""The kit's :mod:`adapters.testing.contracts.checkout` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestConditionalCheckoutWrites(contracts.ConditionalCheckoutWritesContract):
    pass


class TestOrganizationListings(contracts.OrganizationListingsContract):
    pass


class TestOnePlanSubscriptionPerProviderId(contracts.OnePlanSubscriptionPerProviderIdContract):
    pass


class TestInboxInTheUnitOfWork(contracts.InboxInTheUnitOfWorkContract):
    pass
