"""Tax treatment of an invoice and per-country format checks of tax ids.

Rates are configuration (:class:`TaxConfig`). The treatment follows the buyer: same country as the
seller → domestic VAT; another EU country with a verified VAT number → reverse charge (0 %, with the
note printed on the invoice); outside the EU → no VAT.
"""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from billing_core.errors import InvalidInput

EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})

# The description a tax registration gets when none is given: it follows the country, so
# "European VAT number" is only ever said of an EU VAT id.
_TAX_ID_NAMES = {"GB": "United Kingdom VAT number", "CH": "Swiss VAT number", "NO": "Norwegian VAT number"}


def default_tax_description(country: str) -> str:
    """The seed's "European VAT number" for an EU country; the country's own name for others."""
    if country in EU_COUNTRIES:
        return "European VAT number"
    return _TAX_ID_NAMES.get(country, f"Tax ID ({country})")


# Syntax of VAT numbers (without checksum; a TaxIdVerifier adapter checks further).
_VAT_FORMATS: dict[str, str] = {
    "AT": r"ATU\d{8}", "BE": r"BE[01]\d{9}", "BG": r"BG\d{9,10}", "CY": r"CY\d{8}[A-Z]",
    "CZ": r"CZ\d{8,10}", "DE": r"DE\d{9}", "DK": r"DK\d{8}", "EE": r"EE\d{9}", "ES": r"ES[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"FI\d{8}", "FR": r"FR[A-HJ-NP-Z0-9]{2}\d{9}", "GR": r"EL\d{9}", "HR": r"HR\d{11}",
    "HU": r"HU\d{8}", "IE": r"IE\d{7}[A-W][A-IW]?|IE\d[A-Z+*]\d{5}[A-W]", "IT": r"IT\d{11}",
    "LT": r"LT(\d{9}|\d{12})", "LU": r"LU\d{8}", "LV": r"LV\d{11}", "MT": r"MT\d{8}", "NL": r"NL\d{9}B\d{2}",
    "PL": r"PL\d{10}", "PT": r"PT\d{9}", "RO": r"RO\d{2,10}", "SE": r"SE\d{12}", "SI": r"SI\d{8}",
    "SK": r"SK\d{10}", "GB": r"GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})", "CH": r"CHE\d{9}(MWST|TVA|IVA)?",
    "NO": r"NO\d{9}(MVA)?", "AU": r"\d{11}", "CA": r"\d{9}(RT\d{4})?", "US": r"\d{2}-?\d{7}",
}
# ISO 3166-1 alpha-2: the 249 officially assigned codes, and XK (Kosovo), user-assigned but used by
# the EU, Stripe and invoicing services alike. Other user-assigned codes (AA, QM-QZ, XA-XZ, ZZ)
# name no country and cannot go on a legal invoice.
_COUNTRY_TABLE = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
VG VI VN VU WF WS YE YT ZA ZM ZW XK
"""
COUNTRIES = frozenset(_COUNTRY_TABLE.split())


class TaxTreatment(StrEnum):
    DOMESTIC_VAT = "domestic_vat"
    REVERSE_CHARGE = "reverse_charge"
    NO_VAT = "no_vat"


REVERSE_CHARGE_NOTE = "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC)."


class TaxConfig(msgspec.Struct, frozen=True, kw_only=True):
    seller_country: str = "DE"
    domestic_vat_basis_points: int = 1900
    """19 % is 1900 basis points; integers keep tax exact."""


class TaxLine(msgspec.Struct, frozen=True):
    treatment: TaxTreatment
    rate_basis_points: int
    tax_cents: int
    note: str | None


def normalize_tax_id(country: str, value: str) -> str:
    """Upper-case, strip spaces, dots and dashes that people type."""
    return re.sub(r"[\s.\-]", "", value).upper() if country != "US" else value.replace(" ", "")


def check_country(country: object, field: str = "country") -> str:
    """An assigned ISO 3166-1 alpha-2 code, upper case as given (``de`` and ``ZZ`` are refused)."""
    if not isinstance(country, str) or country not in COUNTRIES:
        raise InvalidInput(field, "country must be an ISO 3166-1 alpha-2 code such as DE", code="invalid_country")
    return country


def check_tax_id(country: str, value: str) -> str:
    """Return the normalized tax id, or raise naming the ``value`` field when its format is wrong."""
    check_country(country)
    pattern = _VAT_FORMATS.get(country)
    normalized = normalize_tax_id(country, value)
    if not normalized or len(normalized) > 32:
        raise InvalidInput("value", "tax id must be 1 to 32 characters", code="invalid_tax_id")
    # Printable ASCII only: ``\d`` alone would accept the digits of every script (and any country
    # without a known format would accept control characters), none of which a legal invoice prints.
    if not (normalized.isascii() and normalized.isprintable()) or (
            pattern is not None and not re.fullmatch(pattern, normalized)):
        raise InvalidInput("value", f"{value!r} is not a valid tax id for {country}", code="invalid_tax_id")
    return normalized


def treatment_for(buyer_country: str | None, has_verified_vat_id: bool, config: TaxConfig) -> TaxTreatment:
    if buyer_country is None or buyer_country == config.seller_country:
        return TaxTreatment.DOMESTIC_VAT
    if buyer_country in EU_COUNTRIES:
        return TaxTreatment.REVERSE_CHARGE if has_verified_vat_id else TaxTreatment.DOMESTIC_VAT
    return TaxTreatment.NO_VAT


def tax_line(taxable_cents: int, buyer_country: str | None, has_verified_vat_id: bool,
             config: TaxConfig) -> TaxLine:
    """Tax on ``taxable_cents``, rounded half-up to the cent, once."""
    treatment = treatment_for(buyer_country, has_verified_vat_id, config)
    if treatment != TaxTreatment.DOMESTIC_VAT:
        note = REVERSE_CHARGE_NOTE if treatment == TaxTreatment.REVERSE_CHARGE else None
        return TaxLine(treatment, 0, 0, note)
    rate = config.domestic_vat_basis_points
    quotient, rest = divmod(taxable_cents * rate, 10_000)
    if rest * 2 >= 10_000:
        quotient += 1
    return TaxLine(treatment, rate, quotient, None)
