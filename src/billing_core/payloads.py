"""Limits on untrusted JSON payloads (HTTP request bodies, payment-provider events), checked
before they are decoded.

JSON decoders recurse once per nesting level, so a small body nested a few thousand deep
(``[[[[...]]]]``) exhausts the interpreter's recursion limit: ``RecursionError``, which no
decoder reports as malformed input. :func:`check_json_depth` measures the nesting without
decoding, in linear time, and refuses anything deeper than any payload we accept can be.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

import msgspec.inspect as mi

from billing_core.errors import MalformedBody

MAX_JSON_DEPTH = 64
"""Request bodies nest at most 3 deep and provider events about 10; 64 leaves room for both."""

# A JSON string, escapes included: brackets inside strings do not nest anything.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS, _CLOSERS = b"[{", b"]}"
# Every byte but brackets deleted; openers become +1 and closers -1 (as signed bytes).
_STEPS = bytes.maketrans(_OPENERS + _CLOSERS, b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _OPENERS + _CLOSERS)


def json_depth(payload: bytes) -> int:
    """How deep the arrays and objects of ``payload`` nest (0 for a scalar), without decoding it.

    Exact for valid JSON; for anything else an upper bound good enough to refuse it early (an
    unterminated string's brackets count as nesting)."""
    brackets = _STRING.sub(b"", payload).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", brackets)), default=0)


def check_json_depth(payload: bytes, *, field: str = "body", max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`~billing_core.errors.MalformedBody` if ``payload`` nests deeper than ``max_depth``."""
    if payload.count(b"[") + payload.count(b"{") <= max_depth:
        return  # too few openers to nest that deep: the common case costs two scans in C
    if json_depth(payload) > max_depth:
        raise MalformedBody(f"the JSON {field} nests deeper than {max_depth} levels", field=field)


# JSON values that nest nothing: msgspec reads each from a single token.
_LEAVES = (mi.BoolType, mi.BytesType, mi.ByteArrayType, mi.MemoryViewType, mi.DateTimeType, mi.DateType,
           mi.TimeType, mi.TimeDeltaType, mi.DecimalType, mi.EnumType, mi.FloatType, mi.IntType, mi.LiteralType,
           mi.NoneType, mi.StrType, mi.UUIDType)


def nesting_bound(decoded_type: Any) -> int | None:
    """How deep a JSON document can nest and still decode into ``decoded_type`` with msgspec; None
    when nothing bounds it (``Any``, ``msgspec.Raw``, a custom type, a recursive type, or an object
    whose unknown fields are skipped rather than refused).

    A decoder of a bounded type refuses a deeper document at its first bracket too many, as a
    validation error and without recursing into it, so a body decoded that way needs no
    :func:`check_json_depth` of its own."""
    return _bound(mi.type_info(decoded_type), frozenset())


def _bound(info: mi.Type, open_structs: frozenset[type]) -> int | None:
    if isinstance(info, mi.Metadata):
        return _bound(info.type, open_structs)
    if isinstance(info, _LEAVES):
        return 0
    if isinstance(info, mi.UnionType):
        return _deepest(info.types, open_structs, 0)
    if isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return _deepest((info.item_type,), open_structs, 1)
    if isinstance(info, mi.TupleType):
        return _deepest(info.item_types, open_structs, 1)
    if isinstance(info, (mi.DictType, mi.FrozenDictType)):
        return _deepest((info.key_type, info.value_type), open_structs, 1)
    if isinstance(info, mi.StructType) and info.forbid_unknown_fields and info.cls not in open_structs:
        return _deepest(tuple(f.type for f in info.fields), open_structs | {info.cls}, 1)
    return None


def _deepest(infos: tuple[mi.Type, ...], open_structs: frozenset[type], levels: int) -> int | None:
    """``levels`` plus the deepest of ``infos``; None if any of them is unbounded."""
    deepest = 0
    for info in infos:
        bound = _bound(info, open_structs)
        if bound is None:
            return None
        deepest = max(deepest, bound)
    return levels + deepest
