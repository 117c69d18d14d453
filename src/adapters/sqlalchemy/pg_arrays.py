"""One-dimensional PostgreSQL arrays in the binary wire format, built a column at a time.

The driver-level bulk statements (:mod:`adapters.sqlalchemy.driver`) send one array per column and
``unnest`` them. psycopg dumps a Python list in Python: it first scans the list for an element to
choose the element type by (for integers, the largest magnitude: a list of small integers goes as
``int2[]`` and the server casts it), then per element a dumper call, a length ``pack`` and two
appends. Here a whole column is packed at once (one ``struct`` call for a column of integers or
times, one ``join`` for the others) as the column's own type.

Each encoder returns a :class:`PgArray` subclass; psycopg sends its bytes unchanged as a binary
parameter of the array's type (``%b`` placeholders). The layout is ``array_send``'s: the number of
dimensions, whether any element is NULL, the element type, then per dimension its length and lower
bound (1), then per element its length (-1 for NULL) and its bytes. An empty array has no
dimensions.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar, TypeVar, cast

import psycopg
from psycopg.adapt import Dumper, PyFormat, Transformer
from psycopg.pq import Format

_HEAD = struct.Struct(">iiiii")
_EMPTY_HEAD = struct.Struct(">iii")
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)
_UUID_LENGTH = _LENGTH(16)
_TIME_LENGTH = _LENGTH(8)
# psycopg's own (C) dumper of an aware datetime: 8 bytes, microseconds since 2000-01-01 UTC.
_dump_time = cast(Callable[[datetime], bytes],
                  Transformer().get_dumper(datetime(2000, 1, 1, tzinfo=UTC), PyFormat.BINARY).dump)


class PgArray(bytes):
    """A one-dimensional array already in PostgreSQL's binary format; subclasses name its type."""

    oid: ClassVar[int]
    """The array type's OID (``_int8``, ``_text``, ...)."""
    element_oid: ClassVar[int]


class Int8Array(PgArray):
    oid, element_oid = 1016, 20


class Int2Array(PgArray):
    oid, element_oid = 1005, 21


class TextArray(PgArray):
    oid, element_oid = 1009, 25


class UuidArray(PgArray):
    oid, element_oid = 2951, 2950


class TimestamptzArray(PgArray):
    oid, element_oid = 1185, 1184


A = TypeVar("A", bound=PgArray)


def _array(kind: type[A], count: int, has_null: bool, elements: bytes) -> A:
    if not count:
        return kind(_EMPTY_HEAD.pack(0, 0, kind.element_oid))
    return kind(_HEAD.pack(1, has_null, kind.element_oid, count, 1) + elements)


def _integers(kind: type[A], code: str, values: Sequence[int]) -> A:
    """Integers of the ``struct`` format ``code``, no NULLs: each element is its length and its
    value, one pack of the interleaved pairs."""
    width = struct.calcsize(">" + code)
    return _array(kind, len(values), False,
                  struct.pack(">" + ("i" + code) * len(values), *[x for value in values for x in (width, value)]))


def int8_array(values: Sequence[int]) -> Int8Array:
    """``bigint[]`` of integers (no NULLs: every ``bigint`` column sent in bulk is NOT NULL)."""
    return _integers(Int8Array, "q", values)


def int2_array(values: Sequence[int]) -> Int2Array:
    """``smallint[]`` of integers (no NULLs)."""
    return _integers(Int2Array, "h", values)


def text_array(values: Sequence[str | None]) -> TextArray:
    """``text[]``; None is NULL."""
    # A batch repeats many of its texts (kinds, descriptions, accounts): each is framed once.
    framed: dict[str | None, bytes] = {None: _NULL}
    parts: list[bytes] = []
    for value in values:
        part = framed.get(value)
        if part is None:
            encoded = value.encode()  # type: ignore[union-attr]  # None is framed already
            part = framed[value] = _LENGTH(len(encoded)) + encoded
        parts.append(part)
    return _array(TextArray, len(values), None in values, b"".join(parts))


def uuid_array(values: Sequence[uuid.UUID | None]) -> UuidArray:
    """``uuid[]``; None is NULL."""
    try:  # most columns hold no NULL (``None in values`` would call UUID.__eq__ per element)
        return _array(UuidArray, len(values), False,
                      _UUID_LENGTH + _UUID_LENGTH.join([value.bytes for value in values]))  # type: ignore[union-attr]
    except AttributeError:  # a None
        return _array(UuidArray, len(values), True, b"".join(
            [_NULL if value is None else _UUID_LENGTH + value.bytes for value in values]))


def timestamptz_array(values: Sequence[datetime]) -> TimestamptzArray:
    """``timestamptz[]`` of aware datetimes (no NULLs)."""
    for value in values:
        if value.tzinfo is None:
            raise ValueError(f"a timestamptz needs an aware datetime, got {value!r}")
    return _array(TimestamptzArray, len(values), False,
                  _TIME_LENGTH + _TIME_LENGTH.join([_dump_time(value) for value in values]))


class _PgArrayDumper(Dumper):
    """Sends a :class:`PgArray` as it is, binary, typed by its class."""

    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return obj


for _kind in (Int8Array, Int2Array, TextArray, UuidArray, TimestamptzArray):
    # On psycopg's global adapters, before any connection copies them: only these classes are affected.
    psycopg.adapters.register_dumper(_kind, type(f"{_kind.__name__}Dumper", (_PgArrayDumper,), {"oid": _kind.oid}))
