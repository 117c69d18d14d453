"""The driver's column arrays (``adapters.sqlalchemy.pg_arrays``) are byte for byte what psycopg's
own list dumper sends for the same values as the same element type, and PostgreSQL reads them back
as those values (``tests/integration/test_pg_arrays_round_trip.py``)."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.numeric import Int2, Int8

from adapters.sqlalchemy.pg_arrays import (
    Int2Array,
    Int8Array,
    PgArray,
    TextArray,
    TimestamptzArray,
    UuidArray,
    int2_array,
    int8_array,
    text_array,
    timestamptz_array,
    uuid_array,
)

TEXTS = st.lists(st.none() | st.text(), max_size=40)
UUIDS = st.lists(st.none() | st.uuids(), max_size=40)
INT8S = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40)
INT2S = st.lists(st.integers(-(2**15), 2**15 - 1), max_size=40)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
TIMES = st.lists(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS),
                 max_size=40)


def _psycopg(values: Sequence[Any]) -> bytes:
    """What psycopg's list dumper sends for ``values`` (binary)."""
    dumped = Transformer().get_dumper(list(values), PyFormat.BINARY).dump(list(values))
    assert dumped is not None
    return bytes(dumped)


def _same(ours: PgArray, kind: type[PgArray], theirs: bytes) -> None:
    assert type(ours) is kind
    assert bytes(ours) == theirs


@given(TEXTS)
def test_text(values: list[str | None]) -> None:
    if any(v is not None for v in values):  # psycopg sends [] and [None, ...] as text ("{}", "{NULL}")
        _same(text_array(values), TextArray, _psycopg(values))


@given(UUIDS)
def test_uuid(values: list[uuid.UUID | None]) -> None:
    if any(v is not None for v in values):
        _same(uuid_array(values), UuidArray, _psycopg(values))


@given(INT8S)
def test_int8(values: list[int]) -> None:
    if values:
        _same(int8_array(values), Int8Array, _psycopg([Int8(v) for v in values]))


@given(INT2S)
def test_int2(values: list[int]) -> None:
    if values:
        _same(int2_array(values), Int2Array, _psycopg([Int2(v) for v in values]))


@given(TIMES)
def test_timestamptz(values: list[datetime]) -> None:
    if values:
        _same(timestamptz_array(values), TimestamptzArray, _psycopg(values))


@pytest.mark.parametrize(("encode", "oid"), [(int8_array, 20), (int2_array, 21), (text_array, 25),
                                             (uuid_array, 2950), (timestamptz_array, 1184)])
def test_an_empty_array_has_no_dimensions(encode: Callable[[list[Any]], PgArray], oid: int) -> None:
    assert bytes(encode([])) == (0).to_bytes(4, "big") * 2 + oid.to_bytes(4, "big")


def test_a_naive_time_or_an_out_of_range_integer_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        timestamptz_array([datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1)])
    with pytest.raises(struct.error):
        int8_array([2**63])
    with pytest.raises(struct.error):
        int2_array([-(2**15) - 1])
