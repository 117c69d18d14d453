"""Driver and SQLAlchemy exceptions become the core's typed errors here, and only here.

* unique violations → :class:`~billing_core.errors.Conflict` (``duplicate``)
* foreign-key violations → :class:`~billing_core.errors.NotFound` (the referenced row is missing)
* check / not-null violations, out-of-range numbers, malformed values → :class:`InvalidInput`
* serialization failures, deadlocks, lock timeouts, a busy SQLite file → :class:`Conflict`
  (``concurrent_update``): the caller may retry the whole unit of work
* a lost or refused connection (SQLSTATE class 08, the server shutting down, a connection the pool
  had to invalidate) → :class:`~billing_core.errors.StorageUnavailable`: nothing was committed
* a :class:`~billing_core.errors.BillingError` raised while binding a parameter (for example a naive
  datetime refused by :class:`~adapters.sqlalchemy.types.UtcDateTime`) comes out unwrapped.

Anything else (the server is down, a bug in a statement) is left as it is: it is not the caller's
input, and hiding it would make it harder to diagnose.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from billing_core.errors import (
    BillingError,
    ConcurrentUpdate,
    Duplicate,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    TransactionAborted,
)

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_PG_UNIQUE = "23505"
_PG_FOREIGN_KEY = "23503"
_PG_RETRYABLE = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock not available
_PG_IN_FAILED_TRANSACTION = "25P02"
_PG_SHUTTING_DOWN = frozenset({"57P01", "57P02", "57P03"})  # admin / crash shutdown, cannot connect now


def translate(error: BaseException) -> BaseException:
    """The typed error to raise for ``error`` (``raise translate(exc) from exc``), or ``error``
    itself when it is not the caller's doing."""
    if isinstance(error, OverflowError):
        return InvalidInput("value", "a number is out of the storable range", code="out_of_range")
    if not isinstance(error, sa_exc.StatementError):
        return error
    orig = error.orig
    if isinstance(orig, BillingError):
        return orig
    if not isinstance(error, sa_exc.DBAPIError):
        if isinstance(orig, OverflowError | ValueError | TypeError):
            return InvalidInput("value", f"a value cannot be stored: {orig}", code="invalid_value")
        return error
    sqlstate = getattr(orig, "sqlstate", None)
    message = str(orig)
    if error.connection_invalidated or (isinstance(sqlstate, str) and (
            sqlstate.startswith("08") or sqlstate in _PG_SHUTTING_DOWN)):
        return StorageUnavailable("the database connection was lost; nothing was committed, retry")
    if isinstance(error, sa_exc.IntegrityError):
        constraint = _constraint_name(orig)
        if sqlstate == _PG_UNIQUE or "UNIQUE constraint failed" in message:
            return Duplicate(f"duplicate value violates {constraint or 'a unique constraint'}")
        if sqlstate == _PG_FOREIGN_KEY or "FOREIGN KEY constraint failed" in message:
            return NotFound("referenced row", constraint or "foreign key")
        return InvalidInput(_column_name(orig) or "value", f"value violates {constraint or 'a constraint'}",
                            code="constraint_violation")
    if isinstance(error, sa_exc.DataError):
        return InvalidInput(_column_name(orig) or "value", "a value is malformed or out of range",
                            code="invalid_value")
    if sqlstate in _PG_RETRYABLE or "database is locked" in message:
        return ConcurrentUpdate("the data changed or is locked by a concurrent transaction; retry")
    if sqlstate == _PG_IN_FAILED_TRANSACTION:
        return TransactionAborted("an earlier statement of this unit of work failed; it must be rolled back")
    return error


def _constraint_name(orig: BaseException | None) -> str | None:
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if isinstance(name, str):
        return name
    text = str(orig)
    return text.split("failed:", 1)[1].strip() if "failed:" in text else None


def _column_name(orig: BaseException | None) -> str | None:
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "column_name", None)
    if isinstance(name, str):
        return name
    text = str(orig)
    if "NOT NULL constraint failed:" in text:
        return text.rsplit(".", 1)[-1].strip()
    return None
