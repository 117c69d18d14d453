"""Column types that keep the database honest about time and money.

* :class:`UtcDateTime` — timezone-aware UTC in, timezone-aware UTC out, on every dialect. PostgreSQL
  stores ``timestamptz``; SQLite stores fixed-width ISO text of the UTC instant (lexicographic order
  equals time order, so range queries and indexes work). Naive datetimes are refused with
  :class:`~billing_core.errors.InvalidInput` instead of being guessed at.
* :data:`Sequence64` — an auto-incrementing 64-bit key (``INTEGER PRIMARY KEY`` on SQLite, where only
  that spelling aliases the rowid).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from billing_core.errors import InvalidInput


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = to_utc(value)
        if dialect.name == "sqlite":
            # SQLite's DATETIME text has no offset: store the UTC wall clock.
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def to_utc(value: object) -> datetime:
    """``value`` as an aware UTC datetime; InvalidInput unless it is an aware datetime. Shared with
    the driver-level statements (:mod:`adapters.sqlalchemy.driver`), which bind without this type."""
    if not isinstance(value, datetime):
        raise InvalidInput("datetime", f"expected a datetime, got {type(value).__name__}",
                           code="invalid_datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("datetime", "datetimes must be timezone-aware (UTC)", code="invalid_datetime")
    return value.astimezone(UTC)


Sequence64 = BigInteger().with_variant(Integer(), "sqlite")
