"""The webhook signature: ``v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``.

This module is the documented recipe for receivers (``docs/webhooks.md``): it has no dependency
beyond the standard library, so a receiver may copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` keyed with the UTF-8 ``secret``."""
    payload = f"{int(timestamp)}.".encode() + body
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def header_value(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Billing-Webhook-Signature`` header for this delivery."""
    return f"{SCHEME}={sign(secret, timestamp, body)}"


def verify(secret: str, header_value: str | None, timestamp: str | int | None, body: bytes, *,
           tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS, now: int | float | None = None) -> bool:
    """True when ``header_value`` carries a ``v1`` signature of ``body`` made with ``secret`` and the
    timestamp is within ``tolerance_seconds`` of ``now`` (unix seconds; default: the system clock).

    ``header_value`` may hold several comma-separated signatures (``v1=abc,v1=def``); one match is
    enough. Comparisons are constant-time. Malformed input gives False, never an exception.
    To rotate secrets, call it once per accepted secret (old and new) and accept if either is True.
    """
    if not secret or not header_value or timestamp is None:
        return False
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    expected = sign(secret, ts, body)
    matched = False
    for part in header_value.split(","):
        scheme, _, candidate = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(candidate.strip().encode(), expected.encode()):
            matched = True  # keep looping: the time taken does not depend on which entry matched
    return matched
