"""``WebhookSender`` over httpx: a signed JSON POST, no redirects, failures reported as retryable."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from adapters.webhooks.signature import header_value
from billing_core.errors import InvalidInput, ProviderUnavailable, SsrfBlocked, WebhookSecretMissing
from billing_core.ports import Clock, WebhookDelivery

ID_HEADER = "Billing-Webhook-Id"
TIMESTAMP_HEADER = "Billing-Webhook-Timestamp"
SIGNATURE_HEADER = "Billing-Webhook-Signature"
USER_AGENT = "billing-core-webhooks/1"

_encoder = msgspec.json.Encoder()


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix (naive datetimes are taken as UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(event: WebhookDelivery) -> bytes:
    """The exact bytes that are signed and sent: ``{"id","type","created","data"}``."""
    payload: dict[str, Any] = {"id": event.id, "type": event.type, "created": iso_utc(event.created),
                               "data": event.data}
    return _encoder.encode(payload)


Resolver = Callable[[str, int], list[str]]
"""(host, port) → the addresses a connection could go to."""


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves ``host`` to, as text."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ProviderUnavailable(f"webhook host {host} does not resolve: {type(exc).__name__}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback, whatever the Python version says
    return ip.is_global


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class HttpxWebhookSender:
    """POSTs each event as JSON, signed with the organization's secret (see ``docs/webhooks.md``).

    Each attempt is signed with the time of that attempt, so a retry hours later still falls inside
    the receiver's replay tolerance. Redirects are never followed (the target URL was validated
    when it was configured; a redirect could lead anywhere). ``timeout`` applies to the client this
    adapter builds; a ``client`` passed in keeps its own. Nothing is built at import time.

    Unless ``allow_private``, the host is resolved at each attempt and the request goes to the
    address that was checked (TLS still verifies the certificate for the host name): a name that
    resolves to a loopback or private address (``127.0.0.1.nip.io``, DNS rebinding after the URL
    was accepted) is refused with ``ssrf_blocked`` instead of being connected to.
    """

    def __init__(self, *, timeout: float = 10.0, client: httpx.Client | None = None,
                 clock: Clock | None = None, allow_private: bool = False,
                 resolver: Resolver = system_resolver) -> None:
        self._client = client if client is not None else httpx.Client(timeout=timeout, follow_redirects=False)
        self._owns_client = client is None
        self._clock: Clock = clock if clock is not None else _SystemClock()
        self._allow_private = allow_private
        self._resolve = resolver

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def send(self, *, url: str, secret: str, event: WebhookDelivery) -> int:
        """POST the signed event; return the HTTP status (2xx).

        Raises ProviderUnavailable on network errors, timeouts and every non-2xx answer, 3xx
        included (the outbox retries with backoff); InvalidInput when there is no secret to sign with.
        Receivers dedupe on ``Billing-Webhook-Id``: a retried delivery carries the same id.
        """
        if not secret:
            raise WebhookSecretMissing("webhook_secret", "the organization has no webhook secret to sign with")
        body = event_body(event)
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            ID_HEADER: event.id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: header_value(secret, timestamp, body),
        }
        try:
            target = httpx.URL(url)
            extensions: dict[str, Any] = {}
            if not self._allow_private:
                target, extensions = self._pin(target, headers)
            response = self._client.post(target, content=body, headers=headers, follow_redirects=False,
                                         extensions=extensions)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise InvalidInput("url", "the webhook URL is not a valid URL", code="invalid_url") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"webhook delivery to {_host(url)} failed: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise ProviderUnavailable(f"webhook endpoint {_host(url)} answered {response.status_code}")
        return response.status_code


    def _pin(self, url: httpx.URL, headers: dict[str, str]) -> tuple[httpx.URL, dict[str, Any]]:
        """The URL rewritten to a checked address of its host, with the Host header and the TLS
        server name kept on the host name. Raises InvalidInput (``ssrf_blocked``)."""
        if url.scheme not in ("http", "https") or not url.host:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url.scheme}")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = self._resolve(url.host, port)
        if not addresses or not all(_is_public(address) for address in addresses):
            # All of them: a resolver may hand out any one of several addresses on the next lookup.
            raise SsrfBlocked("url", f"webhook host {url.host} resolves to a private or loopback address")
        headers["Host"] = url.netloc.decode("ascii")
        return url.copy_with(host=addresses[0]), {"sni_hostname": url.host} if url.scheme == "https" else {}


def _host(url: str) -> str:
    """The host only: URLs may carry tokens in their path or query, which do not belong in errors."""
    try:
        return httpx.URL(url).host or "?"
    except httpx.InvalidURL:
        return "?"
