"""Time-ordered identifiers for rows written at the rate of usage (ADR 0021).

A ledger transaction's id is unique in storage (``uq_ledger_transactions_id``). A random (version 4)
id lands each insert on a random page of that index: with a large ledger every debit reads and
dirties a page nobody touched recently, and every commit writes it out again (SQLite's WAL and
PostgreSQL's full-page writes). A version 7 id (RFC 9562) starts with the Unix time in
milliseconds, so new ids land next to each other at the index's right edge, as the ledger's own
sequence does.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RAND_A = 0xFFF << 64
_RAND_B = (1 << 62) - 1


def time_ordered_id() -> uuid.UUID:
    """A new version 7 UUID (RFC 9562): 48 bits of the system's Unix time in milliseconds, then 74
    random bits (``os.urandom``, as :func:`uuid.uuid4`). Ids of later milliseconds sort after earlier
    ones, as text and as 128-bit integers; within one millisecond their order is random. The time
    is the machine's, not a :class:`~billing_core.ports.Clock`'s: it orders the index, and the
    record's own timestamp says when it happened."""
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits: the low 62 for rand_b, the next 12 for rand_a
    milliseconds = time.time_ns() // 1_000_000
    return uuid.UUID(int=(milliseconds << 80) | _VERSION_7 | ((random << 2) & _RAND_A) | _VARIANT_RFC
                     | (random & _RAND_B))
