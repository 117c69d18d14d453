"""The driver-level hot statements (``adapters.sqlalchemy.driver``) bind and refuse values exactly as
the SQLAlchemy column types do: rows they write read back through SQLAlchemy, rows SQLAlchemy
writes read back through them, and bad values come out as the same typed errors."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from adapters.sqlalchemy.tables import ledger_transactions
from adapters.testing.builders import NOW, fund, grant, new_org, usage_tx
from adapters.testing.storage import StorageBackend
from billing_core.errors import InvalidInput, NotFound
from billing_core.ledger import Account, EntryKind, LedgerTransaction, Posting
from billing_core.wallet import SubscriptionGate


class SqlDriverStatementsContract:
    """The driver-level hot statements against SQLAlchemy's column types, on ``sql_storage``."""

    def test_naive_transaction_times_are_refused_as_invalid_input(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        fund(sql_storage, org.id, 1_000)
        naive = NOW.replace(tzinfo=None)
        with sql_storage.uow() as uow:
            with pytest.raises(InvalidInput) as refused:
                uow.wallets.debit(org.id, 10, NOW, usage_tx(org.id, 10, "u", at=naive))
            assert refused.value.code == "invalid_datetime"
        with sql_storage.uow() as uow:
            with pytest.raises(InvalidInput):
                uow.wallets.post(grant(org.id, 10, "g", at=naive))
            assert uow.wallets.get(org.id).balance_micros == 1_000

    def test_out_of_range_amounts_are_invalid_input(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        huge = LedgerTransaction(id=uuid.uuid4(), organization_id=org.id, idempotency_key="huge", kind=EntryKind.GRANT,
                                 description="huge", reason=None, created_at=NOW,
                                 postings=(Posting(Account.WALLET, 2**70), Posting(Account.PROMOTIONAL_GRANTS, -2**70)))
        with sql_storage.uow() as uow, pytest.raises(InvalidInput):
            uow.wallets.post(huge)

    def test_a_wallet_of_an_unknown_organization_is_not_found(self, sql_storage: StorageBackend) -> None:
        with sql_storage.uow() as uow, pytest.raises(NotFound):
            uow.wallets.post(grant(uuid.uuid4(), 10))

    def test_times_written_by_the_driver_read_back_as_the_same_utc_instant(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        berlin = timezone(timedelta(hours=2))
        at = datetime(2026, 6, 1, 14, 0, 0, 123456, tzinfo=berlin)
        with sql_storage.uow() as uow:
            posted = uow.wallets.post(grant(org.id, 10, at=at))
            uow.commit()
        with sql_storage.uow() as uow:
            stored = uow.ledger.get_by_key(org.id, "grant")
        assert stored == posted.transaction
        assert stored is not None and stored.created_at == at and stored.created_at.utcoffset() == timedelta(0)
        assert sql_storage.engine is not None
        with sql_storage.engine.connect() as connection:
            by_time = connection.execute(select(ledger_transactions.c.idempotency_key)
                                         .where(ledger_transactions.c.created_at == at.astimezone(UTC))).all()
        assert [row[0] for row in by_time] == ["grant"]

    def test_sqlite_text_forms_are_the_ones_sqlalchemy_writes(self, sql_storage: StorageBackend) -> None:
        """On SQLite, range queries compare the stored text: the driver must write exactly SQLAlchemy's form."""
        if sql_storage.kind != "sqlite":
            pytest.skip("SQLite stores times and ids as text")
        org = new_org(sql_storage)
        fund(sql_storage, org.id, 1_000)
        with sql_storage.uow() as uow:
            uow.wallets.debit(org.id, 10, NOW, usage_tx(org.id, 10, "u"))
            uow.commit()
        assert sql_storage.engine is not None
        with sql_storage.engine.connect() as connection:
            stored = connection.execute(text(
                "SELECT t.id, t.organization_id, t.created_at, w.spend_day FROM ledger_transactions t "
                "JOIN wallets w ON w.organization_id = t.organization_id WHERE t.idempotency_key = 'u'")).one()
        assert stored[1] == org.id.hex and len(stored[0]) == 32
        assert stored[2] == "2026-03-14 09:30:00.000000"
        assert stored[3] == "2026-03-14"

    def test_a_gate_stored_by_sqlalchemy_is_what_the_debit_decides_on(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        fund(sql_storage, org.id, 1_000)
        since = datetime(2026, 3, 10, 8, 15, 0, 5, tzinfo=UTC)
        with sql_storage.uow() as uow:
            uow.wallets.set_gate(org.id, SubscriptionGate(status="past_due", past_due_since=since, grace_days=3))
            uow.commit()
        with sql_storage.uow() as uow:
            in_grace = uow.wallets.debit(org.id, 10, since + timedelta(days=3) - timedelta(microseconds=1),
                                         usage_tx(org.id, 10, "a"))
            expired = uow.wallets.debit(org.id, 10, since + timedelta(days=3), usage_tx(org.id, 10, "b"))
            uow.commit()
        assert in_grace.decision.allowed and in_grace.decision.grace_ends_at == since + timedelta(days=3)
        assert not expired.decision.allowed
        assert in_grace.wallet.gate.past_due_since == since
        with sql_storage.uow() as uow:
            assert uow.wallets.get(org.id) == in_grace.wallet

    @pytest.mark.parametrize("commit", [True, False])
    def test_driver_and_sqlalchemy_statements_of_a_unit_of_work_are_one_transaction(
            self, sql_storage: StorageBackend, commit: bool) -> None:
        """On SQLite a unit of work begins on the driver connection itself when a driver statement
        comes first, and SQLAlchemy adopts that transaction for its own statements: both commit
        together or roll back together, and after a commit the next statement begins anew."""
        org = new_org(sql_storage)
        fund(sql_storage, org.id, 1_000)
        with sql_storage.uow() as uow:
            uow.wallets.debit(org.id, 10, NOW, usage_tx(org.id, 10, "a"))  # driver level
            seen = uow.ledger.get_by_key(org.id, "a")  # SQLAlchemy, in the same transaction
            assert seen is not None and seen.wallet_balance_after == 990
            uow.wallets.debit(org.id, 20, NOW, usage_tx(org.id, 20, "b"))
            if commit:
                uow.commit()
                uow.wallets.debit(org.id, 30, NOW, usage_tx(org.id, 30, "c"))  # a new transaction, not committed
        with sql_storage.uow() as uow:
            stored = [uow.ledger.get_by_key(org.id, key) is not None for key in ("a", "b", "c")]
            balance = uow.wallets.get(org.id).balance_micros
        assert stored == ([True, True, False] if commit else [False, False, False])
        assert balance == (970 if commit else 1_000)

    @pytest.mark.parametrize("first", ["sqlalchemy read", "driver debit"])
    def test_sqlite_units_of_work_hold_the_write_lock_from_their_first_statement(self, sql_storage: StorageBackend,
                                                                                first: str) -> None:
        """``BEGIN IMMEDIATE``: a unit of work that reads first must not be able to lose its right to
        write to another connection (``SQLITE_BUSY_SNAPSHOT``), so it takes the write lock at BEGIN."""
        if sql_storage.kind != "sqlite":
            pytest.skip("PostgreSQL serializes on row locks")
        org = new_org(sql_storage)
        fund(sql_storage, org.id, 1_000)
        assert sql_storage.engine is not None
        path = sql_storage.engine.url.database
        assert path is not None
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            with sql_storage.uow() as uow:
                if first == "sqlalchemy read":
                    uow.wallets.get(org.id)
                else:
                    uow.wallets.debit(org.id, 10, NOW, usage_tx(org.id, 10, "u"))
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
