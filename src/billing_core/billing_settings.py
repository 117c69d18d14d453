"""An organization's billing settings, each validated with errors that name the field."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

import msgspec

from billing_core.errors import InvalidInput, SsrfBlocked
from billing_core.money import MAX_MICROS
from billing_core.tax import check_country, check_tax_id, default_tax_description

# The local part excludes control characters and the address-list separators (``,`` ``;``) that would
# turn one recipient into several in a mail header.
_EMAIL = re.compile(r"^[^@\s<>\"(),;:\\\[\]\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9\-]{1,63})+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_text(value: object, field: str, *, max_length: int, required: bool = False) -> str | None:
    """Free text: trimmed, no control characters, bounded. Empty becomes None unless required."""
    if value is None:
        if required:
            raise InvalidInput(field, f"{field} is required", code="required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"{field} must be text")
    text = value.strip()
    if _CONTROL.search(text):
        raise InvalidInput(field, f"{field} must not contain control characters")
    if len(text) > max_length:
        raise InvalidInput(field, f"{field} must be at most {max_length} characters")
    if not text:
        if required:
            raise InvalidInput(field, f"{field} is required", code="required")
        return None
    return text


def check_email(value: object, field: str = "email") -> str:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.match(value.strip()):
        raise InvalidInput(field, "must be a valid email address", code="invalid_email")
    return value.strip()


def check_limit(value: object, field: str) -> int | None:
    """A budget or threshold in micro-dollars: None (off) or a positive integer in range."""
    if value is None:
        return None
    if type(value) is not int or value <= 0 or value > MAX_MICROS:
        raise InvalidInput(field, f"{field} must be a positive whole number of micro-dollars", code="invalid_amount")
    return value


class InvoiceAddress(msgspec.Struct, frozen=True, kw_only=True):
    company_name: str
    address_1: str
    address_2: str | None = None
    city: str
    postal_code: str
    region: str | None = None
    country: str
    po_number: str | None = None


def check_address(address: InvoiceAddress) -> InvoiceAddress:
    return InvoiceAddress(
        company_name=check_text(address.company_name, "company_name", max_length=200, required=True) or "",
        address_1=check_text(address.address_1, "address_1", max_length=200, required=True) or "",
        address_2=check_text(address.address_2, "address_2", max_length=200),
        city=check_text(address.city, "city", max_length=100, required=True) or "",
        postal_code=check_text(address.postal_code, "postal_code", max_length=20, required=True) or "",
        region=check_text(address.region, "region", max_length=100),
        country=check_country(address.country),
        po_number=check_text(address.po_number, "po_number", max_length=64),
    )


class TaxRegistrationStatus(StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"


class TaxRegistration(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organization_id: uuid.UUID
    country: str
    description: str
    value: str
    status: TaxRegistrationStatus
    created_at: datetime
    verified_at: datetime | None = None


def new_tax_registration(*, organization_id: uuid.UUID, country: str, value: str, description: str | None,
                         now: datetime) -> TaxRegistration:
    country = check_country(country)
    normalized = check_tax_id(country, value)
    return TaxRegistration(
        id=uuid.uuid4(), organization_id=organization_id, country=country,
        description=check_text(description, "description", max_length=100) or default_tax_description(country),
        value=normalized, status=TaxRegistrationStatus.UNVERIFIED, created_at=now,
    )


class AutoRecharge(msgspec.Struct, frozen=True, kw_only=True):
    """When the credit balance falls to ``threshold_micros``, charge ``amount_micros`` off-session."""

    enabled: bool = False
    threshold_micros: int = 5_000_000
    amount_micros: int = 25_000_000
    payment_method_id: uuid.UUID | None = None
    consecutive_failures: int = 0
    paused_at: datetime | None = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


class SpendManagement(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = False
    daily_budget_micros: int | None = None
    daily_email_threshold_micros: int | None = None
    monthly_cap_micros: int | None = None
    webhook_url: str | None = None


class LowBalanceAlert(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = False
    threshold_micros: int = 10_000_000


class BillingSettings(msgspec.Struct, kw_only=True):
    organization_id: uuid.UUID
    address: InvoiceAddress | None = None
    billing_email: str | None = None
    auto_recharge: AutoRecharge = AutoRecharge()
    spend_management: SpendManagement = SpendManagement()
    low_balance_alert: LowBalanceAlert = LowBalanceAlert()
    version: int = 0
    hold_overrun: str = "cap_at_hold"
    """What settling a hold above its amount does: a :class:`billing_core.holds.HoldOverrun` value
    (``reject``, ``cap_at_hold``, ``allow_within_credit_line``); ADR 0011."""


_PRIVATE_HOSTS = frozenset({"localhost", "localhost.localdomain", "metadata.google.internal"})
_IPV4_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")


def _ipv4_number_host(host: str) -> ipaddress.IPv4Address | None:
    """The address of a host that ends in a number, read the way URL parsers and ``inet_aton`` read
    it (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1`` are all 127.0.0.1); None for a
    name. Raises ValueError for a number that is no address."""
    labels = host.split(".")
    if not _IPV4_NUMBER.fullmatch(labels[-1]):
        return None
    if len(labels) > 4:
        raise ValueError(host)
    numbers = []
    for label in labels:
        if not _IPV4_NUMBER.fullmatch(label):
            raise ValueError(host)
        if label.startswith("0x"):
            numbers.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0"):
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    *parts, last = numbers
    if any(part > 255 for part in parts) or last >= 256 ** (4 - len(parts)):
        raise ValueError(host)
    return ipaddress.IPv4Address(sum(part << (8 * (3 - i)) for i, part in enumerate(parts)) + last)


def check_webhook_url(url: object, *, allow_private: bool, require_https: bool, field: str = "webhook_url") -> str:
    """Validate an outbound webhook target, refusing loopback/private addresses (SSRF)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidInput(field, "webhook_url must be a URL of at most 2048 characters", code="invalid_url")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput(field, "webhook_url must be an http(s) URL with a host", code="invalid_url")
    if require_https and parts.scheme != "https":
        raise InvalidInput(field, "webhook_url must use https", code="invalid_url")
    if parts.username or parts.password:
        raise InvalidInput(field, "webhook_url must not carry credentials", code="invalid_url")
    try:
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise InvalidInput(field, "webhook_url has an invalid port", code="invalid_url") from exc
    if port == 0:
        raise InvalidInput(field, "webhook_url has an invalid port", code="invalid_url")
    if not allow_private:
        host = parts.hostname
        if not host.isascii():  # compare what the name resolves as: "ⓛocalhost" is localhost
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise InvalidInput(field, "webhook_url has an invalid host name", code="invalid_url") from exc
        host = host.lower().rstrip(".")  # a trailing dot names the same host
        if host in _PRIVATE_HOSTS or host.endswith((".localhost", ".internal", ".local")):
            raise SsrfBlocked(field, "webhook_url must not point at a private or loopback host")
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            try:
                address = _ipv4_number_host(host)
            except ValueError as exc:
                raise InvalidInput(field, "webhook_url has an invalid IPv4 address", code="invalid_url") from exc
        if address is not None and not address.is_global:
            raise SsrfBlocked(field, "webhook_url must not point at a private or loopback address")
    return url.strip()


def check_spend_management(value: SpendManagement, *, allow_private_webhooks: bool,
                           require_https: bool) -> SpendManagement:
    return SpendManagement(
        enabled=bool(value.enabled),
        daily_budget_micros=check_limit(value.daily_budget_micros, "daily_budget_micros"),
        daily_email_threshold_micros=check_limit(value.daily_email_threshold_micros,
                                                 "daily_email_threshold_micros"),
        monthly_cap_micros=check_limit(value.monthly_cap_micros, "monthly_cap_micros"),
        webhook_url=None if not value.webhook_url else check_webhook_url(
            value.webhook_url, allow_private=allow_private_webhooks, require_https=require_https),
    )
