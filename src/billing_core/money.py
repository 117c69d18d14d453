"""Money without floats.

Credits are integer micro-dollars (1 credit-dollar = 1_000_000 micros) and are shown with three
decimals (``$12.480``). Invoice amounts are :class:`Money` in integer cents with an ISO currency.
The only rounding between the two happens in :func:`micros_to_cents`.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import msgspec

from billing_core.errors import CurrencyMismatch, InvalidInput

MICROS_PER_DOLLAR = 1_000_000
MICROS_PER_CENT = 10_000
CENTS_PER_DOLLAR = 100
# A bound far above any real balance; it keeps every amount inside a signed 64-bit column.
MAX_MICROS = 10**15

CURRENCIES = frozenset({"USD", "EUR", "GBP", "CHF"})
# Canonical decimal dollars: ASCII digits only, no sign, no leading zeros ("0.5", not "00.5"), at most
# six decimals, nothing around it (no spaces, no newline: ``fullmatch``, not ``match`` with ``$``).
_DECIMAL_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?", re.ASCII)


class Money(msgspec.Struct, frozen=True, gc=False):
    """An invoice amount: integer cents and an ISO 4217 currency code, as the HTTP API shows it.
    An int and a str cannot form a cycle, so instances are not tracked by the garbage collector."""

    cents: int
    currency_iso: str

    def __post_init__(self) -> None:
        if type(self.cents) is not int:
            raise InvalidInput("cents", "cents must be an integer")
        if self.currency_iso not in CURRENCIES:
            raise InvalidInput("currency_iso", f"unsupported currency {self.currency_iso!r}",
                               code="unsupported_currency")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.cents + other.cents, self.currency_iso)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.cents - other.cents, self.currency_iso)

    def _same_currency(self, other: Money) -> None:
        if other.currency_iso != self.currency_iso:
            raise CurrencyMismatch("currency_iso",
                                   f"cannot combine {self.currency_iso} with {other.currency_iso}")

    @classmethod
    def zero(cls, currency_iso: str = "USD") -> Money:
        return cls(0, currency_iso)

    def format(self) -> str:
        """``USD 12.34`` style, exact."""
        sign = "-" if self.cents < 0 else ""
        whole, part = divmod(abs(self.cents), CENTS_PER_DOLLAR)
        return f"{sign}{self.currency_iso} {whole:,}.{part:02d}"


def micros_to_cents(micros: int) -> int:
    """Convert micro-dollars to cents, rounding half away from zero.

    This is the one place where credits become invoice money; invoice lines call it once each.
    """
    sign = -1 if micros < 0 else 1
    whole, rest = divmod(abs(micros), MICROS_PER_CENT)
    if rest * 2 >= MICROS_PER_CENT:
        whole += 1
    return sign * whole


def cents_to_micros(cents: int) -> int:
    """Exact: a cent is 10,000 micro-dollars."""
    return cents * MICROS_PER_CENT


def dollars_to_micros(dollars: int) -> int:
    """Whole dollars to micro-dollars."""
    return dollars * MICROS_PER_DOLLAR


def parse_dollars(text: str, *, field: str) -> int:
    """Parse a decimal dollar string such as ``"12.48"`` into micro-dollars, exactly.

    Only the canonical form is read: ASCII digits, no leading zeros, at most six decimals, and
    nothing else (no sign, exponent, spaces, separators or other scripts' digits, which ``Decimal``
    would otherwise accept).
    """
    if not isinstance(text, str) or not _DECIMAL_AMOUNT.fullmatch(text):
        raise InvalidInput(field, f"{field} must be a decimal number of dollars such as \"25.00\": ASCII digits, "
                           "no leading zeros or spaces, at most 6 decimals", code="invalid_amount")
    try:
        value = Decimal(text) * MICROS_PER_DOLLAR
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise InvalidInput(field, "amount is not a number", code="invalid_amount") from exc
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def check_micros(value: object, *, field: str, allow_zero: bool = False, allow_negative: bool = False) -> int:
    """Validate an integer micro-dollar amount and return it."""
    if type(value) is not int:
        raise InvalidInput(field, "amount must be an integer number of micro-dollars", code="invalid_amount")
    if abs(value) > MAX_MICROS:
        raise InvalidInput(field, "amount is out of range", code="amount_out_of_range")
    if value == 0 and not allow_zero:
        raise InvalidInput(field, "amount must not be zero", code="invalid_amount")
    if value < 0 and not allow_negative:
        raise InvalidInput(field, "amount must not be negative", code="invalid_amount")
    return value


def format_credits(micros: int) -> str:
    """Show credits the way the console does: dollars with three decimals, ``$12.480``, ``-$0.005``.

    Three decimals hide sub-millidollar remainders; they are truncated toward zero for display only.
    """
    sign = "-" if micros < 0 else ""
    whole, rest = divmod(abs(micros), MICROS_PER_DOLLAR)
    return f"{sign}${whole:,}.{rest // 1000:03d}"


def split_evenly(total: int, parts: int) -> list[int]:
    """Split an integer amount into ``parts`` integers that add back to ``total`` exactly.

    The remainder goes to the first parts, one unit each, so the split is deterministic.
    """
    if parts <= 0:
        raise InvalidInput("parts", "parts must be positive")
    base, remainder = divmod(total, parts)
    result = [base + (1 if i < remainder else 0) for i in range(parts)]
    assert sum(result) == total
    return result


def prorate(amount: int, numerator: int, denominator: int) -> int:
    """``amount * numerator / denominator`` rounded half-up, in integers.

    The complement ``amount - prorate(...)`` is what the other side gets, so the two always add back.
    """
    if denominator <= 0:
        raise InvalidInput("denominator", "denominator must be positive")
    if not 0 <= numerator <= denominator:
        raise InvalidInput("numerator", "numerator must be between 0 and the denominator")
    quotient, rest = divmod(amount * numerator, denominator)
    if rest * 2 >= denominator:
        quotient += 1
    return quotient
