"""What every SQLAlchemy repository shares: the unit of work's connection, error translation,
dialect-specific ``INSERT ... ON CONFLICT`` and offset pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import CursorResult, Executable, Row, Select, Table
from sqlalchemy.dialects import postgresql, sqlite

from billing_core.errors import InvalidInput
from billing_core.ports import Page

if TYPE_CHECKING:
    from adapters.sqlalchemy.uow import SqlAlchemyUnitOfWork

T = TypeVar("T")
AnyRow = Row[*tuple[Any, ...]]
AnyResult = CursorResult[*tuple[Any, ...]]
AnySelect = Select[*tuple[Any, ...]]
Insert = postgresql.Insert | sqlite.Insert
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class SqlAlchemyRepository:
    """Base of every repository: statements run on the unit of work's connection, in its transaction."""

    def __init__(self, uow: SqlAlchemyUnitOfWork) -> None:
        self._uow = uow
        self._postgres = uow.dialect == "postgresql"

    def _execute(self, statement: Executable, params: Params = None) -> AnyResult:
        return self._uow.execute(statement, params)

    def _insert(self, table: Table) -> Insert:
        """``INSERT`` with the dialect's ``ON CONFLICT`` support (PostgreSQL and SQLite share it).

        ``rowcount`` is kept (SQLAlchemy reports it reliably only for UPDATE/DELETE otherwise): it
        says whether ``ON CONFLICT DO NOTHING`` inserted the row.
        """
        statement = postgresql.insert(table) if self._postgres else sqlite.insert(table)
        return statement.execution_options(preserve_rowcount=True)

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Run writes that may violate a constraint so that the unit of work stays usable when they
        do: a SAVEPOINT on PostgreSQL (where a failed statement aborts the transaction); nothing on
        SQLite, which rolls back just the failed statement."""
        if self._postgres:
            with self._uow.savepoint():
                yield
        else:
            yield

    def _page(self, query: AnySelect, mapper: Callable[[AnyRow], T], limit: int,
              cursor: str | None) -> Page[T]:
        """Offset pages over an ordered query, with the in-memory adapter's cursor rules."""
        start = parse_offset(limit, cursor)
        rows = self._execute(query.limit(limit + 1).offset(start)).all()
        items = [mapper(row) for row in rows[:limit]]
        return Page(items=items, next_cursor=str(start + limit) if len(rows) > limit else None)


def parse_offset(limit: int, cursor: str | None) -> int:
    if type(limit) is not int or limit < 1:
        raise InvalidInput("limit", "limit must be at least 1")
    try:
        start = int(cursor) if cursor else 0
    except ValueError as exc:
        raise InvalidInput("cursor", "cursor is not valid") from exc
    if start < 0:
        raise InvalidInput("cursor", "cursor is not valid")
    return start
