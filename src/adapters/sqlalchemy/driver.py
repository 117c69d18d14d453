"""The wallet hot path at the driver level (ADR 0007): a handful of fixed SQL statements run on the
unit of work's own DB-API connection (``sqlite3`` / ``psycopg``), below SQLAlchemy's execution layer.

Why: a debit is four short statements, and on SQLite SQLAlchemy's per-statement work (execution
context, bind processing, result wrapping: ~60-80 µs each on the benchmark machine) cost several
times what SQLite itself spends. The statements, their transaction and their semantics are the
ones ADR 0004 describes; only who renders the parameters changes:

* values are bound here exactly as the column types bind them (:mod:`adapters.sqlalchemy.types`):
  ``Uuid`` as 32-hex text and ``UtcDateTime`` as UTC wall-clock text on SQLite, native on
  PostgreSQL; naive datetimes are refused with the same ``InvalidInput``;
* driver exceptions go through the same :func:`adapters.sqlalchemy.errors.translate`;
* the statements run inside the unit of work's SQLAlchemy transaction (begun through SQLAlchemy,
  so ``BEGIN IMMEDIATE`` and the in-process writer queue apply), and commit with it.

On PostgreSQL the ledger rows and the wallet update go in one statement (data-modifying CTEs), and
the transaction's ``BEGIN`` goes with the first statement (``SqlAlchemyUnitOfWork.begin_with``), so a
debit is the locked read, the write and the commit: three round trips. The batch paths
(``WalletRepository.debit_many``, ``UsageRepository.record_many`` and ``record_debits``) write their
rows in bulk: multi-row ``VALUES`` on SQLite, ``unnest`` of binary arrays on PostgreSQL. Column
lists are checked against :mod:`adapters.sqlalchemy.tables` at import; ``tests/contract`` runs
every wallet and usage contract through this module on both databases.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec
from sqlalchemy import exc as sa_exc

from adapters.sqlalchemy.errors import translate
from adapters.sqlalchemy.pg_arrays import (
    PgArray,
    int2_array,
    int8_array,
    text_array,
    timestamptz_array,
    uuid_array,
)
from adapters.sqlalchemy.tables import (
    NIL_UUID,
    OPEN_BUCKET_KEY,
    billing_settings,
    grant_movements,
    ledger_postings,
    ledger_transactions,
    usage_events,
    wallets,
)
from adapters.sqlalchemy.types import to_utc
from billing_core.billing_settings import (
    AutoRecharge,
    BillingSettings,
    InvoiceAddress,
    LowBalanceAlert,
    SpendManagement,
)
from billing_core.errors import ConcurrentUpdate, Duplicate
from billing_core.grants import MovementSpan
from billing_core.ledger import BALANCE_ACCOUNTS, BalanceMove, EntryKind, LedgerTransaction
from billing_core.ports import DebitChunk
from billing_core.usage import HourlyUsage, UsageEvent, truncate_to_hour
from billing_core.wallet import SpendLimits, SubscriptionGate, WalletAccount

if TYPE_CHECKING:
    from adapters.sqlalchemy.uow import SqlAlchemyUnitOfWork

SUPPORTED_DRIVERS = frozenset({("sqlite", "pysqlite"), ("postgresql", "psycopg")})

_WALLET_COLUMNS = (
    "organization_id", "wallet_micros", "unbilled_micros", "credit_line_micros",
    "minimum_production_credit_micros", "daily_budget_micros", "monthly_cap_micros", "gate_status",
    "gate_past_due_since", "gate_grace_days", "spend_day", "spent_today_micros", "spent_yesterday_micros",
    "spend_month", "spent_month_micros", "version", "spent_previous_month_micros", "held_micros", "scoped_budgets",
)
_TX_COLUMNS = ("id", "organization_id", "idempotency_key", "kind", "description", "reason", "reference",
               "created_at", "wallet_balance_after")
_POSTING_COLUMNS = ("transaction_seq", "line_no", "organization_id", "account", "amount_micros")
_EVENT_COLUMNS = ("organization_id", "event_id", "project_id", "product_id", "quantity", "occurred_at",
                  "amount_micros", "unit_price_micros", "token_id")
_SETTINGS_COLUMNS = (
    "address", "billing_email", "auto_recharge_enabled", "auto_recharge_threshold_micros",
    "auto_recharge_amount_micros", "auto_recharge_payment_method_id", "auto_recharge_consecutive_failures",
    "auto_recharge_paused_at", "spend_enabled", "spend_daily_budget_micros", "spend_daily_email_threshold_micros",
    "spend_monthly_cap_micros", "spend_webhook_url", "low_balance_enabled", "low_balance_threshold_micros", "version",
    "hold_overrun",
)
assert set(_WALLET_COLUMNS) == set(wallets.c.keys())
assert set(_SETTINGS_COLUMNS) == set(billing_settings.c.keys()) - {"organization_id"}
assert set(_TX_COLUMNS) == set(ledger_transactions.c.keys()) - {"seq"}
assert set(_POSTING_COLUMNS) == set(ledger_postings.c.keys())
_MOVEMENT_COLUMNS = ("organization_id", "transaction_id", "grant_id", "amount_micros", "first_sequence",
                     "last_sequence")
assert set(_MOVEMENT_COLUMNS) == set(grant_movements.c.keys()) - {"seq"}
assert set(_EVENT_COLUMNS) == set(usage_events.c.keys())

# Statements are assembled from the column names above and placeholders only, never from values
# (hence the S608 waivers). Multi-row VALUES are cut into chunks that stay under SQLite's smallest
# compiled-in limit of bound parameters (999) whatever the build.
CHUNK_ROWS = 100

_SELECT_WALLET = f"SELECT {', '.join(_WALLET_COLUMNS)} FROM wallets WHERE organization_id = ?"  # noqa: S608  # nosec B608
# What a balance change stores, in the order of ``DriverStatements._wallet_update``; shared by the
# plain update and PostgreSQL's one-statement write so the two cannot drift apart.
_UPDATE_WALLET = (
    "UPDATE wallets SET wallet_micros = ?, unbilled_micros = ?, version = ?, spend_day = ?, "
    "spent_today_micros = ?, spent_yesterday_micros = ?, spend_month = ?, spent_month_micros = ?, "
    "spent_previous_month_micros = ? WHERE organization_id = ? AND version = ?")
_TX_VALUES = f"({', '.join('?' for _ in _TX_COLUMNS)})"
_INSERT_TX_HEAD = f"INSERT INTO ledger_transactions ({', '.join(_TX_COLUMNS)}) VALUES "  # noqa: S608  # nosec B608
_ON_TX_CONFLICT = " ON CONFLICT (organization_id, idempotency_key) DO NOTHING"
_INSERT_POSTING = (f"INSERT INTO ledger_postings ({', '.join(_POSTING_COLUMNS)}) "  # noqa: S608  # nosec B608
                   f"VALUES ({', '.join('?' for _ in _POSTING_COLUMNS)})")
_INSERT_EVENT_HEAD = f"INSERT INTO usage_events ({', '.join(_EVENT_COLUMNS)}) VALUES "  # noqa: S608  # nosec B608
_EVENT_VALUES = f"({', '.join('?' for _ in _EVENT_COLUMNS)})"
_ON_EVENT_ID_CONFLICT = " ON CONFLICT (organization_id, event_id) DO NOTHING"
_ON_EVENT_CONFLICT = _ON_EVENT_ID_CONFLICT + " RETURNING organization_id, event_id"
_UPSERT_BUCKET = (
    "INSERT INTO usage_buckets (organization_id, project_id, project_key, product_id, hour, quantity, "  # noqa: S608  # nosec B608
    "amount_micros, invoice_id) VALUES (?, ?, ?, ?, ?, ?, ?, NULL) "
    f"ON CONFLICT ({', '.join(OPEN_BUCKET_KEY)}) WHERE invoice_id IS NULL "
    "DO UPDATE SET quantity = usage_buckets.quantity + excluded.quantity, "
    "amount_micros = usage_buckets.amount_micros + excluded.amount_micros")

# A period close marks the organization's open buckets, then sums exactly the rows it marked: the
# ones that carry its new invoice id (no one else writes that id, and a marked bucket is never
# changed again). PostgreSQL does both in one statement (an UPDATE inside WITH); SQLite, which has
# no such statement, runs the UPDATE and then the sum (summing its RETURNING rows in Python cost
# more than this second query).
_MARK_BUCKETS = ("UPDATE usage_buckets SET invoice_id = ? "
                 "WHERE organization_id = ? AND invoice_id IS NULL AND hour < ?")
_SUM_MARKED = ("SELECT project_id, product_id, sum(quantity), sum(amount_micros), min(hour) FROM usage_buckets "
               "WHERE organization_id = ? AND hour < ? AND invoice_id = ? GROUP BY project_id, product_id")
_PG_PUT_ON_INVOICE = (
    f"WITH marked AS ({_MARK_BUCKETS} RETURNING project_id, product_id, quantity, amount_micros, hour) "  # noqa: S608  # nosec B608
    "SELECT project_id, product_id, sum(quantity), sum(amount_micros), min(hour) FROM marked "
    "GROUP BY project_id, product_id")

# PostgreSQL: the transaction, its postings and the version-guarded wallet update as one statement
# (one round trip). Nothing is written unless the transaction row is (a replayed key inserts no row,
# so neither CTE below it finds one); ``updated`` is 0 only if the version guard failed.
_PG_WRITE = (
    f"WITH t AS ({_INSERT_TX_HEAD}{_TX_VALUES}{_ON_TX_CONFLICT} RETURNING seq), "  # noqa: S608  # nosec B608
    "p AS (INSERT INTO ledger_postings (transaction_seq, line_no, organization_id, account, amount_micros) "
    "SELECT t.seq, v.n - 1, ?, v.account, v.amount FROM t, "
    "unnest(?::text[], ?::bigint[]) WITH ORDINALITY AS v(account, amount, n)), "
    f"u AS ({_UPDATE_WALLET} AND EXISTS (SELECT 1 FROM t) RETURNING 1) "
    "SELECT (SELECT seq FROM t), (SELECT count(*) FROM u)")


# The live usage path's read (``UsageRepository.lock_for_event``): the wallet row locked (on SQLite
# the transaction holds the write lock already), the settings row beside it, and under the same lock
# whether a product subscription covers the event and whether its id is stored: one round trip.
_LOCK_FOR_EVENT = (
    f"SELECT {', '.join('w.' + c for c in _WALLET_COLUMNS)}, {', '.join('s.' + c for c in _SETTINGS_COLUMNS)}, "  # noqa: S608  # nosec B608
    "EXISTS (SELECT 1 FROM product_subscriptions ps WHERE ps.organization_id = w.organization_id "
    "AND ps.product_id = ? AND (ps.project_id IS NULL OR ps.project_id = ?) AND ps.start_date <= ? "
    "AND (ps.end_date IS NULL OR ps.end_date > ?)), "
    "EXISTS (SELECT 1 FROM usage_events e WHERE e.organization_id = w.organization_id AND e.event_id = ?) "
    "FROM wallets w LEFT JOIN billing_settings s ON s.organization_id = w.organization_id "
    "WHERE w.organization_id = ?")
_BUCKET_VALUES = "(organization_id, project_id, project_key, product_id, hour, quantity, amount_micros, invoice_id)"
_ON_BUCKET_CONFLICT = (
    f" ON CONFLICT ({', '.join(OPEN_BUCKET_KEY)}) WHERE invoice_id IS NULL "  # nosec B608
    "DO UPDATE SET quantity = usage_buckets.quantity + excluded.quantity, "
    "amount_micros = usage_buckets.amount_micros + excluded.amount_micros")
# PostgreSQL: the live usage path's write (``UsageRepository.record_debit``) as ONE statement: the
# ledger transaction, its postings, the version-guarded wallet update, the usage event and its
# bucket upsert. Everything hangs off the inserted transaction row (``t``), so a used key writes
# nothing; the bucket hangs off the inserted event (``e``).
_PG_WRITE_USAGE = (
    f"WITH t AS ({_INSERT_TX_HEAD}{_TX_VALUES}{_ON_TX_CONFLICT} RETURNING seq), "  # noqa: S608  # nosec B608
    "p AS (INSERT INTO ledger_postings (transaction_seq, line_no, organization_id, account, amount_micros) "
    "SELECT t.seq, v.n - 1, ?, v.account, v.amount FROM t, "
    "unnest(?::text[], ?::bigint[]) WITH ORDINALITY AS v(account, amount, n)), "
    f"u AS ({_UPDATE_WALLET} AND EXISTS (SELECT 1 FROM t) RETURNING 1), "
    f"e AS ({_INSERT_EVENT_HEAD.removesuffix(' VALUES ')} SELECT ?::uuid, ?::text, ?::uuid, ?::uuid, ?::bigint, "
    "?::timestamptz, ?::bigint, ?::bigint, ?::uuid FROM t "
    "ON CONFLICT (organization_id, event_id) DO NOTHING RETURNING 1), "
    f"b AS (INSERT INTO usage_buckets {_BUCKET_VALUES} SELECT ?::uuid, ?::uuid, ?::uuid, ?::uuid, ?::timestamptz, "
    f"?::bigint, ?::bigint, NULL FROM e{_ON_BUCKET_CONFLICT}) "
    "SELECT (SELECT seq FROM t), (SELECT count(*) FROM u), (SELECT count(*) FROM e)")


_address_decoder = msgspec.json.Decoder(InvoiceAddress)


def _pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (no statement here contains a literal ``?`` or ``%``)."""
    assert "%" not in sql
    return sql.replace("?", "%s")


