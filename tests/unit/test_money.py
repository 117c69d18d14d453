"""Money without floats: Money values, the one micro→cent rounding, parsing, display, splits."""

from __future__ import annotations

import msgspec
import pytest

from billing_core.errors import InvalidInput
from billing_core.money import (
    MAX_MICROS,
    MICROS_PER_CENT,
    MICROS_PER_DOLLAR,
    Money,
    cents_to_micros,
    check_micros,
    dollars_to_micros,
    format_credits,
    micros_to_cents,
    parse_dollars,
    prorate,
    split_evenly,
)


def test_units() -> None:
    assert MICROS_PER_DOLLAR == 1_000_000
    assert MICROS_PER_CENT == 10_000
    assert dollars_to_micros(5) == 5_000_000
    assert cents_to_micros(1248) == 12_480_000
    assert cents_to_micros(-3) == -30_000


# --------------------------------------------------------------------------- Money


def test_money_adds_and_subtracts_in_one_currency() -> None:
    a, b = Money(1250, "USD"), Money(99, "USD")
    assert a + b == Money(1349, "USD")
    assert a - b == Money(1151, "USD")
    assert b - a == Money(-1151, "USD")
    assert Money.zero() == Money(0, "USD")
    assert Money.zero("EUR") == Money(0, "EUR")


@pytest.mark.parametrize("op", ["add", "sub"])
def test_money_refuses_to_mix_currencies(op: str) -> None:
    usd, eur = Money(1, "USD"), Money(1, "EUR")
    with pytest.raises(InvalidInput) as info:
        _ = usd + eur if op == "add" else usd - eur
    assert (info.value.code, info.value.field) == ("currency_mismatch", "currency_iso")


@pytest.mark.parametrize("currency", ["usd", "XXX", "", "US", "JPY"])
def test_money_refuses_unknown_currencies(currency: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Money(1, currency)
    assert (info.value.code, info.value.field) == ("unsupported_currency", "currency_iso")


@pytest.mark.parametrize("cents", [True, 1.0, 1.5, "1"])
def test_money_cents_must_be_a_real_integer(cents: object) -> None:
    with pytest.raises(InvalidInput) as info:
        Money(cents, "USD")  # type: ignore[arg-type]
    assert info.value.field == "cents"


def test_money_is_frozen_and_checked_when_decoded() -> None:
    money = Money(1, "USD")
    with pytest.raises(AttributeError):
        money.cents = 2  # type: ignore[misc]
    assert msgspec.json.decode(b'{"cents":1248,"currency_iso":"EUR"}', type=Money) == Money(1248, "EUR")
    with pytest.raises(InvalidInput):
        msgspec.json.decode(b'{"cents":1,"currency_iso":"usd"}', type=Money)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"cents":1.5,"currency_iso":"USD"}', type=Money)
    assert msgspec.json.encode(Money(1248, "USD")) == b'{"cents":1248,"currency_iso":"USD"}'


@pytest.mark.parametrize(("money", "text"), [
    (Money(0, "USD"), "USD 0.00"),
    (Money(5, "USD"), "USD 0.05"),
    (Money(1234567, "EUR"), "EUR 12,345.67"),
    (Money(123456789, "USD"), "USD 1,234,567.89"),
    (Money(-5, "USD"), "-USD 0.05"),
    (Money(-100, "GBP"), "-GBP 1.00"),
])
def test_money_format(money: Money, text: str) -> None:
    assert money.format() == text


# --------------------------------------------------------------------------- micros → cents


@pytest.mark.parametrize(("micros", "cents"), [
    (0, 0), (1, 0), (4_999, 0), (5_000, 1), (9_999, 1), (10_000, 1), (14_999, 1), (15_000, 2),
    (12_480_000, 1248), (12_484_999, 1248), (12_485_000, 1249),
    (-1, 0), (-4_999, 0), (-5_000, -1), (-15_000, -2), (-12_485_000, -1249),
])
def test_micros_to_cents_rounds_half_away_from_zero_once(micros: int, cents: int) -> None:
    assert micros_to_cents(micros) == cents


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("text", "micros"), [
    ("12.48", 12_480_000), ("0.000001", 1), ("5", 5_000_000), ("5000", 5_000_000_000),
    ("7.5", 7_500_000), ("0", 0), ("0.1", 100_000), ("999999999999.999999", 999_999_999_999_999_999),
    ("12.000", 12_000_000), ("1000.123456", 1_000_123_456), ("0.000000", 0),
])
def test_parse_dollars_is_exact(text: str, micros: int) -> None:
    assert parse_dollars(text, field="amount") == micros


