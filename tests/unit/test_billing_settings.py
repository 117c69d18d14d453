"""Billing settings: every validation error names its field; webhook URLs refuse private targets."""

from __future__ import annotations

import uuid

import pytest

from billing_core.billing_settings import (
    AutoRecharge,
    BillingSettings,
    InvoiceAddress,
    LowBalanceAlert,
    SpendManagement,
    TaxRegistrationStatus,
    check_address,
    check_email,
    check_limit,
    check_spend_management,
    check_text,
    check_webhook_url,
    new_tax_registration,
)
from billing_core.errors import InvalidInput
from billing_core.money import MAX_MICROS
from tests.unit.domain_builders import DOLLAR, NOW, ORG

# --------------------------------------------------------------------------- text, email, limits


def test_check_text_trims_and_turns_empty_into_none() -> None:
    assert check_text("  Acme GmbH  ", "company_name", max_length=200) == "Acme GmbH"
    assert check_text("   ", "address_2", max_length=200) is None
    assert check_text(None, "address_2", max_length=200) is None
    assert check_text("x" * 20, "postal_code", max_length=20) == "x" * 20


@pytest.mark.parametrize(("value", "code"), [(None, "required"), ("", "required"), ("  ", "required"),
                                             (7, "invalid_input"), ("a\x00b", "invalid_input"),
                                             ("line\nbreak", "invalid_input"), ("x" * 21, "invalid_input")])
def test_check_text_names_the_field(value: object, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_text(value, "postal_code", max_length=20, required=True)
    assert (info.value.field, info.value.code) == ("postal_code", code)


@pytest.mark.parametrize("email", ["ada@acme.test", "ada+billing@acme.co.uk", "o'neil@example.com",
                                   "x@a-b.example", "  ada@acme.test  "])
def test_valid_emails(email: str) -> None:
    assert check_email(email) == email.strip()


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@acme.test", "ada@acme", "ada@@acme.test", "ada @acme.test",
                                   "ada@-acme.test", "<ada@acme.test>", '"ada"@acme.test', "x" * 65 + "@acme.test",
                                   "ada@acme.test\nBcc: eve@evil.test", "a\x00b@acme.test", "a\x7fb@acme.test",
                                   "ada,eve@acme.test", "ada;eve@acme.test", "ada:x@acme.test",
                                   "a" * 250 + "@b.co", None, 42])