def _same(value: Any) -> Any:
    return value


def _hex(value: uuid.UUID) -> str:
    return value.hex


# A batch repeats its times (every transaction has the same created_at, events share hours and
# minutes); equal datetimes are the same instant, so they have the same text.
@functools.lru_cache(maxsize=4096)
def _utc_text(value: datetime) -> str:
    """What SQLAlchemy's SQLite ``DATETIME`` stores for :class:`UtcDateTime`: the UTC wall clock."""
    return to_utc(value).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


# PostgreSQL bulk inserts take one array per column (``unnest``): the statement text stays short and
# fixed whatever the row count, so psycopg parses it once and the server can prepare it; a multi-row
# VALUES list of 1,000 rows was re-parsed for its placeholders on every call. ``ORDER BY n`` keeps
# the append order (``seq``) the order of the batch.
_RETURNING_SEQ_KEY = " RETURNING seq, idempotency_key"


def _unnest_insert(head: str, types: Sequence[str], tail: str) -> str:
    """``head`` filled from one array per column; a type written ``=uuid`` is one value for every
    row instead (a scalar parameter, bound before the arrays: it comes first in the text)."""
    arrays = [f"c{i}" for i, t in enumerate(types) if not t.startswith("=")]
    names = ", ".join(f"%s::{t[1:]}" if t.startswith("=") else f"c{i}" for i, t in enumerate(types))
    dumped = ", ".join(f"%b::{t}[]" for t in types if not t.startswith("="))  # binary: ~4x faster than text
    return (f"{head} SELECT {names} FROM unnest({dumped}) WITH ORDINALITY AS u({', '.join(arrays)}, n) "  # noqa: S608  # nosec B608
            f"ORDER BY n{tail}")


