"""Credit grants' draw order (issue 21): soonest expiry first, promotional before paid, then
priority, age and id; draws never exceed a grant's remainder or the amount."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core.errors import InvalidInput
from billing_core.grants import Draw, Grant, GrantSource, draw, draw_key

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
ORG = uuid.UUID(int=1)


def grant(n: int, source: GrantSource, remaining: int, *, expires_in: timedelta | None = None,
          priority: int = 0, age: timedelta = timedelta(days=1)) -> Grant:
    return Grant(id=uuid.UUID(int=n), organization_id=ORG, source=source, amount_micros=remaining,
                 remaining_micros=remaining, created_at=NOW - age,
                 expires_at=None if expires_in is None else NOW + expires_in, priority=priority)


def test_soonest_expiry_first_then_promotional_before_paid() -> None:
    paid_forever = grant(1, GrantSource.PURCHASE, 500)
    promo_forever = grant(2, GrantSource.PROMOTION, 500)
    trial_soon = grant(3, GrantSource.TRIAL, 100, expires_in=timedelta(days=2))
    pack_sooner = grant(4, GrantSource.PACK, 100, expires_in=timedelta(days=1))
    expired = grant(5, GrantSource.PROMOTION, 900, expires_in=timedelta(seconds=0))
    draws = draw([paid_forever, promo_forever, trial_soon, pack_sooner, expired], 750, NOW)
    assert draws == [Draw(pack_sooner.id, 100), Draw(trial_soon.id, 100), Draw(promo_forever.id, 500),
                     Draw(paid_forever.id, 50)]


def test_priority_then_age_break_ties_and_an_uncovered_rest_is_not_drawn() -> None:
    low = grant(1, GrantSource.PURCHASE, 10, priority=1)
    high_old = grant(2, GrantSource.PURCHASE, 10, priority=0, age=timedelta(days=9))
    high_new = grant(3, GrantSource.PURCHASE, 10, priority=0)
    assert draw([low, high_new, high_old], 100, NOW) == [Draw(high_old.id, 10), Draw(high_new.id, 10),
                                                         Draw(low.id, 10)]
    with pytest.raises(InvalidInput):
        draw([low], -1, NOW)


grants_strategy = st.lists(st.builds(
    grant, n=st.integers(1, 10**6), source=st.sampled_from(list(GrantSource)), remaining=st.integers(0, 10**6),
    expires_in=st.one_of(st.none(), st.integers(-5, 5).map(lambda d: timedelta(days=d))),
    priority=st.integers(0, 3)), max_size=12, unique_by=lambda g: g.id)


@given(grants=grants_strategy, amount=st.integers(0, 5 * 10**6))
def test_draws_are_bounded_ordered_and_exhaust_grants_in_order(grants: list[Grant], amount: int) -> None:
    draws = draw(grants, amount, NOW)
    by_id = {g.id: g for g in grants}
    usable = [g for g in grants if g.remaining_micros > 0 and (g.expires_at is None or g.expires_at > NOW)]
    assert sum(d.amount_micros for d in draws) == min(amount, sum(g.remaining_micros for g in usable))
    assert all(0 < d.amount_micros <= by_id[d.grant_id].remaining_micros for d in draws)
    keys = [draw_key(by_id[d.grant_id]) for d in draws]
    assert keys == sorted(keys)
    # Every grant drawn before the last is drawn in full.
    assert all(d.amount_micros == by_id[d.grant_id].remaining_micros for d in draws[:-1])
