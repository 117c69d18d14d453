"""Engines for SQLite (the default, ``sqlite:///./billing.db``) and PostgreSQL (psycopg 3).

SQLite: WAL journal (readers never block the writer), foreign keys on, a busy timeout, and every
transaction opened with ``BEGIN IMMEDIATE`` so writers serialize at BEGIN instead of failing later
when a reader tries to upgrade its lock. A unit of work usually reads before it writes, and in WAL
mode that upgrade fails at once (``SQLITE_BUSY_SNAPSHOT``) if another writer committed in between;
taking the write lock up front makes each unit of work a serializable critical section, which is
what the debit hot path needs. Inside one process, writers also queue on a lock before BEGIN
(cheaper and fairer than SQLite's sleeping busy handler); across processes the busy timeout waits.

PostgreSQL: a pool sized for a threaded web server, and an optional ``schema`` placed first on the
``search_path`` (how tests keep runs apart). A connection that sat idle in the pool for longer than
``ping_after_idle_s`` is pinged before use and replaced if dead (server restart, idle-connection
killer); one checked in more recently was working moments ago and goes straight to work, so a busy
pool pays no ping round trip per unit of work (ADR 0007). Its connections run with the server's JIT
compiler off (ADR 0020): every statement here is short, and JIT compiles again at every execution
of any statement whose estimated cost passes ``jit_above_cost``. If a connection dies anyway, the failing
statement's disconnect error invalidates the pool, its unit of work raises ``StorageUnavailable``
(nothing committed; HTTP 503), and the next unit of work reconnects.

Nothing is created at import time: call :func:`make_engine` from the composition root.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

DEFAULT_URL = "sqlite:///./billing.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE_S = 1.0
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# The in-process writer queue of each SQLite engine.
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_IDLE_CONNECTIONS: weakref.WeakKeyDictionary[Engine, list[Any]] = weakref.WeakKeyDictionary()
IDLE_CONNECTIONS_KEPT = 8
"""How many pooled SQLite connections the units of work keep checked out between them (per engine)."""


def make_engine(url: str | URL = DEFAULT_URL, *, schema: str | None = None, echo: bool = False,
                pool_size: int = 10, max_overflow: int = 20, sqlite_synchronous: str = "NORMAL",
                ping_after_idle_s: float = PING_AFTER_IDLE_S, postgres_jit: bool = False,
                **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings this adapter relies on.

    ``schema`` (PostgreSQL only) is put first on the ``search_path`` of every connection.
    ``sqlite_synchronous`` is SQLite's ``PRAGMA synchronous``; ``NORMAL`` in WAL mode survives a
    process crash (only an OS crash or power loss may lose the last commits), ``FULL`` survives both.
    ``ping_after_idle_s`` (PostgreSQL only): how long a pooled connection may sit idle before it is
    pinged on checkout (``pool_pre_ping=True`` pings on every checkout instead).
    ``postgres_jit`` (PostgreSQL only) leaves the server's ``jit`` setting as configured; by default
    each connection turns it off (ADR 0020).
    Extra keyword arguments go to :func:`sqlalchemy.create_engine`.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise ValueError("schema is a PostgreSQL option")
        return _sqlite_engine(parsed, echo=echo, synchronous=sqlite_synchronous, **kwargs)
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", ""):
            raise ValueError("PostgreSQL is supported through psycopg 3: use postgresql+psycopg://")
        parsed = parsed.set(drivername="postgresql+psycopg")
        return _postgres_engine(parsed, schema=schema, echo=echo, pool_size=pool_size, max_overflow=max_overflow,
                                ping_after_idle_s=ping_after_idle_s, jit=postgres_jit, **kwargs)
    raise ValueError(f"unsupported database backend {backend!r}: use sqlite:// or postgresql+psycopg://")


def _sqlite_engine(url: URL, *, echo: bool, synchronous: str, **kwargs: Any) -> Engine:
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"invalid PRAGMA synchronous value {synchronous!r}")
    memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    engine = create_engine(url, echo=echo, **kwargs)
    _WRITE_LOCKS[engine] = threading.RLock()
    if not memory:
        _keep_idle_connections(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's legacy mode would skip it for SELECTs).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    def _begin_immediate(dbapi_connection: Any) -> None:
        # A unit of work that began on the driver connection itself (its lean path) and then runs a
        # statement through SQLAlchemy: the transaction is open already, SQLAlchemy adopts it.
        if not dbapi_connection.in_transaction:
            dbapi_connection.execute("BEGIN IMMEDIATE")

    # The dialect's own BEGIN hook rather than a "begin" event: any connection event makes
    # SQLAlchemy dispatch events around every begin, statement and commit of the engine.
    engine.dialect.do_begin = _begin_immediate  # type: ignore[method-assign]
    return engine


def _postgres_engine(url: URL, *, schema: str | None, echo: bool, pool_size: int, max_overflow: int,
                     ping_after_idle_s: float, jit: bool, **kwargs: Any) -> Engine:
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    # Options the URL carries (``?options=-csearch_path%3D...``) would be replaced by the ones set
    # here, not added to: all go into one string.
    in_url = url.query.get("options", ())
    options = [*((in_url,) if isinstance(in_url, str) else in_url), connect_args.get("options", "")]
    url = url.difference_update_query(["options"])
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        options.append(f"-csearch_path={schema}")
    if not jit:
        # Startup options, not a SET per checkout: no round trip, and a pool reset cannot undo them.
        options.append("-cjit=off")
    connect_args["options"] = " ".join(o for o in options if o)
    kwargs.setdefault("pool_recycle", 1800)
    # Last in, first out: a light load keeps reusing the few connections that were just working (no
    # ping, warm prepared statements) and lets the rest age into a ping or the server's idle timeout.
    kwargs.setdefault("pool_use_lifo", True)
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow,
                           connect_args=connect_args, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle_s)

    @event.listens_for(engine, "checkout")
    def _out_of_autocommit(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
        # A unit of work that began its transaction with its first statement (``begin_with``) put the
        # connection in autocommit mode and leaves it when the transaction ends; whatever happened
        # in between, no unit of work starts on a connection in that mode (every statement would
        # commit on its own).
        if dbapi_connection.autocommit:
            dbapi_connection.autocommit = False

    return engine


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return  # just connected, or working moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                # The pool drops this connection and checks out (or opens) another one.
                raise sa_exc.DisconnectionError() from error
            raise


def idle_connections(engine: Engine) -> list[Any] | None:
    """SQLite files: pooled connections handed back with no transaction open, kept checked out for
    the next unit of work or token read (a list used as a stack: ``append`` and ``pop`` are atomic).
    None for PostgreSQL, in-memory SQLite and engines not made by :func:`make_engine`."""
    return _IDLE_CONNECTIONS.get(engine)


def take_connection(engine: Engine) -> Any:
    """A pooled connection (SQLAlchemy's wrapper) for driver-level work: on a SQLite file one kept
    idle by :func:`give_back_connection` when there is one, else the pool's. A pool checkout and
    check-in cost ~13 µs, 6 % of a usage event on SQLite (issue 16, ninth pass; ADR 0007)."""
    idle = _IDLE_CONNECTIONS.get(engine)
    while idle:
        try:
            pooled = idle.pop()
        except IndexError:  # another thread took the last one between the test and the pop
            break
        if pooled.is_valid and pooled._pool is engine.pool:
            return pooled
        pooled.close()  # invalidated, or of the pool before engine.dispose(): the pool drops it
    return engine.raw_connection()


def give_back_connection(engine: Engine, pooled: Any) -> None:
    """Return what :func:`take_connection` gave: kept for the next taker when it is clean (valid,
    no transaction open, of the engine's current pool) and fewer than ``IDLE_CONNECTIONS_KEPT``
    are kept; otherwise to the pool, whose reset rolls back whatever is open."""
    idle = _IDLE_CONNECTIONS.get(engine)
    if (idle is not None and len(idle) < IDLE_CONNECTIONS_KEPT and pooled.is_valid
            and pooled._pool is engine.pool and not pooled.driver_connection.in_transaction):
        idle.append(pooled)
    else:
        pooled.close()


def _keep_idle_connections(engine: Engine) -> None:
    """Give ``engine`` its list of idle connections, and make ``engine.dispose()`` close them first:
    callers rely on dispose closing every connection (the last one checkpoints the WAL file).
    Wrapping the method instead of listening to ``engine_disposed``: any connection event makes
    SQLAlchemy dispatch events around every statement of the engine."""
    idle: list[Any] = []
    _IDLE_CONNECTIONS[engine] = idle
    dispose = engine.dispose

    def dispose_with_idle(close: bool = True) -> None:
        kept, idle[:] = list(idle), []
        if close:  # close=False (after a fork): the connections are the parent's, leave them alone
            for pooled in kept:
                pooled.close()
        dispose(close)

    engine.dispose = dispose_with_idle  # type: ignore[method-assign]


def write_lock(engine: Engine) -> threading.RLock | None:
    """The in-process lock SQLite writers queue on before ``BEGIN IMMEDIATE``; None for engines
    not made by :func:`make_engine` and for PostgreSQL, whose row locks do the serializing."""
    return _WRITE_LOCKS.get(engine)