# The batch's ledger rows in one statement: the transactions of one organization (its id bound
# once), then the postings of those inserted, matched by key (a used key inserts neither).
_PG_APPEND_TXS = _unnest_insert(
    _INSERT_TX_HEAD.removesuffix(" VALUES "),
    ("uuid", "=uuid", "text", "text", "text", "text", "text", "timestamptz", "bigint"),
    _ON_TX_CONFLICT + _RETURNING_SEQ_KEY)
# ... and the version-guarded wallet update with them. ``t`` counts the transactions inserted and
# ``u`` the wallet rows updated; the caller refuses the batch unless they are all and one (a used key
# inserts neither the transaction nor its postings).
_PG_LEDGER_CTES = (
    f"t AS ({_PG_APPEND_TXS}), p AS (INSERT INTO ledger_postings ({', '.join(_POSTING_COLUMNS)}) "  # noqa: S608  # nosec B608
    "SELECT t.seq, v.line_no, %s::uuid, v.account, v.amount FROM t JOIN "
    "unnest(%b::text[], %b::smallint[], %b::text[], %b::bigint[]) AS v(key, line_no, account, amount) "
    f"ON v.key = t.idempotency_key), u AS ({_pyformat(_UPDATE_WALLET)} RETURNING 1)")
_PG_APPEND_WITH_WALLET = f"WITH {_PG_LEDGER_CTES} SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM u)"  # noqa: S608  # nosec B608
_INSERT_MOVEMENT_HEAD = f"INSERT INTO grant_movements ({', '.join(_MOVEMENT_COLUMNS)})"
_INSERT_MOVEMENT = _INSERT_MOVEMENT_HEAD + f" VALUES ({', '.join('?' for _ in _MOVEMENT_COLUMNS)})"
_PG_INSERT_MOVEMENTS = _unnest_insert(_INSERT_MOVEMENT_HEAD, ("uuid", "uuid", "uuid", "bigint", "bigint", "bigint"), "")
# Events of one organization (its id bound once) and the open hourly buckets of those inserted, one
# upsert per bucket with their sum: ``ev`` is the events with each one's hour (the bucket key as
# ``truncate_to_hour`` computes it), ``e`` the ids inserted (a stored id is skipped).
_PG_EVENT_CTES = (
    "ev AS (SELECT * FROM unnest(%b::text[], %b::uuid[], %b::uuid[], %b::bigint[], %b::timestamptz[], "  # noqa: S608  # nosec B608
    "%b::bigint[], %b::bigint[], %b::uuid[], %b::timestamptz[]) WITH ORDINALITY AS ev(event_id, project_id, "
    "product_id, quantity, occurred_at, amount_micros, unit_price_micros, token_id, hour, n)), "
    f"e AS ({_INSERT_EVENT_HEAD.removesuffix(' VALUES ')} SELECT %s::uuid, event_id, project_id, product_id, "
    "quantity, occurred_at, amount_micros, unit_price_micros, token_id FROM ev ORDER BY n"
    f"{_ON_EVENT_ID_CONFLICT} RETURNING event_id), "
    f"b AS (INSERT INTO usage_buckets {_BUCKET_VALUES} SELECT %s::uuid, ev.project_id, "
    "coalesce(ev.project_id, %s::uuid), ev.product_id, ev.hour, sum(ev.quantity), sum(ev.amount_micros), NULL "
    f"FROM ev JOIN e ON e.event_id = ev.event_id GROUP BY ev.project_id, ev.product_id, ev.hour{_ON_BUCKET_CONFLICT})")
