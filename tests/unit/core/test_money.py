"""Money arithmetic, formatting and parsing of dollar amounts."""

from __future__ import annotations

import pytest

from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS, Money, check_micros, format_credits, parse_dollars


def test_money_adds_and_subtracts_in_same_currency() -> None:
    assert Money(1050, "USD") + Money(250, "USD") == Money(1300, "USD")
    assert Money(1050, "EUR") - Money(2000, "EUR") == Money(-950, "EUR")


@pytest.mark.parametrize("op", ["add", "sub"])
def test_money_refuses_mixing_currencies(op: str) -> None:
    usd, eur = Money(100, "USD"), Money(100, "EUR")
    with pytest.raises(InvalidInput) as info:
        _ = usd + eur if op == "add" else usd - eur
    assert info.value.code == "currency_mismatch"
    assert info.value.field == "currency_iso"


def test_money_rejects_unknown_currency_and_non_integer_cents() -> None:
    with pytest.raises(InvalidInput) as info:
        Money(1, "JPY")
    assert info.value.code == "unsupported_currency"
    with pytest.raises(InvalidInput) as info2:
        Money(1.5, "USD")  # type: ignore[arg-type]
    assert info2.value.field == "cents"


@pytest.mark.parametrize(("cents", "expected"), [
    (0, "USD 0.00"), (5, "USD 0.05"), (1234, "USD 12.34"), (123456789, "USD 1,234,567.89"), (-705, "-USD 7.05"),
])
def test_money_format(cents: int, expected: str) -> None:
    assert Money(cents, "USD").format() == expected


@pytest.mark.parametrize(("micros", "expected"), [
    (0, "$0.000"), (12_480_000, "$12.480"), (800_000, "$0.800"), (1_234_567_890, "$1,234.567"),
    (-5_000, "-$0.005"), (-12_480_000, "-$12.480"), (999, "$0.000"), (-1_999_999, "-$1.999"),
])
def test_format_credits_three_decimals_truncated(micros: int, expected: str) -> None:
    assert format_credits(micros) == expected


@pytest.mark.parametrize(("text", "micros"), [
    ("12.48", 12_480_000), ("0.000001", 1), ("5", 5_000_000), ("1000.123456", 1_000_123_456), (" 7.5 ", 7_500_000),
])
def test_parse_dollars_exact(text: str, micros: int) -> None:
    assert parse_dollars(text, field="amount") == micros


@pytest.mark.parametrize("text", ["-1", "+1", "1e3", "1E-2", "0.0000001", "12.", ".5", "1,000", "", "abc", "NaN"])
def test_parse_dollars_rejects_with_field_name(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_dollars(text, field="top_up_amount")
    assert info.value.field == "top_up_amount"
    assert info.value.code == "invalid_amount"


def test_check_micros_accepts_and_rejects() -> None:
    assert check_micros(5, field="x") == 5
    assert check_micros(0, field="x", allow_zero=True) == 0
    assert check_micros(-3, field="x", allow_negative=True) == -3
    assert check_micros(MAX_MICROS, field="x") == MAX_MICROS
    cases: list[tuple[object, str]] = [
        (0, "invalid_amount"), (-1, "invalid_amount"), (1.0, "invalid_amount"), (True, "invalid_amount"),
        ("5", "invalid_amount"), (MAX_MICROS + 1, "amount_out_of_range"), (-MAX_MICROS - 1, "amount_out_of_range"),
    ]
    for value, code in cases:
        with pytest.raises(InvalidInput) as info:
            check_micros(value, field="limit", allow_negative=value == -MAX_MICROS - 1)
        assert info.value.code == code, value
        assert info.value.field == "limit"
