"""Tax id formats, tax treatment and tax rounding."""

from __future__ import annotations

import pytest

from billing_core.errors import InvalidInput
from billing_core.tax import REVERSE_CHARGE_NOTE, TaxConfig, TaxTreatment, check_tax_id, tax_line, treatment_for

CONFIG = TaxConfig(seller_country="DE", domestic_vat_basis_points=1900)


@pytest.mark.parametrize(("country", "value", "normalized"), [
    ("DE", "DE123456789", "DE123456789"), ("DE", "de 123 456 789", "DE123456789"),
    ("FR", "FRXX123456789", "FRXX123456789"), ("FR", "FR12345678901", "FR12345678901"),
    ("NL", "NL123456789B01", "NL123456789B01"), ("NL", "nl.123.456.789.b01", "NL123456789B01"),
    ("GB", "GB123456789", "GB123456789"), ("GB", "GB123456789012", "GB123456789012"), ("GB", "GBGD123", "GBGD123"),
    ("CH", "CHE-123.456.789 MWST", "CHE123456789MWST"), ("CH", "CHE123456789", "CHE123456789"),
])
def test_valid_tax_ids(country: str, value: str, normalized: str) -> None:
    assert check_tax_id(country, value) == normalized


@pytest.mark.parametrize(("country", "value"), [
    ("DE", "DE12345678"), ("DE", "DE1234567890"), ("DE", "FR123456789"), ("DE", "123456789"),
    ("FR", "FRIO123456789"), ("FR", "FR1234567890"),
    ("NL", "NL123456789"), ("NL", "NL123456789X01"),
    ("GB", "GB12345678"), ("GB", "GBGD1234"),
    ("CH", "CHE12345678"), ("CH", "CH123456789"), ("CH", "CHE123456789VAT"),
    ("DE", ""), ("DE", "DE" + "1" * 40),
])
def test_invalid_tax_ids_name_value_field(country: str, value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_tax_id(country, value)
    assert info.value.field == "value"
    assert info.value.code == "invalid_tax_id"


@pytest.mark.parametrize("country", ["de", "DEU", "D1", "", "DE\n"])
def test_tax_id_country_must_be_alpha2(country: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_tax_id(country, "DE123456789")
    assert info.value.field == "country"
    assert info.value.code == "invalid_country"


@pytest.mark.parametrize(("buyer", "verified", "treatment"), [
    ("DE", False, TaxTreatment.DOMESTIC_VAT), ("DE", True, TaxTreatment.DOMESTIC_VAT),
    (None, False, TaxTreatment.DOMESTIC_VAT),
    ("FR", True, TaxTreatment.REVERSE_CHARGE), ("NL", True, TaxTreatment.REVERSE_CHARGE),
    ("FR", False, TaxTreatment.DOMESTIC_VAT),
    ("US", True, TaxTreatment.NO_VAT), ("CH", False, TaxTreatment.NO_VAT), ("GB", True, TaxTreatment.NO_VAT),
])
def test_treatment(buyer: str | None, verified: bool, treatment: TaxTreatment) -> None:
    assert treatment_for(buyer, verified, CONFIG) is treatment


def test_domestic_follows_seller_country() -> None:
    french_seller = TaxConfig(seller_country="FR", domestic_vat_basis_points=2000)
    assert treatment_for("FR", True, french_seller) is TaxTreatment.DOMESTIC_VAT
    assert treatment_for("DE", True, french_seller) is TaxTreatment.REVERSE_CHARGE
    assert tax_line(1000, "FR", True, french_seller).tax_cents == 200


def test_reverse_charge_line_has_note_and_no_tax() -> None:
    line = tax_line(10_000, "FR", True, CONFIG)
    assert (line.treatment, line.rate_basis_points, line.tax_cents, line.note) == (
        TaxTreatment.REVERSE_CHARGE, 0, 0, REVERSE_CHARGE_NOTE)
    outside = tax_line(10_000, "US", False, CONFIG)
    assert (outside.tax_cents, outside.note) == (0, None)


@pytest.mark.parametrize(("taxable", "tax"), [
    (100, 19), (50, 10),  # 9.5 → 10, half-up
    (49, 9),  # 9.31 → 9
    (1, 0),  # 0.19 → 0
    (3, 1),  # 0.57 → 1
    (0, 0), (123_456, 23_457),  # 23456.64 → 23457
])
def test_domestic_tax_rounds_half_up_in_basis_points(taxable: int, tax: int) -> None:
    line = tax_line(taxable, "DE", False, CONFIG)
    assert line.treatment is TaxTreatment.DOMESTIC_VAT
    assert line.rate_basis_points == 1900
    assert line.tax_cents == tax


def test_fractional_basis_points() -> None:
    # 7.7 % (770 bp) of 1000 cents is exactly 77; of 650 cents is 50.05 → 50.
    config = TaxConfig(seller_country="CH", domestic_vat_basis_points=770)
    assert tax_line(1000, "CH", False, config).tax_cents == 77
    assert tax_line(650, "CH", False, config).tax_cents == 50
