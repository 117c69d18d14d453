"""Authentication's token read in one statement, outside any transaction (issue 16).

Every authenticated HTTP request reads its token. In a unit of work that read costs three round trips
on PostgreSQL (``BEGIN``, the ``SELECT``, ``ROLLBACK``) and, on SQLite, a ``BEGIN IMMEDIATE`` that
queues behind every writer of the process. :class:`SqlAlchemyTokenReader` instead checks a
connection out of the engine's pool (with its idle ping; on SQLite one kept idle), runs one
``SELECT`` of the token joined to its user's membership in autocommit, and gives the connection
back: one round trip, no lock.

Nothing is cached, by design: a per-process cache could only stay correct if every request checked a
revocation version in the database, which is the same round trip. Reading committed state on every
request means a token revoked, or a membership removed, by a committed unit of work is refused by the
next request in every process. Like :mod:`adapters.sqlalchemy.driver`, the statement runs on the
DB-API connection and binds values as the column types do (``Uuid`` as hex and ``UtcDateTime`` as UTC
text on SQLite).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from adapters.sqlalchemy.engine import give_back_connection, take_connection
from adapters.sqlalchemy.errors import translate
from adapters.sqlalchemy.tables import api_tokens, memberships
from billing_core.errors import StorageUnavailable
from billing_core.organization import ApiToken, Credential, Membership
from billing_core.permissions import Permission, Role

_TOKEN_COLUMNS = ("id", "organization_id", "token_hash", "name", "created_at", "user_id", "scopes", "expires_at",
                  "revoked_at")
_MEMBER_COLUMNS = ("user_id", "email", "role", "email_verified")
assert set(_TOKEN_COLUMNS) == set(api_tokens.c.keys())
assert set(_MEMBER_COLUMNS) <= set(memberships.c.keys())

_SELECT = (
    f"SELECT {', '.join('t.' + c for c in _TOKEN_COLUMNS)}, {', '.join('m.' + c for c in _MEMBER_COLUMNS)} "  # noqa: S608  # nosec B608
    "FROM api_tokens t LEFT JOIN memberships m "
    "ON m.organization_id = t.organization_id AND m.user_id = t.user_id WHERE t.token_hash = ?")
_scopes = msgspec.json.Decoder(list[str])


class SqlAlchemyTokenReader:
    """A :class:`~billing_core.ports.TokenReader` on an engine made by ``make_engine``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._sql = _SELECT.replace("?", "%s") if self._postgres else _SELECT

    def credential(self, token_hash: str) -> Credential | None:
        try:
            pooled = take_connection(self._engine)
        except (sa_exc.DBAPIError, self._engine.dialect.loaded_dbapi.Error) as error:
            # The pool raises the driver's own error when it cannot connect at all.
            raise StorageUnavailable("the database cannot be reached; try again later") from error
        try:
            row = self._fetch(pooled, token_hash)
        finally:
            give_back_connection(self._engine, pooled)  # no transaction is open: kept on SQLite
        return None if row is None else self._credential(row)

    def _fetch(self, pooled: Any, token_hash: str) -> Any:
        connection = pooled.driver_connection
        dbapi = self._engine.dialect.loaded_dbapi
        try:
            if self._postgres:
                # Autocommit only for this statement: no BEGIN / ROLLBACK round trips. The pool hands
                # out idle connections, where psycopg switches the mode locally.
                connection.autocommit = True
                try:
                    return connection.execute(self._sql, (token_hash,)).fetchone()
                finally:
                    connection.autocommit = False
            # SQLite connections run with isolation_level None: a lone SELECT is its own transaction,
            # reading the last committed state without the writers' BEGIN IMMEDIATE.
            return connection.execute(self._sql, (token_hash,)).fetchone()
        except dbapi.Error as error:
            invalidated = self._engine.dialect.is_disconnect(error, pooled.dbapi_connection, None)
            if invalidated:
                pooled.invalidate(error)
            wrapped = sa_exc.DBAPIError.instance(self._sql, (token_hash,), error, dbapi.Error,
                                                 connection_invalidated=invalidated, dialect=self._engine.dialect)
            raise translate(wrapped) from error

    def _credential(self, r: Any) -> Credential:
        token = ApiToken(id=self._uuid(r[0]), organization_id=self._uuid(r[1]), token_hash=r[2], name=r[3],
                         created_at=self._time(r[4]), user_id=r[5],
                         scopes=frozenset(Permission(s) for s in _scopes.decode(r[6])),
                         expires_at=None if r[7] is None else self._time(r[7]),
                         revoked_at=None if r[8] is None else self._time(r[8]))
        membership = None
        if r[9] is not None:
            membership = Membership(organization_id=token.organization_id, user_id=r[9], email=r[10], role=Role(r[11]),
                                    email_verified=bool(r[12]))
        return Credential(token=token, membership=membership)

    def _uuid(self, value: Any) -> uuid.UUID:
        return value if self._postgres else uuid.UUID(hex=value)

    def _time(self, value: Any) -> datetime:
        if self._postgres:
            return value.astimezone(UTC)  # type: ignore[no-any-return]
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
