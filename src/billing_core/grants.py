"""Credit grants (issue 21, groundwork): every credit comes from a grant with a source, an optional
expiry and a priority, and a debit draws from the grants in one stated order.

Pure: which grants a debit draws, and how much from each. Not wired into storage yet — the wallet's
balance is still one pool; this is the rule the storage step will apply under the wallet lock.

Draw order: grants that expire go before grants that never do, the soonest expiry first; at equal
expiry, promotional credit (promotion, trial, pack bonus) before paid credit (purchase, pack,
auto-recharge, refund); then the lower ``priority`` number; then the oldest grant; then the id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

import msgspec

from billing_core.errors import InvalidInput


class GrantSource(StrEnum):
    PURCHASE = "purchase"
    PACK = "pack"
    AUTO_RECHARGE = "auto_recharge"
    PROMOTION = "promotion"
    TRIAL = "trial"
    REFUND = "refund"


PROMOTIONAL_SOURCES = frozenset({GrantSource.PROMOTION, GrantSource.TRIAL})


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID
    source: GrantSource
    amount_micros: int
    remaining_micros: int
    created_at: datetime
    expires_at: datetime | None = None
    priority: int = 0

    @property
    def promotional(self) -> bool:
        return self.source in PROMOTIONAL_SOURCES


class Draw(msgspec.Struct, frozen=True):
    """What one debit took from one grant."""

    grant_id: uuid.UUID
    amount_micros: int


def draw_key(grant: Grant) -> tuple[bool, datetime, bool, int, datetime, int]:
    """The sort key of :func:`draw` (a grant that never expires sorts after every one that does)."""
    return (grant.expires_at is None, grant.expires_at or grant.created_at, not grant.promotional, grant.priority,
            grant.created_at, grant.id.int)


def draw(grants: Iterable[Grant], amount_micros: int, now: datetime) -> list[Draw]:
    """The draws that pay ``amount_micros`` from the grants usable at ``now`` (not expired, something
    left), in draw order. What the grants cannot cover is not drawn: it is usage on the credit line,
    and the sum of the draws says how much the grants paid."""
    if type(amount_micros) is not int or amount_micros < 0:
        raise InvalidInput("amount_micros", "amount_micros must be a non-negative integer")
    usable = sorted((g for g in grants if g.remaining_micros > 0 and (g.expires_at is None or g.expires_at > now)),
                    key=draw_key)
    draws: list[Draw] = []
    left = amount_micros
    for grant in usable:
        if left == 0:
            break
        take = min(left, grant.remaining_micros)
        draws.append(Draw(grant.id, take))
        left -= take
    return draws
