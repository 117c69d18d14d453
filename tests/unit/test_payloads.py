"""JSON nesting is measured before decoding, exactly, whatever strings hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.errors import MalformedBody
from billing_core.payloads import MAX_JSON_DEPTH, check_json_depth, json_depth

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\a'),
                                                                                inner, max_size=3),
                    max_leaves=30)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(JSON)
def test_the_depth_is_exact_for_any_json_with_brackets_in_its_strings(value: Any) -> None:
    assert json_depth(json.dumps(value).encode()) == _depth(value)
    assert json_depth(json.dumps(value, ensure_ascii=False).encode()) == _depth(value)


def test_the_limit_is_inclusive_and_names_the_field() -> None:
    check_json_depth(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    check_json_depth(b'"' + b"[" * 10_000 + b'"')  # inside a string brackets nest nothing
    with pytest.raises(MalformedBody) as deep:
        check_json_depth(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), field="payload")
    assert (deep.value.code, deep.value.field) == ("malformed_body", "payload")


@pytest.mark.parametrize("payload", [b"[" * 100_000, b'{"a":' * 100_000, b'["\\"' + b"[" * 100])
def test_unclosed_or_broken_json_is_refused_rather_than_decoded(payload: bytes) -> None:
    with pytest.raises(MalformedBody):
        check_json_depth(payload)
