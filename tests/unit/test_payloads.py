"""JSON nesting is measured before decoding, exactly, whatever strings hold."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.errors import MalformedBody
from billing_core.payloads import MAX_JSON_DEPTH, check_json_depth, json_depth, nesting_bound

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


class _Leaf(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    tags: list[str] = []
    when: dict[str, int] | None = None


class _Outer(msgspec.Struct, forbid_unknown_fields=True):
    leaves: list[_Leaf]
    pair: tuple[int, list[int]] | None = None


class _Lenient(msgspec.Struct):
    name: str


class _Tree(msgspec.Struct, forbid_unknown_fields=True):
    children: list[_Tree] = []


BOUNDED: list[tuple[Any, int]] = [(int, 0), (str | None, 0), (list[int], 1), (list[list[str]], 2),
                                  (dict[str, list[int]], 2), (tuple[int, list[int]], 2), (_Leaf, 2),
                                  (_Outer, 4), (list[_Outer], 5)]


@pytest.mark.parametrize(("decoded_type", "bound"), BOUNDED)
def test_a_type_built_of_leaves_lists_and_strict_structs_bounds_the_nesting(decoded_type: Any, bound: int) -> None:
    assert nesting_bound(decoded_type) == bound


@pytest.mark.parametrize("decoded_type", [Any, dict[str, Any], list[Any], msgspec.Raw, _Lenient, _Tree,
                                          int | list[Any]])
def test_anything_that_admits_an_arbitrary_value_is_unbounded(decoded_type: Any) -> None:
    assert nesting_bound(decoded_type) is None


@given(JSON)
def test_what_a_bounded_type_decodes_nests_at_most_as_deep_as_its_bound(value: Any) -> None:
    document = json.dumps(value).encode()
    for decoded_type, bound in BOUNDED:
        try:
            msgspec.json.decode(document, type=decoded_type, strict=True)
        except msgspec.ValidationError:
            continue
        assert json_depth(document) <= bound


@pytest.mark.parametrize("decoded_type", [decoded_type for decoded_type, _ in BOUNDED])
@pytest.mark.parametrize("opener", [b"[", b'{"name":'])
def test_a_bounded_type_refuses_a_deep_document_without_recursing(decoded_type: Any, opener: bytes) -> None:
    deep = 100_000  # far past the recursion limit: a recursive decode would raise RecursionError
    closer = b"]" if opener == b"[" else b"}"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(opener * deep + b"1" + closer * deep, type=decoded_type, strict=True)
