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
