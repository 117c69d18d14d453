"""PostgreSQL reads the driver's column arrays (``adapters.sqlalchemy.pg_arrays``) as the values they
were built from, NULLs, empty arrays and non-UTC offsets included."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sqlalchemy.pg_arrays import int2_array, int8_array, text_array, timestamptz_array, uuid_array
from adapters.testing.storage import require_postgres_url

pytestmark = pytest.mark.postgres

OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
COLUMNS: list[tuple[str, Callable[[Any], Any], st.SearchStrategy[Any]]] = [
    ("bigint", int8_array, st.integers(-(2**63), 2**63 - 1)),
    ("smallint", int2_array, st.integers(-(2**15), 2**15 - 1)),
    # What a text column can hold: UTF-8 (no lone surrogates), no NUL.
    ("text", text_array, st.none() | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"))),
    ("uuid", uuid_array, st.none() | st.uuids()),
    ("timestamptz", timestamptz_array,
     st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS)),
]


@pytest.fixture(scope="module")
def connection() -> Iterator[psycopg.Connection[Any]]:
    url = require_postgres_url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("SET TIME ZONE 'UTC'")
        yield db


@pytest.mark.parametrize(("sql_type", "encode", "elements"), COLUMNS, ids=[c[0] for c in COLUMNS])
def test_postgres_reads_back_the_values(connection: psycopg.Connection[Any], sql_type: str,
                                        encode: Callable[[Any], Any], elements: st.SearchStrategy[Any]) -> None:
    @settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
    @given(st.lists(elements, max_size=30))
    def check(values: list[Any]) -> None:
        row = connection.execute(f"SELECT %b::{sql_type}[], cardinality(%b::{sql_type}[])",
                                 (encode(values), encode(values))).fetchone()
        assert row is not None
        expected = [v.astimezone(UTC) if isinstance(v, datetime) else v for v in values]
        assert ([] if row[0] is None else row[0]) == expected
        assert row[1] == len(values)

    check()


def test_a_uuid_array_of_nulls_only(connection: psycopg.Connection[Any]) -> None:
    row = connection.execute("SELECT %b::uuid[]", (uuid_array([None, None]),)).fetchone()
    assert row == ([None, None],)
    assert connection.execute("SELECT %b::uuid[] = ARRAY[%s]::uuid[]",
                              (uuid_array([uuid.UUID(int=1)]), uuid.UUID(int=1))).fetchone() == (True,)
