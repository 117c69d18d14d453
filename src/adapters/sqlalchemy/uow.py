"""The unit of work: one database transaction over every repository.

Entering the ``with`` block checks a connection out of the engine's pool (on a SQLite file, one
a previous unit of work kept: :func:`~adapters.sqlalchemy.engine.take_connection`); the
transaction starts with the first statement (on SQLite as ``BEGIN IMMEDIATE``, after queueing on the engine's
in-process writer lock). On SQLite the SQLAlchemy ``Connection`` around the pooled connection is
built only when a statement goes through SQLAlchemy: a unit of work that runs only the driver-level
hot statements (the usage path) begins and commits on the driver connection itself.
:meth:`commit` commits and the next statement starts a new transaction; leaving the block rolls
back whatever was not committed and returns the connection.
Repositories never commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from types import TracebackType
from typing import Any, NoReturn, Self

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy import exc as sa_exc

import adapters.sqlalchemy.driver as sql_driver
from adapters.sqlalchemy.base import AnyResult, Params
from adapters.sqlalchemy.budgets import SqlAlchemyBudgetRepository
from adapters.sqlalchemy.checkouts import SqlAlchemyCheckoutRepository
from adapters.sqlalchemy.driver import SUPPORTED_DRIVERS, DriverStatements
from adapters.sqlalchemy.engine import give_back_connection, take_connection, write_lock
from adapters.sqlalchemy.errors import translate
from adapters.sqlalchemy.grants import SqlAlchemyGrantRepository
from adapters.sqlalchemy.holds import SqlAlchemyHoldRepository
from adapters.sqlalchemy.invoices import SqlAlchemyInvoiceRepository
from adapters.sqlalchemy.messaging import (
    SqlAlchemyIdempotencyRepository,
    SqlAlchemyInboxRepository,
    SqlAlchemyOutboxRepository,
    SqlAlchemyScheduledJobRepository,
)
from adapters.sqlalchemy.organizations import SqlAlchemyOrganizationRepository
from adapters.sqlalchemy.payments import (
    SqlAlchemyPaymentMethodRepository,
    SqlAlchemyPaymentRepository,
    SqlAlchemyPlanChangeRepository,
    SqlAlchemyRefundRepository,
)
from adapters.sqlalchemy.settings import SqlAlchemySettingsRepository
from adapters.sqlalchemy.subscriptions import (
    SqlAlchemyPlanSubscriptionRepository,
    SqlAlchemyProductSubscriptionRepository,
)
from adapters.sqlalchemy.usage import SqlAlchemyUsageRepository
from adapters.sqlalchemy.wallets import SqlAlchemyLedgerRepository, SqlAlchemyWalletRepository
from billing_core.errors import StorageUnavailable


class SqlAlchemyUnitOfWork:
    """A :class:`~billing_core.ports.UnitOfWork` on a SQLAlchemy engine. Records ``committed``.

    ``snapshot=True`` makes a read-only unit of work (``BillingContext.snapshot``): on SQLite it
    neither queues on the writer lock nor sends ``BEGIN IMMEDIATE``, but reads in a deferred
    transaction, one consistent snapshot of the WAL while writers go on; on PostgreSQL it is an
    ordinary transaction. It cannot commit: nothing it might write is ever kept."""

    def __init__(self, engine: Engine, *, snapshot: bool = False) -> None:
        if (engine.dialect.name, engine.dialect.driver) not in SUPPORTED_DRIVERS:
            raise ValueError(f"unsupported driver {engine.dialect.name}+{engine.dialect.driver}: "
                             "use sqlite:// (pysqlite) or postgresql+psycopg://")
        self.engine = engine
        self.dialect = engine.dialect.name
        self.committed = False
        self._connection: Connection | None = None
        # SQLite: the pooled connection, checked out on entering; the Connection above is built on
        # it only when a statement goes through SQLAlchemy (ADR 0007, sixth pass of issue 16).
        self._lean = self.dialect == "sqlite"
        self._pooled: Any = None
        self._in_transaction = False
        # The driver connection of the current transaction, once the hot statements asked for it:
        # they ask once per statement, and finding it through SQLAlchemy each time cost ~5 % of a
        # usage event on SQLite. Forgotten whenever the transaction ends.
        self._driver: Any = None
        # PostgreSQL: the psycopg connection whose transaction this unit of work began itself, with
        # its first statement (``begin_with``); it is in autocommit mode until the transaction ends.
        self._began_itself: Any = None
        self.snapshot = snapshot
        self._writer_lock: threading.RLock | None = None if snapshot else write_lock(engine)
        self._holds_lock = False
        self.driver = DriverStatements(self)

    # ------------------------------------------------------------------ repositories
    # Built on first use: a unit of work on the hot path touches one or two of the fifteen.

    @cached_property
    def organizations(self) -> SqlAlchemyOrganizationRepository:
        return SqlAlchemyOrganizationRepository(self)

    @cached_property
    def wallets(self) -> SqlAlchemyWalletRepository:
        return SqlAlchemyWalletRepository(self)

    @cached_property
    def ledger(self) -> SqlAlchemyLedgerRepository:
        return SqlAlchemyLedgerRepository(self)

    @cached_property
    def plan_subscriptions(self) -> SqlAlchemyPlanSubscriptionRepository:
        return SqlAlchemyPlanSubscriptionRepository(self)

    @cached_property
    def product_subscriptions(self) -> SqlAlchemyProductSubscriptionRepository:
        return SqlAlchemyProductSubscriptionRepository(self)

    @cached_property
    def usage(self) -> SqlAlchemyUsageRepository:
        return SqlAlchemyUsageRepository(self)

    @cached_property
    def invoices(self) -> SqlAlchemyInvoiceRepository:
        return SqlAlchemyInvoiceRepository(self)

    @cached_property
    def payment_methods(self) -> SqlAlchemyPaymentMethodRepository:
        return SqlAlchemyPaymentMethodRepository(self)

    @cached_property
    def settings(self) -> SqlAlchemySettingsRepository:
        return SqlAlchemySettingsRepository(self)

    @cached_property
    def payments(self) -> SqlAlchemyPaymentRepository:
        return SqlAlchemyPaymentRepository(self)

    @cached_property
    def refunds(self) -> SqlAlchemyRefundRepository:
        return SqlAlchemyRefundRepository(self)

    @cached_property
    def plan_changes(self) -> SqlAlchemyPlanChangeRepository:
        return SqlAlchemyPlanChangeRepository(self)

    @cached_property
    def checkouts(self) -> SqlAlchemyCheckoutRepository:
        return SqlAlchemyCheckoutRepository(self)

    @cached_property
    def outbox(self) -> SqlAlchemyOutboxRepository:
        return SqlAlchemyOutboxRepository(self)

    @cached_property
    def inbox(self) -> SqlAlchemyInboxRepository:
        return SqlAlchemyInboxRepository(self)

    @cached_property
    def idempotency(self) -> SqlAlchemyIdempotencyRepository:
        return SqlAlchemyIdempotencyRepository(self)

    @cached_property
    def scheduled_jobs(self) -> SqlAlchemyScheduledJobRepository:
        return SqlAlchemyScheduledJobRepository(self)

    @cached_property
    def holds(self) -> SqlAlchemyHoldRepository:
        return SqlAlchemyHoldRepository(self)

    @cached_property
    def budgets(self) -> SqlAlchemyBudgetRepository:
        return SqlAlchemyBudgetRepository(self)

    @cached_property
    def grants(self) -> SqlAlchemyGrantRepository:
        return SqlAlchemyGrantRepository(self)

    # ------------------------------------------------------------------ context

    def __enter__(self) -> Self:
        if self._connection is not None or self._pooled is not None:
            raise RuntimeError("unit of work is already in use")
        try:
            if self._lean:
                self._pooled = take_connection(self.engine)
            else:
                self._connection = self.engine.connect()
        except (sa_exc.DBAPIError, self.engine.dialect.loaded_dbapi.Error) as error:
            # No connection at all (server down, refused, authentication): nothing to retry inside.
            raise StorageUnavailable("the database cannot be reached; try again later") from error
        self.committed = False
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        connection = self._connection
        pooled = self._pooled
        try:
            self.rollback()
        except Exception:
            if exc is None:
                raise
            # The block already failed (often the connection itself): let that error through.
        finally:
            self._connection = None
            self._pooled = None
            self._driver = None
            try:
                if connection is not None:
                    connection.close()
                elif pooled is not None:
                    give_back_connection(self.engine, pooled)
            finally:
                self._release()

    def commit(self) -> None:
        if self.snapshot:
            raise RuntimeError("a snapshot unit of work is read-only: it cannot commit")
        connection = self._active() if self._pooled is None else self._connection
        if self._in_transaction:
            try:
                if connection is not None and (connection.in_transaction() or not self._lean):
                    connection.commit()
                else:
                    self._driver_end("COMMIT")
            except sa_exc.StatementError as error:
                _reraise(error)
            finally:
                self._in_transaction = False
                self._driver = None
                self._end_own_begin()
                self._release()
        self.committed = True

    def rollback(self) -> None:
        connection = self._connection
        if (connection is not None or self._pooled is not None) and self._in_transaction:
            try:
                if connection is not None and (connection.in_transaction() or not self._lean):
                    connection.rollback()
                else:
                    self._driver_end("ROLLBACK")
            finally:
                self._in_transaction = False
                self._driver = None
                self._end_own_begin()
                self._release()

    # ------------------------------------------------------------------ for repositories

    def execute(self, statement: Executable, params: Params = None) -> AnyResult:
        """Run ``statement`` in this unit of work's transaction, starting it if needed."""
        connection = self._connection or self._wrap_pooled()
        if not self._in_transaction:
            self._begin()
        try:
            return connection.execute(statement, params)
        except (sa_exc.StatementError, OverflowError) as error:
            _reraise(error)

    def dbapi_connection(self) -> Any:
        """The driver's own connection (``sqlite3`` / ``psycopg``) inside this unit of work's
        transaction, begun through SQLAlchemy if needed so that its ``BEGIN IMMEDIATE``, writer
        queue and commit apply: for the hot statements of :mod:`adapters.sqlalchemy.driver`."""
        if self._driver is not None:
            return self._driver
        if self._connection is None and self._pooled is not None:
            return self._driver_begin()
        connection = self._connection
        if connection is None:
            raise RuntimeError("use the unit of work inside its `with` block")
        if not self._in_transaction:
            self._begin()
        if not connection.in_transaction():
            try:
                connection.begin()
            except sa_exc.StatementError as error:
                _reraise(error)
        self._driver = connection.connection.driver_connection
        return self._driver

    def begin_with(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]] | None:
        """PostgreSQL: begin this unit of work's transaction with its first statements, in one round
        trip, and return their rows; None (nothing sent) if the transaction is open already, the
        connection has a non-default isolation, read-only or deferrable setting, or libpq has no
        pipeline mode.

        psycopg begins a transaction by sending ``BEGIN`` and waiting for its answer before the
        first statement (in pipeline mode too), one round trip of the four a usage event makes
        (ADR 0010). Here the connection is put in autocommit mode, so psycopg sends no ``BEGIN`` of
        its own, and ``BEGIN`` is pipelined with the statements. The transaction is the server's,
        so SQLAlchemy's commit and rollback end it as before (psycopg sends ``COMMIT`` or
        ``ROLLBACK`` whenever one is open), and this unit of work takes the connection out of
        autocommit mode as soon as it ends (a connection that cannot be is invalidated); the
        engine's checkout resets it too, so no unit of work ever starts on one in autocommit mode."""
        driver = self.dbapi_connection()
        if (self.dialect != "postgresql" or driver.pgconn.transaction_status != _PG_IDLE
                or driver.autocommit or not sql_driver.pipeline_supported()
                or (driver.isolation_level, driver.read_only, driver.deferrable) != (None, None, None)):
            return None
        driver.autocommit = True
        self._began_itself = driver
        with driver.pipeline():
            driver.execute("BEGIN")
            cursors = [driver.execute(sql, params) for sql, params in statements]
        return [cursor.fetchall() for cursor in cursors]

    def _end_own_begin(self) -> None:
        driver, self._began_itself = self._began_itself, None
        if driver is None:
            return
        try:
            driver.autocommit = False  # refused unless the transaction has ended
        except Exception:
            if self._connection is not None and not self._connection.invalidated:
                self._connection.invalidate()

    def invalidate_if_disconnect(self, error: BaseException) -> bool:
        """If ``error`` (raised by the driver directly) says the connection is dead, do what
        SQLAlchemy does for the statements it runs itself: drop this connection and recycle every
        pooled one opened before it on next checkout. True if it did."""
        connection = self._connection
        if connection is None and self._pooled is not None:
            pooled = self._pooled
            if not pooled.is_valid or not self._is_disconnect(error, pooled.dbapi_connection):
                return False
            self.engine.pool._invalidate(pooled, error)
            pooled.invalidate(error)
            self._driver = None
            return True
        if connection is None or connection.invalidated:
            return False
        if not self._is_disconnect(error, connection.connection.dbapi_connection):
            return False
        # Pool._invalidate is how SQLAlchemy's own error handler marks the pool's generation stale.
        self.engine.pool._invalidate(connection.connection, error)
        connection.invalidate(error)
        self._driver = None
        return True

    def _is_disconnect(self, error: BaseException, dbapi_connection: Any) -> bool:
        dbapi = self.engine.dialect.loaded_dbapi
        return isinstance(error, dbapi.Error) and self.engine.dialect.is_disconnect(error, dbapi_connection, None)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an exception inside rolls back only what was done inside."""
        connection = self._active()
        if not self._in_transaction:
            self._begin()
        with connection.begin_nested():
            yield

    def _active(self) -> Connection:
        if self._connection is None:
            return self._wrap_pooled()
        return self._connection

    # ------------------------------------------------------------------ SQLite: the lean path

    def _wrap_pooled(self) -> Connection:
        """The SQLAlchemy ``Connection`` on the pooled SQLite connection, built on first need. If the
        driver-level statements began the transaction, SQLAlchemy's own begin finds it open
        (``engine._begin_immediate`` then sends nothing) and commits or rolls it back as its own."""
        if self._pooled is None:
            raise RuntimeError("use the unit of work inside its `with` block")
        self._connection = Connection(self.engine, self._pooled)
        return self._connection

    def _driver_begin(self) -> Any:
        """``BEGIN IMMEDIATE`` on the pooled SQLite connection itself, after the writer queue: what
        SQLAlchemy's begin would send (``engine._begin_immediate``), without its bookkeeping."""
        if not self._in_transaction:
            self._begin()
        self._driver = self._open_on_driver("BEGIN IMMEDIATE")
        return self._driver

    def _open_on_driver(self, begin: str) -> Any:
        """The pooled driver connection, ``begin`` sent on it unless a transaction is open."""
        driver = self._pooled.driver_connection
        if not driver.in_transaction:
            try:
                driver.execute(begin)
            except Exception as error:
                self.driver.fail(error, begin, ())
        return driver

    def _driver_end(self, statement: str) -> None:
        """Commit or roll back the transaction the driver-level statements began (lean path)."""
        pooled = self._pooled
        if pooled is None or not pooled.is_valid:
            return
        driver = pooled.driver_connection
        if not driver.in_transaction:
            return
        try:
            driver.commit() if statement == "COMMIT" else driver.rollback()
        except Exception as error:
            self.driver.fail(error, statement, ())

    def _begin(self) -> None:
        if self._writer_lock is not None and not self._holds_lock:
            self._writer_lock.acquire()
            self._holds_lock = True
        elif self.snapshot and self._pooled is not None:
            # A deferred BEGIN: the first read takes the snapshot; both BEGIN IMMEDIATE paths
            # (the engine's hook and the lean driver path) find the transaction open and send nothing.
            self._open_on_driver("BEGIN")
        self._in_transaction = True

    def _release(self) -> None:
        if self._holds_lock:
            self._holds_lock = False
            assert self._writer_lock is not None
            self._writer_lock.release()


_PG_IDLE = 0
"""``psycopg.pq.TransactionStatus.IDLE``: connected, no transaction open."""


def _reraise(error: BaseException) -> NoReturn:
    typed = translate(error)
    if typed is error:
        raise error
    raise typed from error


def sqlalchemy_uow_factory(engine: Engine) -> Callable[[], SqlAlchemyUnitOfWork]:
    """A factory of units of work on one engine: what services take as ``uow``."""
    return lambda: SqlAlchemyUnitOfWork(engine)


def sqlalchemy_snapshot_factory(engine: Engine) -> Callable[[], SqlAlchemyUnitOfWork]:
    """A factory of read-only units of work on one engine (``snapshot=True``): what services
    take as ``snapshot``."""
    return lambda: SqlAlchemyUnitOfWork(engine, snapshot=True)
