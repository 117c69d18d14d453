"""``WebhookSender`` over httpx: a signed JSON POST, no redirects, failures reported as retryable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from adapters.webhooks.signature import header_value
from billing_core.errors import InvalidInput, ProviderUnavailable
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


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class HttpxWebhookSender:
    """POSTs each event as JSON, signed with the organization's secret (see ``docs/webhooks.md``).

    Each attempt is signed with the time of that attempt, so a retry hours later still falls inside
    the receiver's replay tolerance. Redirects are never followed (the target URL was validated
    when it was configured; a redirect could lead anywhere). ``timeout`` applies to the client this
    adapter builds; a ``client`` passed in keeps its own. Nothing is built at import time.
    """

    def __init__(self, *, timeout: float = 10.0, client: httpx.Client | None = None,
                 clock: Clock | None = None) -> None:
        self._client = client if client is not None else httpx.Client(timeout=timeout, follow_redirects=False)
        self._owns_client = client is None
        self._clock: Clock = clock if clock is not None else _SystemClock()

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
            raise InvalidInput("webhook_secret", "the organization has no webhook secret to sign with",
                               code="webhook_secret_missing")
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
            response = self._client.post(url, content=body, headers=headers, follow_redirects=False)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise InvalidInput("url", "the webhook URL is not a valid URL", code="invalid_url") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"webhook delivery to {_host(url)} failed: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise ProviderUnavailable(f"webhook endpoint {_host(url)} answered {response.status_code}")
        return response.status_code


def _host(url: str) -> str:
    """The host only: URLs may carry tokens in their path or query, which do not belong in errors."""
    try:
        return httpx.URL(url).host or "?"
    except httpx.InvalidURL:
        return "?"
