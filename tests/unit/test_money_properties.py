"""Properties of money: every split, proration and rounding adds back exactly, no float anywhere."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core.errors import InvalidInput
from billing_core.money import (
    MICROS_PER_CENT,
    MICROS_PER_DOLLAR,
    Money,
    cents_to_micros,
    format_credits,
    micros_to_cents,
    parse_dollars,
    prorate,
    split_evenly,
)

BOUNDED = settings(max_examples=200, deadline=None)
micros = st.integers(min_value=-(10**15), max_value=10**15)


@BOUNDED
@given(micros)
def test_micros_to_cents_is_within_half_a_cent(amount: int) -> None:
    cents = micros_to_cents(amount)
    assert abs(cents * MICROS_PER_CENT - amount) * 2 <= MICROS_PER_CENT
    # Ties go away from zero, so the sign of the error is known at exactly half a cent.
    if abs(cents * MICROS_PER_CENT - amount) * 2 == MICROS_PER_CENT:
        assert abs(cents * MICROS_PER_CENT) > abs(amount)


@BOUNDED
@given(micros, micros)
def test_micros_to_cents_is_monotonic(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert micros_to_cents(low) <= micros_to_cents(high)


@BOUNDED
@given(micros)
def test_micros_to_cents_is_symmetric(amount: int) -> None:
    assert micros_to_cents(-amount) == -micros_to_cents(amount)


@BOUNDED
@given(st.integers(min_value=-(10**11), max_value=10**11))
def test_cents_to_micros_round_trips(cents: int) -> None:
    assert micros_to_cents(cents_to_micros(cents)) == cents
    assert cents_to_micros(cents) % MICROS_PER_CENT == 0


@BOUNDED
@given(st.decimals(min_value=0, max_value=Decimal("999999999999.999999"), places=6,
                   allow_nan=False, allow_infinity=False),
       st.booleans())
def test_parse_dollars_is_exact_for_every_decimal_with_at_most_six_places(value: Decimal, trim: bool) -> None:
    text = format(value, "f")
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")  # "12.500000" -> "12.5", "7.000000" -> "7"
    expected = int(value * MICROS_PER_DOLLAR)
    assert Decimal(expected) == value * MICROS_PER_DOLLAR  # six places are whole micro-dollars
    assert parse_dollars(text, field="amount") == expected


@BOUNDED
@given(st.text(max_size=12))
def test_parse_dollars_of_any_text_is_a_non_negative_amount_or_names_the_field(text: str) -> None:
    field = None
    try:
        amount = parse_dollars(text, field="amount")
    except InvalidInput as exc:
        field = exc.field
    else:
        assert amount >= 0
        return
    assert field == "amount"


@BOUNDED
@given(st.integers(min_value=0, max_value=10**12 - 1), st.integers(min_value=0, max_value=999))
def test_three_decimal_amounts_display_as_typed(dollars: int, thousandths: int) -> None:
    text = f"{dollars}.{thousandths:03d}"
    shown = format_credits(parse_dollars(text, field="amount"))
    assert shown == f"${dollars:,}.{thousandths:03d}"


@BOUNDED
@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=1, max_value=500))
def test_split_evenly_adds_back_and_is_fair(total: int, parts: int) -> None:
    split = split_evenly(total, parts)
    assert len(split) == parts
    assert sum(split) == total
    assert max(split) - min(split) <= 1
    assert split == sorted(split, reverse=True)  # the remainder goes to the first parts


@BOUNDED
@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=10**8), st.data())
def test_prorate_and_its_complement_add_back_and_both_are_fair(amount: int, denominator: int,
                                                              data: st.DataObject) -> None:
    numerator = data.draw(st.integers(min_value=0, max_value=denominator))
    part = prorate(amount, numerator, denominator)
    complement = amount - part
    assert 0 <= part <= amount
    assert part + complement == amount
    # Each side is the exact share rounded to the nearest unit: off by at most half a unit.
    assert abs(part * denominator - amount * numerator) * 2 <= denominator
    assert abs(complement * denominator - amount * (denominator - numerator)) * 2 <= denominator


@BOUNDED
@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=10**6), st.data())
def test_prorate_is_monotonic_in_the_fraction_and_exact_at_the_ends(amount: int, denominator: int,
                                                                   data: st.DataObject) -> None:
    a = data.draw(st.integers(min_value=0, max_value=denominator))
    b = data.draw(st.integers(min_value=a, max_value=denominator))
    assert prorate(amount, a, denominator) <= prorate(amount, b, denominator)
    assert prorate(amount, 0, denominator) == 0
    assert prorate(amount, denominator, denominator) == amount


@BOUNDED
@given(st.integers(min_value=0, max_value=10**9), st.lists(st.integers(min_value=0, max_value=1000), min_size=1,
                                                          max_size=12))
def test_consecutive_prorations_of_a_period_add_back_to_the_whole(amount: int, shares: list[int]) -> None:
    """Charging each slice of a period as prorate(cumulative) - prorate(previous cumulative) never
    loses or invents a unit, however the period is cut."""
    denominator = max(sum(shares), 1)
    cumulative = 0
    charged = []
    for share in shares:
        before = prorate(amount, cumulative, denominator)
        cumulative += share
        charged.append(prorate(amount, cumulative, denominator) - before)
    assert all(c >= 0 for c in charged)
    assert sum(charged) == (amount if sum(shares) else 0)


@BOUNDED
@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=-(10**12), max_value=10**12),
       st.sampled_from(["USD", "EUR", "GBP", "CHF"]))
def test_money_addition_and_subtraction_are_inverse(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y) - y == x
    assert (x - y) + y == x
    assert (x + y).cents == a + b
