"""Tax: per-country format checks of tax ids, the treatment of an invoice, and tax rounding."""

from __future__ import annotations

import pytest

from billing_core.errors import InvalidInput
from billing_core.tax import (
    COUNTRIES,
    EU_COUNTRIES,
    REVERSE_CHARGE_NOTE,
    TaxConfig,
    TaxLine,
    TaxTreatment,
    check_country,
    check_tax_id,
    normalize_tax_id,
    tax_line,
    treatment_for,
)

VALID: list[tuple[str, str]] = [
    ("AT", "ATU12345678"), ("BE", "BE0123456789"), ("BE", "BE1234567890"), ("BG", "BG123456789"),
    ("BG", "BG1234567890"), ("CY", "CY12345678L"), ("CZ", "CZ12345678"), ("CZ", "CZ1234567890"),
    ("DE", "DE123456789"), ("DK", "DK12345678"), ("EE", "EE123456789"), ("ES", "ESX1234567X"),
    ("ES", "ES12345678Z"), ("FI", "FI12345678"), ("FR", "FRAB123456789"), ("FR", "FR12345678901"),
    ("GR", "EL123456789"), ("HR", "HR12345678901"), ("HU", "HU12345678"), ("IE", "IE1234567T"),
    ("IE", "IE1234567TW"), ("IE", "IE1A12345B"), ("IT", "IT12345678901"), ("LT", "LT123456789"),
    ("LT", "LT123456789012"), ("LU", "LU12345678"), ("LV", "LV12345678901"), ("MT", "MT12345678"),
    ("NL", "NL123456789B01"), ("PL", "PL1234567890"), ("PT", "PT123456789"), ("RO", "RO12"),
    ("RO", "RO1234567890"), ("SE", "SE123456789012"), ("SI", "SI12345678"), ("SK", "SK1234567890"),
    ("GB", "GB123456789"), ("GB", "GB123456789012"), ("GB", "GBGD123"), ("GB", "GBHA123"),
    ("CH", "CHE123456789"), ("CH", "CHE123456789MWST"), ("NO", "NO123456789"), ("NO", "NO123456789MVA"),
    ("AU", "12345678901"), ("CA", "123456789"), ("CA", "123456789RT0001"), ("US", "12-3456789"),
    ("US", "123456789"),
]

INVALID: list[tuple[str, str]] = [
    ("AT", "AT12345678"), ("BE", "BE2123456789"), ("CY", "CY123456789"), ("DE", "DE12345678"),
    ("DE", "DE1234567890"), ("DE", "FR123456789"), ("DE", "123456789"),
    ("ES", "ES1234567"), ("FR", "FR1234567890"),
    ("FR", "FRIO123456789"),  # I and O are not valid key letters
    ("GR", "GR123456789"),  # Greece uses the EL prefix
    ("IE", "IE1234567"), ("IT", "IT1234567890"), ("LT", "LT1234567890"), ("NL", "NL123456789A01"),
    ("NL", "NL123456789"), ("RO", "RO1"), ("RO", "RO12345678901"), ("SE", "SE12345678901"),
    ("GB", "GB1234567"), ("GB", "GBGD1234"), ("CH", "CHE12345678"), ("CH", "CH123456789"), ("CH", "CHE123456789XYZ"),
    ("AU", "1234567890"), ("CA", "123456789RT01"), ("US", "1-23456789"),
    # Digits of other scripts are not the ASCII digits a legal invoice prints.
    ("DE", "DE١٢٣٤٥٦٧٨٩"), ("DE", "DE１２３４５６７８９"), ("US", "١٢-٣٤٥٦٧٨٩"),
]


@pytest.mark.parametrize(("country", "value"), VALID)
def test_valid_tax_ids(country: str, value: str) -> None:
    assert check_tax_id(country, value) == value