@pytest.mark.parametrize("text", [
    "", " ", "abc", "-1", "+1", "1e3", "1E3", "1E-2", "1.1234567", "0.0000001", "1,000", ".5", "5.", "NaN",
    "Infinity",
    "0x10", "1 000", "$5", "1000000000000", "1.2.3", "5\n6",
    # Not canonical: what Decimal (or int) would read, but a money field does not guess.
    " 7.5", "7.5 ", "7.5\n", "\t7.5", "00012.000", "01", "-0", "\uff12\uff15", "\u0662\u0665", "2\u00a05", "1_000",
    "\U0001d7d0",
])
def test_parse_dollars_refuses_everything_but_plain_decimals(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_dollars(text, field="daily_budget")
    assert (info.value.field, info.value.code) == ("daily_budget", "invalid_amount")


@pytest.mark.parametrize("value", [None, 5, 5.0, b"5"])
def test_parse_dollars_refuses_non_text(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_dollars(value, field="amount")  # type: ignore[arg-type]
    assert info.value.field == "amount"


# --------------------------------------------------------------------------- checks


def test_check_micros_accepts_in_range_integers() -> None:
    assert check_micros(1, field="a") == 1
    assert check_micros(MAX_MICROS, field="a") == MAX_MICROS
    assert check_micros(0, field="a", allow_zero=True) == 0
    assert check_micros(-MAX_MICROS, field="a", allow_negative=True) == -MAX_MICROS
    assert check_micros(-3, field="a", allow_negative=True) == -3


@pytest.mark.parametrize(("value", "kwargs", "code"), [
    (True, {}, "invalid_amount"),
    (1.0, {}, "invalid_amount"),
    ("1", {}, "invalid_amount"),
    (None, {}, "invalid_amount"),
    (0, {}, "invalid_amount"),
    (-1, {}, "invalid_amount"),
    (-1, {"allow_zero": True}, "invalid_amount"),
    (MAX_MICROS + 1, {}, "amount_out_of_range"),
    (-MAX_MICROS - 1, {"allow_negative": True}, "amount_out_of_range"),
])
def test_check_micros_refuses(value: object, kwargs: dict[str, bool], code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_micros(value, field="amount_micros", **kwargs)
    assert (info.value.field, info.value.code) == ("amount_micros", code)


# --------------------------------------------------------------------------- display


@pytest.mark.parametrize(("micros", "text"), [
    (12_480_000, "$12.480"), (0, "$0.000"), (5_000, "$0.005"), (1_000_000_000, "$1,000.000"),
    (1_234_567_890_123, "$1,234,567.890"), (-5_000, "-$0.005"), (-12_480_000, "-$12.480"),
    (999, "$0.000"), (12_480_999, "$12.480"), (800_000, "$0.800"), (1_234_567_890, "$1,234.567"),
    (-1_999_999, "-$1.999"),
])
def test_format_credits_three_decimals_truncated(micros: int, text: str) -> None:
    assert format_credits(micros) == text


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize(("total", "parts", "expected"), [
    (10, 3, [4, 3, 3]), (9, 3, [3, 3, 3]), (2, 4, [1, 1, 0, 0]), (0, 2, [0, 0]), (7, 1, [7]),
    (-10, 3, [-3, -3, -4]),
])
def test_split_evenly_gives_the_remainder_to_the_first_parts(total: int, parts: int, expected: list[int]) -> None:
    assert split_evenly(total, parts) == expected


@pytest.mark.parametrize("parts", [0, -1])
def test_split_evenly_needs_parts(parts: int) -> None:
    with pytest.raises(InvalidInput) as info:
        split_evenly(10, parts)
    assert info.value.field == "parts"


@pytest.mark.parametrize(("amount", "numerator", "denominator", "expected"), [
    (100, 1, 3, 33), (100, 2, 3, 67), (1, 1, 2, 1), (3, 1, 2, 2), (9900, 15, 30, 4950), (9900, 0, 30, 0),
    (9900, 30, 30, 9900), (0, 1, 7, 0), (49900, 20, 30, 33267),
])
def test_prorate_rounds_half_up(amount: int, numerator: int, denominator: int, expected: int) -> None:
    assert prorate(amount, numerator, denominator) == expected


@pytest.mark.parametrize(("numerator", "denominator", "field"), [
    (1, 0, "denominator"), (0, -5, "denominator"), (-1, 3, "numerator"), (4, 3, "numerator"),
])
def test_prorate_refuses_impossible_fractions(numerator: int, denominator: int, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        prorate(100, numerator, denominator)
    assert info.value.field == field
