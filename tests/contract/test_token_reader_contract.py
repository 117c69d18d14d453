"""The kit's :mod:`adapters.testing.contracts.tokens` on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from adapters.testing import contracts


class TestTokenReader(contracts.TokenReaderContract):
    pass
