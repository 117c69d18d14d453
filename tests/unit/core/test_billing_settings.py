"""Billing settings validation: address, email, webhook URL (SSRF) and spend limits."""

from __future__ import annotations

import pytest

from billing_core.billing_settings import (
    InvoiceAddress,
    SpendManagement,
    check_address,
    check_email,
    check_limit,
    check_spend_management,
    check_webhook_url,
)
from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS

GOOD = InvoiceAddress(company_name=" Acme GmbH ", address_1="Hauptstr. 1", address_2="  ", city="Berlin",
                      postal_code="10115", region=None, country="DE", po_number="PO-7")


def test_valid_address_is_trimmed_and_blank_optional_becomes_none() -> None:
    address = check_address(GOOD)
    assert address.company_name == "Acme GmbH"
    assert address.address_2 is None
    assert address.po_number == "PO-7"


@pytest.mark.parametrize(("field", "value", "code"), [
    ("company_name", "", "required"), ("company_name", "   ", "required"), ("company_name", "x" * 201, None),
    ("address_1", "", "required"), ("address_1", "a\x00b", None),
    ("address_2", "x" * 201, None), ("city", "", "required"), ("city", "x" * 101, None),
    ("postal_code", "", "required"), ("postal_code", "1" * 21, None), ("region", "r\nx", None),
    ("country", "Germany", "invalid_country"), ("po_number", "p" * 65, None),
])
def test_address_errors_name_the_field(field: str, value: str, code: str | None) -> None:
    fields = {"company_name": "Acme", "address_1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115",
              "country": "DE", field: value}
    with pytest.raises(InvalidInput) as info:
        check_address(InvoiceAddress(**fields))
    assert info.value.field == field
    if code is not None:
        assert info.value.code == code


@pytest.mark.parametrize("email", ["ada@example.com", "a.b+billing@sub.example.co.uk", " ada@example.com "])
def test_valid_email(email: str) -> None:
    assert check_email(email) == email.strip()


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com",
                                   "ada@-example.com", "<ada>@example.com", None, 5, "a" * 250 + "@x.com"])
def test_invalid_email(email: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_email(email, "billing_email")
    assert info.value.code == "invalid_email"
    assert info.value.field == "billing_email"


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data",
    "https://[::1]/hook", "https://localhost/hook", "https://LOCALHOST:8443/hook", "https://foo.internal/x",
    "https://metadata.google.internal/", "https://printer.local/", "https://app.localhost/",
    "https://192.168.1.5/", "https://172.16.0.1/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/",
    "https://[fd00::1]/",
    # A fully qualified name with a trailing dot is the same host.
    "https://localhost./x", "https://foo.internal./", "https://127.0.0.1./",
])
def test_private_targets_are_ssrf_blocked(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=False, require_https=False)
    assert info.value.code == "ssrf_blocked"
    assert info.value.field == "webhook_url"


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "http://localhost:8000/hook", "https://foo.internal/x"])
def test_private_targets_allowed_when_configured(url: str) -> None:
    assert check_webhook_url(url, allow_private=True, require_https=False) == url


def test_public_target_accepted_and_trimmed() -> None:
    url = "https://hooks.example.com/billing?x=1"
    assert check_webhook_url(f"  {url} ", allow_private=False, require_https=True) == url
    assert check_webhook_url("https://8.8.8.8/h", allow_private=False, require_https=True) == "https://8.8.8.8/h"


def test_http_refused_when_https_required() -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url("http://hooks.example.com/", allow_private=False, require_https=True)
    assert info.value.code == "invalid_url"
    assert "https" in info.value.message
    assert check_webhook_url("http://hooks.example.com/", allow_private=False, require_https=False)


@pytest.mark.parametrize("url", ["https://user:pw@hooks.example.com/", "https://user@hooks.example.com/"])
def test_credentials_in_url_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=True, require_https=False)
    assert info.value.code == "invalid_url"
    assert "credentials" in info.value.message


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/", "hooks.example.com", "https:///path", "",
                                 "javascript:alert(1)", 42, "https://e.com/" + "a" * 2048])
def test_malformed_urls(url: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=True, require_https=False)
    assert info.value.code == "invalid_url"


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, MAX_MICROS + 1])
def test_limits_must_be_positive_ints(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_limit(value, "daily_budget_micros")
    assert info.value.field == "daily_budget_micros"
    assert info.value.code == "invalid_amount"


def test_limits_accept_none_and_positive() -> None:
    assert check_limit(None, "x") is None
    assert check_limit(1, "x") == 1
    assert check_limit(MAX_MICROS, "x") == MAX_MICROS


def test_spend_management_checks_each_limit_and_webhook() -> None:
    ok = check_spend_management(
        SpendManagement(enabled=True, daily_budget_micros=5, monthly_cap_micros=50, webhook_url=""),
        allow_private_webhooks=False, require_https=True)
    assert (ok.daily_budget_micros, ok.monthly_cap_micros, ok.webhook_url) == (5, 50, None)
    with pytest.raises(InvalidInput) as info:
        check_spend_management(SpendManagement(daily_email_threshold_micros=0), allow_private_webhooks=False,
                               require_https=True)
    assert info.value.field == "daily_email_threshold_micros"
    with pytest.raises(InvalidInput) as info2:
        check_spend_management(SpendManagement(monthly_cap_micros=-5), allow_private_webhooks=False,
                               require_https=True)
    assert info2.value.field == "monthly_cap_micros"
    with pytest.raises(InvalidInput) as info3:
        check_spend_management(SpendManagement(webhook_url="https://10.1.2.3/"), allow_private_webhooks=False,
                               require_https=True)
    assert info3.value.code == "ssrf_blocked"
