"""A small client for EasyBill's REST API v1 over httpx.

Bearer auth, JSON in and out. JSON numbers with a fraction are decoded as :class:`~decimal.Decimal`
and decimals are encoded as JSON numbers, so no amount ever passes through a float.

Errors: 429 and 5xx → ProviderUnavailable, after a short bounded in-call retry that honors
``Retry-After`` up to :attr:`EasyBillClient.max_retry_wait` seconds. A 429 is retried for every
method (EasyBill did not process the request); a 5xx or a network error only for GET and PUT,
because a POST that failed ambiguously may have created something: that retry is left to the
caller, which looks for the earlier result first. 401/403 → ProviderUnavailable (the key is wrong
or revoked: an operator fixes it, the outbox keeps retrying meanwhile); 404 → NotFound; other 4xx →
InvalidInput carrying EasyBill's message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from billing_core.errors import InvalidInput, LegalDocumentRejected, NotFound, ProviderUnavailable

DEFAULT_BASE_URL = "https://api.easybill.de/rest/v1"
PAGE_LIMIT = 1000
"""EasyBill's maximum page size."""

_encoder = msgspec.json.Encoder(decimal_format="number")
_RETRY_ALWAYS = frozenset({429})
_IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})

JsonObject = dict[str, Any]


def decode(content: bytes) -> Any:
    """JSON with fractional numbers as Decimal."""
    return json.loads(content, parse_float=Decimal)


class EasyBillClient:
    """Thin, typed-enough access to EasyBill: one method per HTTP verb, pagination, error mapping."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL, client: httpx.Client | None = None,
                 max_attempts: int = 3, timeout: float = 20.0, max_retry_wait: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not api_key:
            raise InvalidInput("api_key", "an EasyBill API key is required")
        if max_attempts < 1:
            raise InvalidInput("max_attempts", "max_attempts must be at least 1")
        self._auth = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self._client = client if client is not None else httpx.Client(timeout=timeout, follow_redirects=False)
        self._owns_client = client is None
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"EasyBillClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # ------------------------------------------------------------------ verbs

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> JsonObject:
        return _object(self.request("GET", path, params=params))

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> JsonObject:
        return _object(self.request("POST", path, body=body))

    def put(self, path: str, body: Mapping[str, Any] | None = None) -> JsonObject:
        return _object(self.request("PUT", path, body=body))

    def get_bytes(self, path: str, accept: str) -> bytes:
        return self.request("GET", path, accept=accept).content

    def list_all(self, path: str, params: Mapping[str, str | int] | None = None) -> Iterator[JsonObject]:
        """Every item of a paginated list (``{page, pages, limit, total, items}``), page by page."""
        page = 1
        while True:
            query: dict[str, str | int] = {**(params or {}), "limit": PAGE_LIMIT, "page": page}
            body = self.get(path, query)
            items = body.get("items") or []
            yield from (item for item in items if isinstance(item, dict))
            pages = body.get("pages")
            if not isinstance(pages, int) or page >= pages or not items:
                return
            page += 1

    # ------------------------------------------------------------------ transport

    def request(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                body: Mapping[str, Any] | None = None, accept: str = "application/json") -> httpx.Response:
        """One call with the bounded retry and the error mapping described in the module docstring."""
        headers = {"Authorization": self._auth, "Accept": accept}
        content: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = _encoder.encode(body)
        url = f"{self.base_url}{path}"
        retry_on_failure = method in _IDEMPOTENT_METHODS
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = self._client.request(method, url, params=dict(params or {}), content=content,
                                                headers=headers)
            except httpx.TransportError as exc:
                if retry_on_failure and not last:
                    self._sleep(self._backoff(attempt, None))
                    continue
                raise ProviderUnavailable(f"EasyBill unreachable ({method} {path}): {type(exc).__name__}") from exc
            status = response.status_code
            if status in _RETRY_ALWAYS or status >= 500:
                if (status in _RETRY_ALWAYS or retry_on_failure) and not last:
                    self._sleep(self._backoff(attempt, response.headers.get("Retry-After")))
                    continue
                what = "rate limit reached" if status == 429 else f"server error {status}"
                raise ProviderUnavailable(f"EasyBill {what} ({method} {path}) after {attempt} attempt(s)")
            if status in (401, 403):
                raise ProviderUnavailable(f"EasyBill refused the API key ({status})")
            if status == 404:
                raise NotFound("EasyBill resource", path)
            if status >= 400:
                raise LegalDocumentRejected("easybill",
                                            f"EasyBill refused {method} {path} ({status}): {_message(response)}")
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """``Retry-After`` seconds when given (capped), else 0.25 s doubling, capped."""
        if retry_after is not None:
            try:
                return min(max(int(retry_after.strip()), 0), self.max_retry_wait)
            except ValueError:
                pass  # an HTTP date: fall back to the exponential wait
        return min(0.25 * (1 << (attempt - 1)), self.max_retry_wait)


def _object(response: httpx.Response) -> JsonObject:
    if not response.content:
        return {}
    try:
        body = decode(response.content)
    except ValueError as exc:
        raise ProviderUnavailable("EasyBill answered with something that is not JSON") from exc
    if not isinstance(body, dict):
        raise ProviderUnavailable("EasyBill answered with an unexpected JSON shape")
    return body


def _message(response: httpx.Response) -> str:
    try:
        body = decode(response.content)
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:200]
    return response.text[:200]
