"""What only the SQL adapters have: typed errors instead of driver exceptions, foreign keys,
timezone handling, and a unit of work that survives a refused statement."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
from sqlalchemy import text

from adapters.testing.builders import NOW, fund, new_org, payment, plan_subscription, usage_event
from adapters.testing.storage import StorageBackend
from billing_core.errors import Conflict, InvalidInput, NotFound


class SqlStorageContract:
    """What only the SQL adapters have, on ``sql_storage``."""

    def test_naive_datetimes_are_refused_as_invalid_input(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        with sql_storage.uow() as uow:
            with pytest.raises(InvalidInput) as refused:
                uow.usage.record(usage_event(org.id, "e", at=NOW.replace(tzinfo=None)))
            assert refused.value.code == "invalid_datetime"

    def test_datetimes_come_back_as_the_same_instant_in_utc(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        berlin = timezone(timedelta(hours=2))
        sub = plan_subscription(org.id, created_at=datetime(2026, 6, 1, 14, 0, 0, 123456, tzinfo=berlin))
        with sql_storage.uow() as uow:
            uow.plan_subscriptions.add(sub)
            uow.commit()
        with sql_storage.uow() as uow:
            stored = uow.plan_subscriptions.get(org.id, sub.id)
        assert stored.created_at == sub.created_at
        assert stored.created_at.utcoffset() == timedelta(0)
        assert stored.created_at.hour == 12 and stored.created_at.microsecond == 123456

    def test_rows_of_unknown_organizations_are_refused_as_not_found(self, sql_storage: StorageBackend) -> None:
        with sql_storage.uow() as uow, pytest.raises(NotFound):
            uow.payments.add(payment(uuid.uuid4()))

    def test_out_of_range_numbers_are_invalid_input(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        with sql_storage.uow() as uow, pytest.raises(InvalidInput):
            uow.payments.add(msgspec.structs.replace(payment(org.id), amount_cents=2**70))

    def test_the_unit_of_work_stays_usable_after_a_refused_write(self, sql_storage: StorageBackend) -> None:
        """On PostgreSQL a failed statement aborts the transaction; the adapter runs such writes in a
        savepoint so that the caller can handle the typed error and go on."""
        org = new_org(sql_storage)
        sub = plan_subscription(org.id)
        with sql_storage.uow() as uow:
            uow.plan_subscriptions.add(sub)
            with pytest.raises(Conflict):
                uow.plan_subscriptions.add(sub)
            with pytest.raises(NotFound):
                uow.payments.add(payment(uuid.uuid4()))
            with pytest.raises(InvalidInput):
                uow.payments.add(msgspec.structs.replace(payment(org.id), amount_cents=2**70))
            uow.payments.add(payment(org.id))
            uow.commit()
        with sql_storage.uow() as uow:
            assert uow.plan_subscriptions.current(org.id) == sub
            assert len(uow.payments.list(org.id).items) == 1

    def test_each_ledger_transaction_is_stored_with_all_its_postings(self, sql_storage: StorageBackend) -> None:
        org = new_org(sql_storage)
        fund(sql_storage, org.id, 1_000)
        assert sql_storage.engine is not None
        with sql_storage.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT t.idempotency_key, count(p.line_no), sum(p.amount_micros) FROM ledger_transactions t "
                "JOIN ledger_postings p ON p.transaction_seq = t.seq GROUP BY t.idempotency_key")).all()
        assert [tuple(row) for row in rows] == [("grant", 2, 0)]