@pytest.mark.parametrize(("country", "value"), INVALID)
def test_invalid_tax_ids_name_the_value_field(country: str, value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_tax_id(country, value)
    assert (info.value.field, info.value.code) == ("value", "invalid_tax_id")
    assert country in info.value.message


@pytest.mark.parametrize(("country", "typed", "normalized"), [
    ("DE", "de 123 456 789", "DE123456789"),
    ("DE", "DE-123.456.789", "DE123456789"),
    ("NL", "nl1234.56789.b01", "NL123456789B01"),
    ("GB", "gb 123 4567 89", "GB123456789"),
    ("DE", " DE123456789\t", "DE123456789"),
    ("CH", "CHE-123.456.789 MWST", "CHE123456789MWST"),
    ("US", "12 - 3456789", "12-3456789"),  # US EINs keep their dash
])
def test_typing_habits_are_normalized(country: str, typed: str, normalized: str) -> None:
    assert check_tax_id(country, typed) == normalized


def test_normalize_tax_id() -> None:
    assert normalize_tax_id("FR", "fr ab.123-456 789") == "FRAB123456789"
    assert normalize_tax_id("US", "12-3456789 ") == "12-3456789"


@pytest.mark.parametrize("country", ["DE", "JP"])
@pytest.mark.parametrize("value", ["", "DE" + "1" * 40])
def test_a_tax_id_of_no_or_too_many_characters_is_refused(country: str, value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_tax_id(country, value)
    assert (info.value.field, info.value.code) == ("value", "invalid_tax_id")


def test_countries_without_a_known_format_take_any_printable_id_of_1_to_32_characters() -> None:
    assert check_tax_id("JP", "T1234567890123") == "T1234567890123"
    assert check_tax_id("BR", "12.345.678/0001-90") == "12345678/000190"
    for value in ("", "   ", "x" * 33, "AB\x00CD", "AB\x7fCD", "ID\u200b1"):
        with pytest.raises(InvalidInput) as info:
            check_tax_id("JP", value)
        assert info.value.field == "value"


@pytest.mark.parametrize("country", ["de", "DEU", "D", "", "1A", "D E", "DE\n", None, 49,
                                     "ZZ", "XX", "AA", "QM", "UK", "EL", "EU"])
def test_country_must_be_an_assigned_alpha_2_code(country: object) -> None:
    """Also refused: user-assigned codes (ZZ, XX, AA, QM) and look-alikes that name no country
    (UK is GB; EL is Greece's VAT prefix, its country is GR; EU is reserved)."""
    with pytest.raises(InvalidInput) as info:
        check_country(country)
    assert (info.value.field, info.value.code) == ("country", "invalid_country")
    if isinstance(country, str):
        with pytest.raises(InvalidInput) as through:
            check_tax_id(country, "DE123456789")
        assert through.value.field == "country"


def test_every_assigned_code_and_kosovo_are_countries() -> None:
    assert len(COUNTRIES) == 250 and "XK" in COUNTRIES
    assert all(check_country(code) == code for code in COUNTRIES)
    assert EU_COUNTRIES <= COUNTRIES


def test_check_country_can_name_another_field() -> None:
    with pytest.raises(InvalidInput) as info:
        check_country("xx", "buyer_country")
    assert info.value.field == "buyer_country"
    assert check_country("FR") == "FR"


# --------------------------------------------------------------------------- treatment


def test_eu_countries() -> None:
    assert len(EU_COUNTRIES) == 27
    assert "GB" not in EU_COUNTRIES and "CH" not in EU_COUNTRIES and "GR" in EU_COUNTRIES


@pytest.mark.parametrize(("buyer", "verified", "treatment"), [
    (None, False, TaxTreatment.DOMESTIC_VAT),  # no address: charge the seller's VAT
    ("DE", False, TaxTreatment.DOMESTIC_VAT),
    ("DE", True, TaxTreatment.DOMESTIC_VAT),  # same country: a VAT number changes nothing
    ("FR", True, TaxTreatment.REVERSE_CHARGE),
    ("AT", True, TaxTreatment.REVERSE_CHARGE),
    ("FR", False, TaxTreatment.DOMESTIC_VAT),  # EU consumer without a verified number
    ("US", False, TaxTreatment.NO_VAT),
    ("GB", True, TaxTreatment.NO_VAT),
    ("CH", False, TaxTreatment.NO_VAT),
])
def test_treatment_follows_the_buyer(buyer: str | None, verified: bool, treatment: TaxTreatment) -> None:
    assert treatment_for(buyer, verified, TaxConfig()) is treatment


def test_treatment_depends_on_the_sellers_country() -> None:
    french_seller = TaxConfig(seller_country="FR", domestic_vat_basis_points=2000)
    assert treatment_for("FR", True, french_seller) is TaxTreatment.DOMESTIC_VAT
    assert treatment_for("DE", True, french_seller) is TaxTreatment.REVERSE_CHARGE


# --------------------------------------------------------------------------- tax lines


@pytest.mark.parametrize(("taxable", "tax"), [
    (1000, 190), (1, 0), (3, 1), (50, 10), (150, 29), (2, 0), (8, 2), (0, 0), (9900, 1881), (123_456, 23_457),
])
def test_domestic_vat_rounds_half_up_once(taxable: int, tax: int) -> None:
    line = tax_line(taxable, "DE", False, TaxConfig())
    assert line == TaxLine(TaxTreatment.DOMESTIC_VAT, 1900, tax, None)
    # Exactly: |tax * 10000 - taxable * 1900| is at most half a cent.
    assert abs(tax * 10_000 - taxable * 1900) * 2 <= 10_000


def test_reverse_charge_line_is_zero_with_the_note() -> None:
    line = tax_line(100_000, "FR", True, TaxConfig())
    assert line == TaxLine(TaxTreatment.REVERSE_CHARGE, 0, 0, REVERSE_CHARGE_NOTE)
    assert "Reverse charge" in REVERSE_CHARGE_NOTE and "2006/112/EC" in REVERSE_CHARGE_NOTE


def test_no_vat_line_outside_the_eu() -> None:
    assert tax_line(100_000, "US", False, TaxConfig()) == TaxLine(TaxTreatment.NO_VAT, 0, 0, None)


def test_rate_is_configuration() -> None:
    config = TaxConfig(seller_country="FR", domestic_vat_basis_points=2000)
    assert tax_line(1234, "FR", False, config) == TaxLine(TaxTreatment.DOMESTIC_VAT, 2000, 247, None)
    assert tax_line(1234, "DE", False, config).tax_cents == 247  # EU consumer: seller's VAT
    # A rate in fractions of a percent: 7.7 % of 1000 cents is exactly 77; of 650 cents 50.05 rounds to 50.
    swiss = TaxConfig(seller_country="CH", domestic_vat_basis_points=770)
    assert tax_line(1000, "CH", False, swiss).tax_cents == 77
    assert tax_line(650, "CH", False, swiss).tax_cents == 50