_PG_RECORD_EVENTS = f"WITH {_PG_EVENT_CTES} SELECT event_id FROM e"  # noqa: S608  # nosec B608


def _without(sql: str, clause: str) -> str:
    """``sql`` without ``clause`` (which it must contain)."""
    assert clause in sql
    return sql.replace(clause, "")


# A usage batch's write (``UsageRepository.record_debits``): both of the above in one statement,
# without their ``ON CONFLICT`` clauses. Every key and event id was read as unused under the wallet
# lock that every writer of them takes, so a used one means that lock was bypassed: a plain insert
# refuses it (a unique violation, raised as ``ConcurrentUpdate``), without the speculative
# insertion that ``ON CONFLICT`` costs on every row (~20 % of inserting a transaction row).
_PG_RECORD_DEBITS = (f"WITH {_without(_PG_LEDGER_CTES, _ON_TX_CONFLICT)}, "  # noqa: S608  # nosec B608
                     f"{_without(_PG_EVENT_CTES, _ON_EVENT_ID_CONFLICT)} "
                     "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM u), (SELECT count(*) FROM e)")


# The grant catch-up's read (``LedgerRepository.balance_moves``, ADR 0016): the transactions after a
# sequence, each with its balance delta summed in the database (a probe of the postings' primary key
# per row), no postings loaded. At the driver level: the worker reads every usage debit once, and
# SQLAlchemy's row and type processing was a quarter of its CPU per transaction. The account names
# are the ledger's own constants. The sum is cast back to ``bigint``: PostgreSQL sums ``bigint`` into
# ``numeric``, which psycopg reads as a ``Decimal`` per row.
_BALANCE_MOVE_HEAD = (
    "SELECT t.seq, t.id, t.idempotency_key, t.kind, t.created_at, t.reference, "  # noqa: S608  # nosec B608
    "CAST((SELECT coalesce(sum(p.amount_micros), 0) FROM ledger_postings p WHERE p.transaction_seq = t.seq AND "
    f"p.account IN ({', '.join(repr(a.value) for a in sorted(BALANCE_ACCOUNTS))})) AS BIGINT) "
    "FROM ledger_transactions t WHERE t.organization_id = ? AND ")
_BALANCE_MOVES = _BALANCE_MOVE_HEAD + "t.seq > ? ORDER BY t.seq LIMIT ?"
_BALANCE_MOVE = _BALANCE_MOVE_HEAD + "t.id = ?"  # one transaction, by its unique id
_ENTRY_KINDS = {kind.value: kind for kind in EntryKind}

_STORED_KEYS_HEAD = "SELECT idempotency_key FROM ledger_transactions WHERE organization_id = ? AND idempotency_key IN ("
# One probe of the unique key per key (a scalar subquery, which the planner does not turn into a join):
# written as a join, or as ``idempotency_key = ANY(...)``, it may scan the organization's whole ledger.
_PG_STORED_KEYS = ("SELECT k FROM unnest(%b::text[]) AS k WHERE (SELECT true FROM ledger_transactions l "
                   "WHERE l.organization_id = %s AND l.idempotency_key = k LIMIT 1)")


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column, for ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)]


# How each array column of the batch statements is sent (``pg_arrays``): the transactions without
# their organization, and the events without theirs plus each one's hour.
_TX_ARRAYS = (uuid_array, text_array, text_array, text_array, text_array, text_array, timestamptz_array,
              int8_array)
_EVENT_ARRAYS = (text_array, uuid_array, uuid_array, int8_array, timestamptz_array, int8_array, int8_array,
                 uuid_array, timestamptz_array)
_MOVEMENT_ARRAYS = (uuid_array, uuid_array, uuid_array, int8_array, int8_array, int8_array)


def _packed(encoders: Sequence[Callable[[Any], PgArray]], columns: Sequence[list[Any]]) -> list[PgArray]:
    """Each column as its array (as many encoders as columns)."""
    return [encode(column) for encode, column in zip(encoders, columns, strict=True)]


