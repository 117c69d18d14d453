"""The kit's :mod:`adapters.testing.contracts.wallet_ledger` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestWalletRepository(contracts.WalletRepositoryContract):
    pass


class TestDebitEqualsTheReferenceModel(contracts.DebitEqualsTheReferenceModelContract):
    pass


class TestLedgerRepository(contracts.LedgerRepositoryContract):
    pass