def test_invalid_emails(email: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_email(email, "billing_email")
    assert (info.value.field, info.value.code) == ("billing_email", "invalid_email")


def test_check_limit() -> None:
    assert check_limit(None, "daily_budget_micros") is None
    assert check_limit(1, "daily_budget_micros") == 1
    assert check_limit(MAX_MICROS, "daily_budget_micros") == MAX_MICROS
    for bad in (0, -1, MAX_MICROS + 1, True, 1.5, "5"):
        with pytest.raises(InvalidInput) as info:
            check_limit(bad, "monthly_cap_micros")
        assert (info.value.field, info.value.code) == ("monthly_cap_micros", "invalid_amount")


# --------------------------------------------------------------------------- address


def address(**changes: str | None) -> InvoiceAddress:
    fields: dict[str, str | None] = {
        "company_name": "Acme GmbH", "address_1": "Hauptstr. 1", "address_2": None, "city": "Berlin",
        "postal_code": "10115", "region": None, "country": "DE", "po_number": None}
    fields.update(changes)
    return InvoiceAddress(**fields)  # type: ignore[arg-type]


def test_a_valid_address_is_cleaned() -> None:
    cleaned = check_address(address(company_name="  Acme GmbH ", address_2="  ", region=" Berlin ", po_number="PO-7"))
    assert cleaned == InvoiceAddress(company_name="Acme GmbH", address_1="Hauptstr. 1", address_2=None,
                                     city="Berlin", postal_code="10115", region="Berlin", country="DE",
                                     po_number="PO-7")


@pytest.mark.parametrize(("field", "value", "code"), [
    ("company_name", "", "required"), ("company_name", "x" * 201, "invalid_input"),
    ("address_1", " ", "required"), ("address_2", "x" * 201, "invalid_input"),
    ("city", "", "required"), ("city", "Ber\x07lin", "invalid_input"),
    ("postal_code", "", "required"), ("postal_code", "1" * 21, "invalid_input"),
    ("region", "x" * 101, "invalid_input"), ("country", "Germany", "invalid_country"),
    ("country", "de", "invalid_country"), ("po_number", "x" * 65, "invalid_input"),
])
def test_address_errors_name_the_field(field: str, value: str, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_address(address(**{field: value}))
    assert (info.value.field, info.value.code) == (field, code)


# --------------------------------------------------------------------------- tax registrations


def test_new_tax_registration_is_normalized_and_unverified() -> None:
    reg = new_tax_registration(organization_id=ORG, country="DE", value="de 123 456 789", description=None, now=NOW)
    assert (reg.country, reg.value, reg.description) == ("DE", "DE123456789", "European VAT number")
    assert reg.status is TaxRegistrationStatus.UNVERIFIED and reg.verified_at is None
    assert (reg.organization_id, reg.created_at) == (ORG, NOW)
    assert isinstance(reg.id, uuid.UUID)
    named = new_tax_registration(organization_id=ORG, country="CH", value="CHE123456789MWST",
                                 description="  Swiss UID ", now=NOW)
    assert named.description == "Swiss UID"


@pytest.mark.parametrize(("country", "value", "description", "field"), [
    ("DE", "DE12345", None, "value"), ("Germany", "DE123456789", None, "country"),
    ("DE", "DE123456789", "x" * 101, "description"),
])
def test_tax_registration_errors_name_the_field(country: str, value: str, description: str | None,
                                                field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        new_tax_registration(organization_id=ORG, country=country, value=value, description=description, now=NOW)
    assert info.value.field == field


# --------------------------------------------------------------------------- webhook URLs

PRIVATE_TARGETS = [
    "https://127.0.0.1/hook", "https://127.0.0.1:8443/hook", "https://10.0.0.5/hook", "https://10.255.255.255/",
    "https://169.254.169.254/latest/meta-data/", "https://[::1]/hook", "https://[::1]:8080/",
    "https://localhost/hook", "https://LOCALHOST./hook", "https://app.localhost/", "https://db.internal/hook",
    "https://metadata.google.internal/", "https://printer.local/", "https://192.168.1.10/", "https://172.16.0.1/",
    "https://100.64.0.1/", "https://0.0.0.0/", "https://[fe80::1]/", "https://[fc00::1]/",
    "https://[::ffff:127.0.0.1]/", "https://127.0.0.1./hook", "https://db.internal./hook",
    # Loopback spelled the way URL parsers and inet_aton also read it.
    "https://127.1/hook", "https://2130706433/hook", "https://0x7f000001/hook", "https://0x7f.0.0.1/hook",
    "https://0177.0.0.1/hook", "https://0/hook", "https://10.1/hook", "https://0xa9.0xfe.0xa9.0xfe/",
    # Unicode that normalizes to a private host.
    "https://ⓛocalhost/hook", "https://１２７.０.０.１/hook", "https://db.ｉｎｔｅｒｎａｌ/hook",
]


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
def test_private_and_loopback_targets_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=False, require_https=True)
    assert (info.value.field, info.value.code) == ("webhook_url", "ssrf_blocked")


@pytest.mark.parametrize("url", [u for u in PRIVATE_TARGETS if "ⓛ" not in u and "１" not in u and "ｉ" not in u])
def test_private_targets_are_allowed_when_the_host_says_so(url: str) -> None:
    assert check_webhook_url(url, allow_private=True, require_https=True) == url


@pytest.mark.parametrize("url", ["https://hooks.acme.test/billing?x=1", "https://8.8.8.8/hook",
                                 "https://[2001:4860:4860::8888]/hook", "https://134744072/hook",
                                 "https://1.example.com/", "https://example.com:8443/a#frag",
                                 "https://bücher.example/hook"])
def test_public_targets_are_accepted(url: str) -> None:
    assert check_webhook_url(f"  {url} ", allow_private=False, require_https=True) == url


@pytest.mark.parametrize("url", ["https://1.2.3.4.5/", "https://256.0.0.1/", "https://08.0.0.1/",
                                 "https://example.123/"])
def test_hosts_that_end_in_a_number_must_be_addresses(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=False, require_https=True)
    assert (info.value.field, info.value.code) == ("webhook_url", "invalid_url")


def test_https_is_required_when_configured() -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url("http://hooks.acme.test/b", allow_private=False, require_https=True)
    assert (info.value.field, info.value.code) == ("webhook_url", "invalid_url")
    assert "https" in info.value.message
    assert check_webhook_url("http://hooks.acme.test/b", allow_private=False, require_https=False) == (
        "http://hooks.acme.test/b")


@pytest.mark.parametrize("url", ["", "ftp://hooks.acme.test/", "javascript:alert(1)", "hooks.acme.test/b", "https://",
                                 "https:///path", "https://user:pw@hooks.acme.test/", "https://user@hooks.acme.test/",
                                 "https://hooks.acme.test/" + "x" * 2048, "file:///etc/passwd",
                                 "https://hooks.acme.test:99999/", "https://hooks.acme.test:0/",
                                 "https://hooks.acme.test:abc/", "https://hooks.acme.test:-1/"])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=True, require_https=False)
    assert (info.value.field, info.value.code) == ("webhook_url", "invalid_url")


@pytest.mark.parametrize("url", ["https://user:pw@hooks.acme.test/", "https://user@hooks.acme.test/"])
def test_credentials_in_a_webhook_url_are_refused_by_name(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=True, require_https=False)
    assert info.value.code == "invalid_url"
    assert "credentials" in info.value.message


@pytest.mark.parametrize("url", [None, 42, b"https://x.test/"])
def test_webhook_url_must_be_text(url: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_webhook_url(url, allow_private=False, require_https=True, field="url")
    assert info.value.field == "url"


# --------------------------------------------------------------------------- spend management & defaults


def test_spend_management_is_validated_whole() -> None:
    checked = check_spend_management(
        SpendManagement(enabled=True, daily_budget_micros=5 * DOLLAR, daily_email_threshold_micros=DOLLAR,
                        monthly_cap_micros=100 * DOLLAR, webhook_url=" https://hooks.acme.test/b "),
        allow_private_webhooks=False, require_https=True)
    assert checked == SpendManagement(enabled=True, daily_budget_micros=5 * DOLLAR,
                                      daily_email_threshold_micros=DOLLAR, monthly_cap_micros=100 * DOLLAR,
                                      webhook_url="https://hooks.acme.test/b")
    assert check_spend_management(SpendManagement(webhook_url=""), allow_private_webhooks=False,
                                  require_https=True).webhook_url is None


@pytest.mark.parametrize(("spend", "field"), [
    (SpendManagement(daily_budget_micros=0), "daily_budget_micros"),
    (SpendManagement(daily_email_threshold_micros=-1), "daily_email_threshold_micros"),
    (SpendManagement(monthly_cap_micros=MAX_MICROS + 1), "monthly_cap_micros"),
    (SpendManagement(webhook_url="https://10.0.0.1/"), "webhook_url"),
])
def test_spend_management_errors_name_the_field(spend: SpendManagement, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_spend_management(spend, allow_private_webhooks=False, require_https=True)
    assert info.value.field == field


def test_defaults() -> None:
    settings = BillingSettings(organization_id=ORG)
    assert settings.address is None and settings.billing_email is None and settings.version == 0
    assert settings.auto_recharge == AutoRecharge()
    assert not settings.auto_recharge.enabled and not settings.auto_recharge.paused
    assert settings.spend_management == SpendManagement()
    assert not settings.spend_management.enabled
    assert settings.low_balance_alert == LowBalanceAlert(enabled=False, threshold_micros=10 * DOLLAR)
    assert AutoRecharge(paused_at=NOW).paused


# Issue 19, item 7: the seed's Description "(such as "European VAT number")" is only said of EU VAT ids.
@pytest.mark.parametrize(("country", "value", "expected"), [
    ("FR", "FR40303265045", "European VAT number"),
    ("GB", "GB123456789", "United Kingdom VAT number"),
    ("CH", "CHE123456789MWST", "Swiss VAT number"),
    ("US", "12-3456789", "Tax ID (US)"),
])
def test_the_default_tax_description_follows_the_country(country: str, value: str, expected: str) -> None:
    reg = new_tax_registration(organization_id=ORG, country=country, value=value, description=None, now=NOW)
    assert reg.description == expected