class _Dialect:
    """The statements and value binders of one database, built once per process."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.sql: Callable[[str], str] = _pyformat if postgres else str
        self.uuid: Callable[[uuid.UUID], Any] = _same if postgres else _hex
        self.time: Callable[[datetime], Any] = to_utc if postgres else _utc_text
        self.day: Callable[[date], Any] = _same if postgres else date.isoformat
        self.select_wallet = self.sql(_SELECT_WALLET + (" FOR UPDATE" if postgres else ""))
        self.update_wallet = self.sql(_UPDATE_WALLET)
        self.insert_tx = self.sql(_INSERT_TX_HEAD + _TX_VALUES + _ON_TX_CONFLICT + " RETURNING seq")
        self.insert_posting = self.sql(_INSERT_POSTING)
        self.pg_write = self.sql(_PG_WRITE)
        self.upsert_bucket = self.sql(_UPSERT_BUCKET)
        self.insert_event = self.sql(_INSERT_EVENT_HEAD + _EVENT_VALUES + _ON_EVENT_CONFLICT)
        self.put_on_invoice = self.sql(_PG_PUT_ON_INVOICE)
        self.lock_for_event = self.sql(_LOCK_FOR_EVENT + (" FOR UPDATE OF w" if postgres else ""))
        self.pg_write_usage = self.sql(_PG_WRITE_USAGE)
        self.insert_movement = self.sql(_INSERT_MOVEMENT)
        self.balance_moves = self.sql(_BALANCE_MOVES)
        self.balance_move = self.sql(_BALANCE_MOVE)


_DIALECTS = {"sqlite": _Dialect(postgres=False), "postgresql": _Dialect(postgres=True)}


class DriverStatements:
    """The hot statements of one unit of work, bound and run on its DB-API connection."""

    def __init__(self, uow: SqlAlchemyUnitOfWork) -> None:
        self._uow = uow
        d = _DIALECTS[uow.dialect]
        self.postgres = d.postgres
        self._uuid, self._time, self._day = d.uuid, d.time, d.day
        self._select_wallet, self._update_wallet = d.select_wallet, d.update_wallet
        self._insert_tx, self._insert_posting, self._pg_write = d.insert_tx, d.insert_posting, d.pg_write
        self._upsert_bucket, self._insert_event = d.upsert_bucket, d.insert_event
        self._put_on_invoice = d.put_on_invoice
        self._lock_for_event, self._pg_write_usage = d.lock_for_event, d.pg_write_usage
        self._insert_movement = d.insert_movement
        self._balance_moves, self._balance_move = d.balance_moves, d.balance_move

    # ------------------------------------------------------------------ wallet and ledger

    def lock_wallet(self, organization_id: uuid.UUID) -> WalletAccount | None:
        """The wallet row, locked until the transaction ends (``FOR UPDATE``; on SQLite the
        transaction already holds the database's write lock)."""
        rows = self._run(self._select_wallet, (self._uuid(organization_id),))
        return self._wallet(rows[0], organization_id) if rows else None

    def write(self, tx: LedgerTransaction, wallet: WalletAccount, old_version: int) -> int | None:
        """Append ``tx`` (stamped) with its postings and store ``wallet`` over ``old_version``;
        the new ``seq``, or None with nothing written when the key was used before.
        Raises Conflict if the stored wallet is no longer at ``old_version``."""
        if self.postgres:
            tx_row = self._tx_row(tx)
            accounts = [p.account.value for p in tx.postings]
            amounts = [p.amount_micros for p in tx.postings]
            params = (*tx_row, tx_row[1], accounts, amounts, *self._wallet_update(wallet, old_version))
            seq, updated = self._run(self._pg_write, params)[0]
            if seq is not None and updated != 1:
                _concurrent_wallet_change()
            return None if seq is None else int(seq)
        rows = self._run(self._insert_tx, self._tx_row(tx))
        if not rows:
            return None
        seq = int(rows[0][0])
        self._run_many(self._insert_posting, self._posting_rows(seq, tx))
        self.update_wallet(wallet, old_version)
        return seq

    def update_wallet(self, wallet: WalletAccount, old_version: int) -> None:
        if self._rowcount(self._update_wallet, self._wallet_update(wallet, old_version)) != 1:
            _concurrent_wallet_change()

    def stored_keys(self, organization_id: uuid.UUID, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the organization's ledger holds."""
        org = self._uuid(organization_id)
        if self.postgres:
            return {row[0] for row in self._run(_PG_STORED_KEYS, (text_array(keys), org))}
        found: set[str] = set()
        for chunk in _chunks(keys):
            sql = _STORED_KEYS_HEAD + ", ".join("?" for _ in chunk) + ")"
            found.update(row[0] for row in self._run(sql, (org, *chunk)))
        return found

    def append_with_wallet(self, txs: Sequence[LedgerTransaction], wallet: WalletAccount, old_version: int) -> None:
        """Insert stamped transactions of one organization, in order, with their postings, and store
        ``wallet`` over ``old_version`` (one statement on PostgreSQL). ``ConcurrentUpdate`` if a key
        was used before (it inserts nothing) or the stored wallet is no longer at ``old_version``:
        the caller holds the lock every ledger writer takes, so neither can happen unless it was
        bypassed; the unit of work is then rolled back."""
        if self.postgres:
            inserted, updated = self._run(_PG_APPEND_WITH_WALLET,
                                          (*self._pg_ledger_arrays(txs), *self._wallet_update(wallet, old_version)))[0]
            if inserted != len(txs) or updated != 1:
                _concurrent_key_or_wallet_change()
            return
        if len(self._append_many(txs)) != len(txs):
            _concurrent_key_or_wallet_change()
        self.update_wallet(wallet, old_version)

    def record_debits(self, chunks: Iterable[DebitChunk]) -> None:
        """See ``UsageRepository.record_debits``. On PostgreSQL each part is one statement, sent in
        psycopg's pipeline mode as soon as it is built, before the next part is asked for: the
        server writes a part while the caller decides the next one (a 1,000-event batch spends
        about as long in Python as in the server). The answers are checked once every part is sent.
        On SQLite, per part: the ledger rows, the wallet, then the events and their buckets."""
        try:
            if self.postgres and pipeline_supported():
                self._record_pipelined(chunks)
                return
            for chunk in chunks:
                if chunk.debits:
                    self._record_chunk(chunk)
        except Duplicate as error:  # a key or event id stored since the lock read it, or given twice
            _concurrent_key_or_wallet_change(error)

    def _record_pipelined(self, chunks: Iterable[DebitChunk]) -> None:
        connection = self._uow.dbapi_connection()
        sent: list[tuple[Any, int]] = []
        try:
            self._uow.begin_with(())  # its own BEGIN, unless the transaction is open (it always is after the lock)
            with connection.pipeline():
                for chunk in chunks:
                    if chunk.debits:
                        sent.append((connection.execute(_PG_RECORD_DEBITS, self._pg_debit_params(chunk)),
                                     len(chunk.debits)))
            answers = [(cursor.fetchone(), count) for cursor, count in sent]
        except Exception as error:
            self.fail(error, _PG_RECORD_DEBITS, None)
        for answer, count in answers:
            _check_part_written(answer, count)

    def _pg_debit_params(self, chunk: DebitChunk) -> tuple[Any, ...]:
        return (*self._pg_ledger_arrays([tx for _, tx in chunk.debits]),
                *self._wallet_update(chunk.wallet, chunk.old_version),
                *self._pg_event_arrays([event for event, _ in chunk.debits]))

    def _record_chunk(self, chunk: DebitChunk) -> None:
        """One part of a batch's write, without pipeline mode (one statement on PostgreSQL)."""
        if self.postgres:
            _check_part_written(self._run(_PG_RECORD_DEBITS, self._pg_debit_params(chunk))[0], len(chunk.debits))
            return
        self.append_with_wallet([tx for _, tx in chunk.debits], chunk.wallet, chunk.old_version)
        if not all(self.record_events([event for event, _ in chunk.debits])):
            _concurrent_key_or_wallet_change()

    def _append_many(self, txs: Sequence[LedgerTransaction]) -> dict[str, int]:
        """SQLite: insert stamped transactions of one organization, in order, and their postings;
        ``seq`` per key. A key used before inserts nothing and is missing from the answer."""
        seqs: dict[str, int] = {}
        for chunk in _chunks(txs):
            sql = _INSERT_TX_HEAD + ", ".join(_TX_VALUES for _ in chunk) + _ON_TX_CONFLICT + _RETURNING_SEQ_KEY
            params = [value for tx in chunk for value in self._tx_row(tx)]
            seqs.update((key, int(seq)) for seq, key in self._run(sql, params))
        postings = [row for tx in txs if tx.idempotency_key in seqs
                    for row in self._posting_rows(seqs[tx.idempotency_key], tx)]
        if postings:
            self._run_many(self._insert_posting, postings)
        return seqs

    def _pg_ledger_arrays(self, txs: Sequence[LedgerTransaction]) -> tuple[Any, ...]:
        """PostgreSQL: the parameters of ``_PG_APPEND_WITH_WALLET`` that carry the transactions and
        their postings (one array per column)."""
        org = txs[0].organization_id
        assert all(tx.organization_id == org for tx in txs), "a batch appends one organization's transactions"
        columns = _columns([self._tx_row(tx) for tx in txs], len(_TX_COLUMNS))
        del columns[1]  # the organization: one value
        keys: list[str] = []
        lines: list[int] = []
        accounts: list[str] = []
        amounts: list[int] = []
        for tx in txs:
            for line_no, posting in enumerate(tx.postings):
                keys.append(tx.idempotency_key)
                lines.append(line_no)
                accounts.append(posting.account.value)
                amounts.append(posting.amount_micros)
        return (org, *_packed(_TX_ARRAYS, columns), org,
                text_array(keys), int2_array(lines), text_array(accounts), int8_array(amounts))

    def balance_moves(self, organization_id: uuid.UUID, sequence: int, limit: int) -> list[BalanceMove]:
        """See ``LedgerRepository.balance_moves``: one statement."""
        return self._moves(self._run(self._balance_moves, (self._uuid(organization_id), sequence, limit)))

    def balance_move(self, organization_id: uuid.UUID, transaction_id: uuid.UUID) -> BalanceMove | None:
        """See ``LedgerRepository.balance_move``: the same statement for one transaction."""
        found = self._moves(self._run(self._balance_move, (self._uuid(organization_id), self._uuid(transaction_id))))
        return found[0] if found else None

    def _moves(self, rows: Sequence[Sequence[Any]]) -> list[BalanceMove]:
        kinds, read_uuid, read_time = _ENTRY_KINDS, self._read_uuid, self._read_time
        return [BalanceMove(sequence=seq, id=read_uuid(tx_id), idempotency_key=key, kind=kinds[kind],
                            created_at=read_time(at), reference=reference, balance_delta=int(delta))
                for seq, tx_id, key, kind, at, reference, delta in rows]

    def insert_grant_movements(self, spans: Sequence[MovementSpan]) -> None:
        """Append the grant catch-up's movement spans in order (``GrantRepository.apply``, ADR 0016):
        one ``unnest`` statement on PostgreSQL, ``executemany`` on SQLite."""
        rows = [(self._uuid(m.organization_id), self._uuid(m.transaction_id),
                 None if m.grant_id is None else self._uuid(m.grant_id), m.amount_micros, m.first_sequence,
                 m.last_sequence) for m in spans]
        if not rows:
            return
        if self.postgres:
            self._rowcount(_PG_INSERT_MOVEMENTS, _packed(_MOVEMENT_ARRAYS, _columns(rows, len(_MOVEMENT_COLUMNS))))
        else:
            self._run_many(self._insert_movement, rows)

    # ------------------------------------------------------------------ the live usage path

    def lock_for_event(self, organization_id: uuid.UUID, event_id: str, project_id: uuid.UUID | None,
                       product_id: uuid.UUID, at: datetime, ledger_keys: Sequence[str] = (),
                       ) -> tuple[WalletAccount, BillingSettings, bool, bool, frozenset[str]] | None:
        """(wallet, settings, subscribed, event stored, which ``ledger_keys`` are used) in one round
        trip on PostgreSQL (the keys read by a second statement once the lock is held: ``_run_both``),
        the wallet row locked; None without a wallet."""
        when = self._time(at)
        params = (self._uuid(product_id), None if project_id is None else self._uuid(project_id), when, when,
                  event_id, self._uuid(organization_id))
        if self.postgres and ledger_keys:
            rows, used = self._run_both(self._lock_for_event, params, _PG_STORED_KEYS,
                                        (text_array(ledger_keys), self._uuid(organization_id)))
            stored = frozenset(row[0] for row in used)
        else:
            rows = self._run(self._lock_for_event, params)
            stored = frozenset(self.stored_keys(organization_id, ledger_keys)) if rows and ledger_keys else frozenset()
        if not rows:
            return None
        row = rows[0]
        width = len(_WALLET_COLUMNS)
        wallet = self._wallet(row, organization_id)
        settings = self._settings(organization_id, row[width:width + len(_SETTINGS_COLUMNS)])
        return wallet, settings, bool(row[-2]), bool(row[-1]), stored

    def record_debit(self, event: UsageEvent, tx: LedgerTransaction, wallet: WalletAccount,
                     old_version: int) -> bool:
        """See ``UsageRepository.record_debit``: one statement on PostgreSQL; on SQLite (no
        data-modifying CTEs) the same writes one after the other, stopping at a used key."""
        if self.postgres:
            tx_row = self._tx_row(tx)
            params = (*tx_row, tx_row[1], [p.account.value for p in tx.postings],
                      [p.amount_micros for p in tx.postings], *self._wallet_update(wallet, old_version),
                      *self._event_row(event), *self._bucket_row(event))
            seq, updated, stored = self._run(self._pg_write_usage, params)[0]
            if seq is None:
                return False
            if updated != 1 or stored != 1:
                _concurrent_wallet_change()
            return True
        rows = self._run(self._insert_tx, self._tx_row(tx))
        if not rows:
            return False
        postings = self._posting_rows(int(rows[0][0]), tx)
        self._rowcount(_posting_values(len(postings)), [value for row in postings for value in row])
        self.update_wallet(wallet, old_version)
        if not self._run(self._insert_event, self._event_row(event)):
            _concurrent_wallet_change()
        self._rowcount(self._upsert_bucket, self._bucket_row(event))
        return True

    def _bucket_row(self, e: UsageEvent) -> tuple[Any, ...]:
        return (self._uuid(e.organization_id), None if e.project_id is None else self._uuid(e.project_id),
                self._uuid(NIL_UUID if e.project_id is None else e.project_id), self._uuid(e.product_id),
                self._time(truncate_to_hour(e.occurred_at)), e.quantity, e.amount_micros)

    def _settings(self, organization_id: uuid.UUID, r: Sequence[Any]) -> BillingSettings:
        """Stored settings from the ``_SETTINGS_COLUMNS`` of a row; the defaults when none are stored
        (the outer join gave NULLs). The same values as ``rows.settings_from_row``."""
        (address, email, recharge_on, recharge_threshold, recharge_amount, recharge_method, recharge_failures,
         recharge_paused, spend_on, daily_budget, daily_email, monthly_cap, webhook, low_on, low_threshold,
         version, hold_overrun) = r
        if version is None:
            return BillingSettings(organization_id=organization_id)
        return BillingSettings(
            organization_id=organization_id,
            address=None if address is None else _address_decoder.decode(address), billing_email=email,
            auto_recharge=AutoRecharge(
                enabled=bool(recharge_on), threshold_micros=recharge_threshold, amount_micros=recharge_amount,
                payment_method_id=self._read_uuid(recharge_method), consecutive_failures=recharge_failures,
                paused_at=None if recharge_paused is None else self._read_time(recharge_paused)),
            spend_management=SpendManagement(
                enabled=bool(spend_on), daily_budget_micros=daily_budget, daily_email_threshold_micros=daily_email,
                monthly_cap_micros=monthly_cap, webhook_url=webhook),
            low_balance_alert=LowBalanceAlert(enabled=bool(low_on), threshold_micros=low_threshold),
            version=version, hold_overrun=hold_overrun)

    # ------------------------------------------------------------------ usage

    def record_events(self, events: Sequence[UsageEvent]) -> list[bool]:
        """Insert events (no two with the same organization and id) unless already stored, and add
        those inserted to their open hourly buckets (one statement per organization on
        PostgreSQL); per event, whether it was inserted."""
        inserted: set[tuple[Any, str]] = set()
        if self.postgres:
            by_organization: dict[uuid.UUID, list[UsageEvent]] = {}
            for event in events:
                by_organization.setdefault(event.organization_id, []).append(event)
            for org, group in by_organization.items():
                inserted.update((org, row[0]) for row in self._run(_PG_RECORD_EVENTS, self._pg_event_arrays(group)))
            return [(e.organization_id, e.event_id) in inserted for e in events]
        for chunk in _chunks(events):
            sql = _INSERT_EVENT_HEAD + ", ".join(_EVENT_VALUES for _ in chunk) + _ON_EVENT_CONFLICT
            params = [value for event in chunk for value in self._event_row(event)]
            inserted.update((row[0], row[1]) for row in self._run(sql, params))
        stored = [(self._uuid(e.organization_id), e.event_id) in inserted for e in events]
        self._add_to_buckets(event for event, was_inserted in zip(events, stored, strict=True) if was_inserted)
        return stored

    def _pg_event_arrays(self, events: Sequence[UsageEvent]) -> tuple[Any, ...]:
        """PostgreSQL: the parameters of ``_PG_EVENT_CTES`` for events of one organization."""
        org = events[0].organization_id
        assert all(e.organization_id == org for e in events), "one organization's events"
        columns = _columns([(*self._event_row(e), self._time(truncate_to_hour(e.occurred_at))) for e in events],
                           len(_EVENT_COLUMNS) + 1)
        del columns[0]  # the organization: one value
        return (*_packed(_EVENT_ARRAYS, columns), org, org, NIL_UUID)

    def _add_to_buckets(self, events: Iterable[UsageEvent]) -> None:
        """Add the events to their open hourly buckets: one upsert per bucket, summed here."""
        totals: dict[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID, datetime], list[int]] = {}
        for event in events:
            key = (event.organization_id, event.project_id, event.product_id, truncate_to_hour(event.occurred_at))
            total = totals.setdefault(key, [0, 0])
            total[0] += event.quantity
            total[1] += event.amount_micros
        rows = [(self._uuid(org), None if project is None else self._uuid(project),
                 self._uuid(NIL_UUID if project is None else project), self._uuid(product), self._time(hour),
                 quantity, amount) for (org, project, product, hour), (quantity, amount) in totals.items()]
        if rows:
            self._run_many(self._upsert_bucket, rows)

    def put_on_invoice(self, organization_id: uuid.UUID, before: datetime,
                       invoice_id: uuid.UUID) -> list[HourlyUsage]:
        """Mark the organization's open buckets with ``hour < before`` with ``invoice_id`` and return
        the marked rows summed per (project, product), unordered."""
        org, end, invoice = self._uuid(organization_id), self._time(before), self._uuid(invoice_id)
        if self.postgres:
            rows = self._run(self._put_on_invoice, (invoice, org, end))
        else:
            self._rowcount(_MARK_BUCKETS, (invoice, org, end))
            rows = self._run(_SUM_MARKED, (org, end, invoice))
        return [HourlyUsage(organization_id=organization_id, project_id=self._read_uuid(project),
                            product_id=self._read_uuid(product), hour=self._read_time(hour),
                            quantity=int(quantity), amount_micros=int(amount), invoice_id=invoice_id)
                for project, product, quantity, amount, hour in rows]

    # ------------------------------------------------------------------ binding

    def _read_uuid(self, value: Any) -> Any:
        if value is None or self.postgres:
            return value
        return uuid.UUID(hex=value)

    def _read_time(self, value: Any) -> datetime:
        if self.postgres:
            return value.astimezone(UTC)  # type: ignore[no-any-return]
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def _tx_row(self, tx: LedgerTransaction) -> tuple[Any, ...]:
        assert tx.wallet_balance_after is not None, "storage stamps the balance before it writes"
        return (self._uuid(tx.id), self._uuid(tx.organization_id), tx.idempotency_key, tx.kind.value,
                tx.description, tx.reason, tx.reference, self._time(tx.created_at), tx.wallet_balance_after)

    def _posting_rows(self, seq: int, tx: LedgerTransaction) -> list[tuple[Any, ...]]:
        org = self._uuid(tx.organization_id)
        return [(seq, line_no, org, p.account.value, p.amount_micros) for line_no, p in enumerate(tx.postings)]

    def _wallet_update(self, w: WalletAccount, old_version: int) -> tuple[Any, ...]:
        return (w.wallet_micros, w.unbilled_micros, w.version,
                None if w.spend_day is None else self._day(w.spend_day), w.spent_today_micros,
                w.spent_yesterday_micros, w.spend_month, w.spent_month_micros, w.spent_previous_month_micros,
                self._uuid(w.organization_id),
                old_version)

    def _event_row(self, e: UsageEvent) -> tuple[Any, ...]:
        return (self._uuid(e.organization_id), e.event_id,
                None if e.project_id is None else self._uuid(e.project_id), self._uuid(e.product_id),
                e.quantity, self._time(e.occurred_at), e.amount_micros, e.unit_price_micros,
                None if e.token_id is None else self._uuid(e.token_id))

    def _wallet(self, r: Sequence[Any], org: uuid.UUID) -> WalletAccount:
        """The wallet row ``r`` of organization ``org`` (the id it was selected by: not parsed back)."""
        past_due_since, spend_day = r[8], r[10]
        if self.postgres:
            if past_due_since is not None:
                past_due_since = past_due_since.astimezone(UTC)
        else:
            if past_due_since is not None:
                past_due_since = datetime.fromisoformat(past_due_since).replace(tzinfo=UTC)
            if spend_day is not None:
                spend_day = date.fromisoformat(spend_day)
        return WalletAccount(
            organization_id=org, wallet_micros=r[1], unbilled_micros=r[2],
            limits=SpendLimits(credit_line_micros=r[3], minimum_production_credit_micros=r[4],
                               daily_budget_micros=r[5], monthly_cap_micros=r[6]),
            gate=SubscriptionGate(status=r[7], past_due_since=past_due_since, grace_days=r[9]),
            spend_day=spend_day, spent_today_micros=r[11], spent_yesterday_micros=r[12], spend_month=r[13],
            spent_month_micros=r[14], version=r[15], spent_previous_month_micros=r[16], held_micros=r[17],
            scoped_budgets=r[18])

    # ------------------------------------------------------------------ running

    def _run(self, sql: str, params: Sequence[Any]) -> list[Any]:
        connection = self._uow.dbapi_connection()
        try:
            if self.postgres and (began := self._uow.begin_with(((sql, params),))) is not None:
                return began[0]
            return connection.execute(sql, params).fetchall()  # type: ignore[no-any-return]
        except Exception as error:
            self.fail(error, sql, params)

    def _run_both(self, first: str, first_params: Sequence[Any], second: str,
                  second_params: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """PostgreSQL: two statements sent together (psycopg's pipeline mode: one round trip), run
        one after the other. The second takes its own snapshot when the first is done, so it sees
        what committed while the first waited for a row lock; one statement would not (its
        subqueries read the snapshot taken before the wait)."""
        if not pipeline_supported():
            return self._run(first, first_params), self._run(second, second_params)
        connection = self._uow.dbapi_connection()
        try:
            if (began := self._uow.begin_with(((first, first_params), (second, second_params)))) is not None:
                return began[0], began[1]
            with connection.pipeline():
                answers = connection.execute(first, first_params), connection.execute(second, second_params)
            return answers[0].fetchall(), answers[1].fetchall()
        except Exception as error:
            self.fail(error, f"{first}; {second}", (first_params, second_params))

    def _rowcount(self, sql: str, params: Sequence[Any]) -> int:
        connection = self._uow.dbapi_connection()
        try:
            return connection.execute(sql, params).rowcount  # type: ignore[no-any-return]
        except Exception as error:
            self.fail(error, sql, params)

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        connection = self._uow.dbapi_connection()
        try:
            if self.postgres:
                # psycopg pipelines an executemany into one round trip.
                with connection.cursor() as cursor:
                    cursor.executemany(sql, rows)
            else:
                connection.executemany(sql, rows)
        except Exception as error:
            self.fail(error, sql, rows)

    def fail(self, error: Exception, sql: str, params: Any) -> NoReturn:
        """Raise what SQLAlchemy would for ``error``, raised by the driver running ``sql``: the
        translated error (``errors.translate``), the pool invalidated on a disconnect."""
        dialect = self._uow.engine.dialect
        if not isinstance(error, dialect.loaded_dbapi.Error):
            typed = translate(error)  # an int beyond 64 bits refused by sqlite3 while binding
            if typed is error:
                raise error
            raise typed from error
        invalidated = self._uow.invalidate_if_disconnect(error)
        wrapped = sa_exc.DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error,
                                             connection_invalidated=invalidated, dialect=dialect)
        raise translate(wrapped) from error


@functools.cache
def pipeline_supported() -> bool:
    """Whether psycopg's libpq has pipeline mode (libpq 14 or later; the ``binary`` wheels bundle one).
    Without it two statements sent together are sent one after the other: one round trip more."""
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


@functools.lru_cache(maxsize=8)
def _posting_values(count: int) -> str:
    """SQLite: ``count`` postings in one multi-row ``INSERT``."""
    row = f"({', '.join('?' for _ in _POSTING_COLUMNS)})"
    return f"INSERT INTO ledger_postings ({', '.join(_POSTING_COLUMNS)}) VALUES " + ", ".join(row for _ in range(count))  # noqa: S608  # nosec B608


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK_ROWS):
        yield items[start:start + CHUNK_ROWS]


def _concurrent_wallet_change() -> NoReturn:
    # The row changed under the lock we hold: only possible if something bypassed it.
    raise ConcurrentUpdate("the wallet changed concurrently; retry")


def _check_part_written(answer: Sequence[Any], count: int) -> None:
    """PostgreSQL: a part's write inserted all its ``count`` transactions and events and updated the wallet."""
    inserted, updated, recorded = answer
    if inserted != count or updated != 1 or recorded != count:
        _concurrent_key_or_wallet_change()


def _concurrent_key_or_wallet_change(cause: BaseException | None = None) -> NoReturn:
    raise ConcurrentUpdate("the idempotency key or the wallet is being changed concurrently; retry") from cause
