"""``TaxIdVerifier`` by checksum, offline, with python-stdnum.

This proves a number is well formed and its check digits are right; it does not prove that the
number is registered and active. That needs the EU's VIES service (or HMRC / the Swiss UID
register), which is out of scope here: a VIES-backed verifier would implement the same port and
raise ProviderUnavailable when the registry is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from stdnum.au import abn as au_abn
from stdnum.ca import bn as ca_bn
from stdnum.ch import vat as ch_vat
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat
from stdnum.no import mva as no_mva
from stdnum.us import ein as us_ein

from billing_core.tax import EU_COUNTRIES, normalize_tax_id

_NON_EU: dict[str, ModuleType] = {
    "GB": gb_vat, "CH": ch_vat, "NO": no_mva, "AU": au_abn, "CA": ca_bn, "US": us_ein,
}
# Greece's VAT numbers start with EL, not GR.
_EU_PREFIX = {country: ("EL" if country == "GR" else country) for country in EU_COUNTRIES}


class StdnumTaxIdVerifier:
    """Checksum verification for EU VAT numbers and GB, CH, NO, AU, CA, US tax ids.

    Countries without a checker here are accepted on format alone (the core already checked the
    format when the registration was added), so ``verify`` returns True for them.
    """

    def verify(self, country: str, value: str) -> bool:
        """True when ``value`` is a valid tax id of ``country`` by its checksum. Never raises for a
        malformed value (False); never reaches a network, so never raises ProviderUnavailable."""
        country = country.upper()
        normalized = normalize_tax_id(country, value)
        if country in _EU_PREFIX:
            return normalized.startswith(_EU_PREFIX[country]) and _safe(eu_vat.is_valid, normalized)
        module = _NON_EU.get(country)
        if module is None:
            return True
        checker: Callable[[str], bool] = module.is_valid
        return _safe(checker, normalized)


def _safe(check: Callable[[str], bool], value: str) -> bool:
    try:
        return bool(check(value))
    except Exception:  # stdnum validators return False, but a malformed input must never crash a request
        return False
