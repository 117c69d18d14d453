"""Prove a storage adapter with billing-core's contract kit: the whole storage suite, run here on
the in-memory fake that ships with billing-core.

Copy this file into your own tests and change the ``storage`` fixture to build your unit of work
(see ``docs/contract-kit.md``). Every test gets a fresh ``storage``: a factory of units of work over
one empty database (or store) that all of them share.

Run it with ``pytest examples/test_contract_kit.py`` (needs ``billing-core[testing]``).
"""

from __future__ import annotations

import pytest

from adapters.fakes import InMemoryStore, InMemoryUnitOfWork
from adapters.testing import contracts
from adapters.testing.storage import StorageBackend


@pytest.fixture
def storage() -> StorageBackend:
    """Your adapter goes here: ``StorageBackend(<name>, <a callable returning a new UnitOfWork>)``."""
    store = InMemoryStore()
    return StorageBackend("in-memory", lambda: InMemoryUnitOfWork(store))


# One test class per contract, named Test<Contract> so that pytest collects it. To run only some,
# subclass them one by one instead: ``class TestWalletRepository(contracts.WalletRepositoryContract): pass``.
for _contract in contracts.STORAGE_CONTRACTS:
    _name = "Test" + _contract.__name__.removesuffix("Contract")
    globals()[_name] = type(_name, (_contract,), {"__module__": __name__})
