"""A local stand-in for the Stripe API that the real ``stripe`` SDK talks to (through ``api_base``).

Every object it serves starts as Stripe's own published example of that resource (``fixtures3.json``
from stripe/openapi, read from ``../shared/stripe/``, never copied into the repository), with ids and
fields set from the request and overridden per test (:meth:`StripeStub.override`). The stub keeps what
it created, so later calls see earlier ones (attach then charge, invoice then finalize), and it behaves
like Stripe where the adapter depends on it:

- ``Idempotency-Key``: the same key with the same parameters replays the first response (header
  ``Idempotent-Replayed: true``); with other parameters it answers 400 ``idempotency_error``. Results
  are kept for successes and card errors (Stripe executed those), not for 5xx or validation errors.
- errors in Stripe's shape: 402 ``card_error`` for the test methods ``pm_card_chargeDeclined`` and
  ``pm_card_authenticationRequired``, 404 ``resource_missing``, 400 ``invalid_request_error`` with
  ``param``, 401 for a wrong API key; parameters the pinned API version removed are refused.
- faults on demand (:meth:`StripeStub.fail_next`): any status and body, a dropped connection before
  the request is processed, or after it (Stripe did the work, the client never heard back).

Every request is recorded (method, path, decoded form parameters, lower-cased headers) so tests assert
exactly what the adapter sent.

For the console's browser tests it also stands in for Stripe's side of Stripe.js: it serves
``stripe_js_standin.js`` at ``/v3/``, answers the stand-in's client-secret calls authenticated with the
publishable key (``/v1/payment_pages/{cs}``, ``…/confirm``, ``/v1/setup_intents/{seti}/confirm``) with
CORS headers, and, given ``webhook_url`` and ``webhook_secret``, delivers signed events where Stripe
would (a checkout completed or expired, a subscription updated) after handling the request that caused
them and before answering it (outside its lock). Subscriptions (``add_subscription``), recurring prices
with lookup keys (``add_price``) and subscription updates with an invoiced proration are modelled.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.support.http_server import LocalServer

FIXTURES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "stripe"
FIXTURES_FILE = FIXTURES_DIR / "fixtures3.json"
STUB_API_KEY = "sk_test_stub_0123456789"
STUB_PUBLISHABLE_KEY = "pk_test_stub_0123456789"

JSON = dict[str, Any]


@lru_cache(maxsize=1)
def _read_fixtures(path: Path) -> JSON | None:
    if not path.is_file():
        return None
    loaded: JSON = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def fixtures_or_skip() -> JSON:
    """Stripe's example objects, or skip the calling test when ``../shared/stripe/`` is not there."""
    fixtures = _read_fixtures(FIXTURES_FILE)
    if fixtures is None:
        pytest.skip(f"Stripe fixtures not found at {FIXTURES_FILE}: the Stripe stub serves Stripe's published "
                    "example objects from ../shared/stripe/fixtures3.json (stripe/openapi)")
    return fixtures


def sign_payload(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header computed the way Stripe does: ``t=<ts>,v1=<HMAC-SHA256("<ts>.<body>")>``."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def decode_form(encoded: str) -> JSON:
    """Stripe's form encoding back to nested values: ``a[b][0][c]=x`` → ``{"a": {"b": [{"c": "x"}]}}``.
    Scalars stay strings, as Stripe receives them."""
    root: JSON = {}
    for key, value in parse_qsl(encoded, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node: JSON = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict), f"form key {key!r} mixes a value and a structure"
            node = child
        node[parts[-1]] = value
    listed: JSON = _lists(root)
    return listed


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _lists(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


@dataclass
class RecordedRequest:
    """One request as the stub received it."""

    method: str
    path: str
    query: JSON
    params: JSON
    headers: dict[str, str]
    """Names in lower case."""
    status: int = 0
    """What the stub answered; 0 when it dropped the connection."""

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class _Fault:
    method: str
    path: str
    status: int
    body: JSON | None
    headers: dict[str, str]
    disconnect: bool
    after_processing: bool
    remaining: int


@dataclass
class _Response:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


class StubError(Exception):
    """Raised inside a handler to answer with a Stripe error object."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        error: JSON = {"type": type_, "message": message}
        if param is not None:
            error["param"] = param
        if code is not None:
            error["code"] = code
            error["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
        error.update(extra)
        self.response = _Response(status, {"error": error})


def card_error(*, code: str = "card_declined", message: str = "Your card was declined.",
               decline_code: str | None = "generic_decline", **extra: Any) -> JSON:
    """The body of a 402 ``card_error``, for :meth:`StripeStub.fail_next`."""
    error: JSON = {"type": "card_error", "code": code, "message": message, **extra}
    if decline_code is not None:
        error["decline_code"] = decline_code
    return {"error": error}


# Stripe's test payment methods the stub knows without being told (as in test mode): id → fields.
TEST_METHODS: dict[str, JSON] = {
    "pm_card_visa": {"type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}},
    "pm_card_mastercard": {"type": "card",
                           "card": {"brand": "mastercard", "last4": "4444", "exp_month": 3, "exp_year": 2031}},
    "pm_card_chargeDeclined": {"type": "card",
                               "card": {"brand": "visa", "last4": "0002", "exp_month": 1, "exp_year": 2033}},
    "pm_card_authenticationRequired": {"type": "card", "card": {"brand": "visa", "last4": "3184",
                                                                "exp_month": 5, "exp_year": 2032}},
    "pm_sepa_debit": {"type": "sepa_debit", "card": None,
                      "sepa_debit": {"bank_code": "37040044", "branch_code": None, "country": "DE",
                                     "fingerprint": "stubFp3000", "generated_from": None, "last4": "3000"}},
}
DECLINES: dict[str, tuple[str, str, str]] = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_authenticationRequired": ("authentication_required", "authentication_required",
                                       "Your card was declined. This transaction requires authentication."),
}

# Example-object fields reset so that a fresh object does not claim errors or actions it never had.
_FRESH: dict[str, JSON] = {
    "customer": {"discount": None, "metadata": {}, "email": None, "name": None},
    "payment_method": {"customer": None, "metadata": {}},
    "setup_intent": {"last_setup_error": None, "next_action": None, "payment_method": None, "latest_attempt": None,
                     "status": "requires_payment_method", "metadata": {}},
    "payment_intent": {"last_payment_error": None, "next_action": None, "canceled_at": None, "processing": None,
                       "transfer_data": None, "metadata": {}, "status": "succeeded"},
    "checkout.session": {"after_expiration": None, "shipping_cost": None, "shipping_address_collection": None,
                         "success_url": None, "cancel_url": None, "url": None, "payment_intent": None,
                         "status": "open", "payment_status": "unpaid", "metadata": {}, "customer_details": None},
    "invoice": {"last_finalization_error": None, "from_invoice": None, "status": "draft", "number": None,
                "hosted_invoice_url": None, "invoice_pdf": None, "amount_due": 0, "amount_paid": 0,
                "amount_remaining": 0, "subtotal": 0, "total": 0, "due_date": None, "next_payment_attempt": None,
                "metadata": {}},
    "invoiceitem": {"parent": None, "metadata": {}},
    "refund": {"charge": None, "metadata": {}},
    "subscription": {"cancel_at": None, "cancel_at_period_end": False, "canceled_at": None, "ended_at": None,
                     "latest_invoice": None, "pending_update": None, "schedule": None, "discounts": [],
                     "metadata": {}, "trial_start": None, "trial_end": None, "default_payment_method": None,
                     "pause_collection": None, "test_clock": None, "status": "active"},
    "price": {"lookup_key": None, "metadata": {}, "nickname": None, "transform_quantity": None,
              "custom_unit_amount": None},
}
_UI_MODES = frozenset({"hosted_page", "embedded_page", "elements", "form"})

Handler = Callable[["StripeStub", re.Match[str], JSON, JSON], JSON]


class StripeStub:
    """The stub server. Use as a context manager; ``base_url`` goes to the adapter's ``api_base``."""

    def __init__(self, fixtures: Mapping[str, Any], *, api_key: str = STUB_API_KEY) -> None:
        self._resources: Mapping[str, JSON] = fixtures["resources"]
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.objects: dict[str, JSON] = {}
        """Everything created (or looked up), by id."""
        self.search_lag = False
        """True: customer search does not show customers yet (Stripe's search index lags writes)."""
        self._overrides: dict[str, JSON] = {}
        self._faults: list[_Fault] = []
        self._replays: dict[str, tuple[tuple[str, str, str], _Response]] = {}
        self._refunded: dict[str, int] = {}
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._http: LocalServer | None = None
        self.publishable_key = STUB_PUBLISHABLE_KEY
        """What the Stripe.js stand-in authenticates with (client-secret routes only, as at Stripe)."""
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        """Set both and the stub delivers signed events, as Stripe does, where its model says one
        happens: a checkout completed through the Stripe.js stand-in, a subscription updated."""
        self.delivered: list[tuple[str, int]] = []
        """(event type, HTTP status our endpoint answered) of every delivery."""
        self._pending_events: list[bytes] = []
        self._trials: dict[str, int] = {}

    # ----------------------------------------------------------------- life cycle

    def __enter__(self) -> Self:
        self._http = LocalServer(ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self)), name="stripe-stub",
                                 poll_interval=0.01)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._http is not None:
            self._http.stop()

    @property
    def base_url(self) -> str:
        assert self._http is not None, "use the stub as a context manager"
        return f"http://127.0.0.1:{self._http.port}"

    # ----------------------------------------------------------------- steering

    def override(self, object_type: str, **fields: Any) -> None:
        """Set ``fields`` on every object of ``object_type`` made from now on (after the request's own
        fields: the test has the last word), e.g. ``override("payment_intent", status="processing")``."""
        with self._lock:
            self._overrides.setdefault(object_type, {}).update(fields)

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()

    def fail_next(self, path: str, *, status: int = 500, body: JSON | None = None, method: str = "POST",
                  times: int = 1, disconnect: bool = False, after_processing: bool = False,
                  headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``times`` requests to ``path`` (a glob: ``/v1/invoices/*/finalize``) with
        ``status`` and ``body`` (default: Stripe's ``api_error``), or drop the connection. Faults happen
        before processing, like a load balancer's, and are not kept for idempotent replay; with
        ``after_processing`` the request is carried out (and remembered) and only the answer is lost."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), path, status, body, dict(headers or {}), disconnect,
                                       after_processing, times))

    def add_payment_method(self, method_id: str, **fields: Any) -> JSON:
        """Make a payment method exist (as if collected by Stripe.js), with ``fields`` over the example."""
        with self._lock:
            example = self._resources["payment_method"]
            base: JSON = {"billing_details": {**copy.deepcopy(example["billing_details"]), "name": "Jenny Rosen"}}
            base.update(copy.deepcopy(TEST_METHODS.get(method_id, {})))
            base.update(fields)
            if isinstance(base.get("card"), dict):
                base["card"] = {**copy.deepcopy(example["card"]), "wallet": None, **base["card"]}
            return self._new("payment_method", "pm", id=method_id, **base)

    def complete_checkout(self, session_id: str) -> JSON:
        """What Stripe does when the customer pays a payment-mode session: a succeeded PaymentIntent."""
        with self._lock:
            session = self.objects[session_id]
            intent = self._new("payment_intent", "pi", amount=session["amount_total"], currency=session["currency"],
                               customer=session["customer"], status="succeeded",
                               payment_method_types=session["payment_method_types"])
            session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
            return session

    def add_price(self, *, unit_amount: int, lookup_key: str | None = None, interval: str = "month",
                  currency: str = "usd") -> JSON:
        """A recurring price (a plan's price as created in the Stripe dashboard)."""
        with self._lock:
            product = self._new("product", "prod", name=lookup_key or "Plan", metadata={})
            return self._new("price", "price", unit_amount=unit_amount, unit_amount_decimal=str(unit_amount),
                             currency=currency, lookup_key=lookup_key, product=product["id"], active=True,
                             type="recurring", billing_scheme="per_unit", tiers_mode=None,
                             recurring={"interval": interval, "interval_count": 1, "meter": None,
                                        "usage_type": "licensed", "trial_period_days": None})

    def add_subscription(self, customer_id: str | None, *, unit_amount: int = 2000, price: JSON | None = None,
                         trial_days: int = 0, metadata: Mapping[str, str] | None = None) -> JSON:
        """What Stripe makes when a subscription checkout completes: one item on ``price`` (default:
        an inline price of ``unit_amount``, which has no lookup key), the period starting now."""
        with self._lock:
            if price is None:
                price = self.add_price(unit_amount=unit_amount)
            now = int(time.time())
            end = now + (trial_days * 86_400 if trial_days else 30 * 86_400)
            subscription_id = self._id("sub")
            item = copy.deepcopy(self._resources["subscription"]["items"]["data"][0])
            item.update(id=self._id("si"), price=copy.deepcopy(price), subscription=subscription_id, quantity=1,
                        current_period_start=now, current_period_end=end, metadata={})
            item.pop("plan", None)
            return self._new("subscription", "sub", id=subscription_id, customer=customer_id,
                             status="trialing" if trial_days else "active", currency=price["currency"],
                             start_date=now, billing_cycle_anchor=now, metadata=dict(metadata or {}),
                             trial_start=now if trial_days else None, trial_end=end if trial_days else None,
                             items={"object": "list", "data": [item], "has_more": False,
                                    "url": f"/v1/subscription_items?subscription={subscription_id}"})

    def send_event(self, event_type: str, obj: JSON, *, created: int | None = None) -> int:
        """Deliver a signed event to ``webhook_url`` now; returns our endpoint's HTTP status."""
        assert self.webhook_url and self.webhook_secret, "set webhook_url and webhook_secret first"
        payload = self.event_payload(event_type, copy.deepcopy(obj), created=created)
        return self._deliver(payload)

    def _deliver(self, payload: bytes) -> int:
        assert self.webhook_url and self.webhook_secret
        status = httpx.post(self.webhook_url, content=payload, timeout=30, headers={
            "Content-Type": "application/json", "Stripe-Signature": sign_payload(payload, self.webhook_secret)},
        ).status_code
        self.delivered.append((json.loads(payload)["type"], status))
        return status

    def _queue_event(self, event_type: str, obj: JSON) -> None:
        """An event to deliver once the current request is answered (outside the stub's lock: our
        endpoint may call the stub while handling it)."""
        if self.webhook_url and self.webhook_secret:
            self._pending_events.append(self.event_payload(event_type, copy.deepcopy(obj)))

    def deliver_pending(self) -> None:
        with self._lock:
            pending, self._pending_events = self._pending_events, []
        for payload in pending:
            self._deliver(payload)

    def finish_checkout(self, session_id: str, payment_method: str | None = None) -> JSON:
        """The customer paid (or started the trial of) a checkout: the session completes, with a
        subscription or a succeeded PaymentIntent, and ``checkout.session.completed`` is sent."""
        with self._lock:
            session = self.objects[session_id]
            if session["status"] != "open":
                raise StubError(400, f"This Checkout Session is {session['status']}.", code="checkout_closed")
            if payment_method is not None and payment_method in DECLINES:
                code, decline_code, message = DECLINES[payment_method]
                raise StubError(402, message, type_="card_error", code=code, decline_code=decline_code)
            if session["mode"] == "subscription":
                trial = self._trials.get(session_id, 0)
                subscription = self.add_subscription(session["customer"], unit_amount=int(session["amount_total"]),
                                                     trial_days=trial, metadata=session.get("metadata"))
                session.update(status="complete", subscription=subscription["id"],
                               payment_status="no_payment_required" if trial else "paid")
            else:
                self.complete_checkout(session_id)
            self._queue_event("checkout.session.completed", session)
            return session

    def expire_checkout(self, session_id: str) -> JSON:
        """The session's time ran out: it expires and ``checkout.session.expired`` is sent."""
        with self._lock:
            session = self.objects[session_id]
            session.update(status="expired")
            self._queue_event("checkout.session.expired", session)
        self.deliver_pending()
        return session

    def of_type(self, object_type: str) -> list[JSON]:
        with self._lock:
            return [o for o in self.objects.values() if o.get("object") == object_type]

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path matches the glob ``path``."""
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and fnmatch.fnmatchcase(r.path, path)]

    def event_payload(self, event_type: str, obj: JSON, *, event_id: str | None = None,
                      created: int | None = None) -> bytes:
        """A webhook body shaped like Stripe's example event, about ``obj``."""
        event = copy.deepcopy(self._resources["event"])
        event.update(id=event_id or self._id("evt"), type=event_type, created=created or int(time.time()),
                     data={"object": obj})
        return json.dumps(event).encode()

    def example(self, object_type: str, **fields: Any) -> JSON:
        """Stripe's example of ``object_type`` with ``fields`` set (not stored)."""
        obj = copy.deepcopy(self._resources[object_type])
        obj.update(fields)
        return obj

    # ----------------------------------------------------------------- request handling

    def handle(self, method: str, target: str, headers: dict[str, str], body: str) -> _Response | None:
        """One request; None means: drop the connection without answering."""
        with self._lock:
            url = urlsplit(target)
            params = decode_form(body) if method == "POST" else {}
            record = RecordedRequest(method, url.path, decode_form(url.query), params, headers)
            self.requests.append(record)
            fault = self._take_fault(method, url.path)
            if fault is not None and not fault.after_processing:
                return self._answer(record, None if fault.disconnect else _Response(
                    fault.status, fault.body or {"error": {"type": "api_error",
                                                           "message": "An unknown error occurred"}},
                    fault.headers))
            response = self._process(method, url.path, record, headers)
            return self._answer(record, None if fault is not None else response)

    def _answer(self, record: RecordedRequest, response: _Response | None) -> _Response | None:
        record.status = response.status if response is not None else 0
        return response

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method == method and fnmatch.fnmatchcase(path, fault.path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _process(self, method: str, path: str, record: RecordedRequest, headers: dict[str, str]) -> _Response:
        publishable = any(route_method == method and pattern.fullmatch(path)
                          for route_method, pattern, _ in _PUBLISHABLE_ROUTES)
        if publishable and headers.get("authorization") == f"Bearer {self.publishable_key}":
            return self._route(method, path, record, _PUBLISHABLE_ROUTES)
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return _Response(401, {"error": {"type": "invalid_request_error",
                                             "message": "Invalid API Key provided: sk_test_****"}})
        key = record.idempotency_key if method == "POST" else None
        fingerprint = (method, path, json.dumps(record.params, sort_keys=True))
        if key is not None and key in self._replays:
            first, response = self._replays[key]
            if first != fingerprint:
                return _Response(400, {"error": {
                    "type": "idempotency_error",
                    "message": f"Keys for idempotent requests can only be used with the same parameters they "
                               f"were first used with. Try using a key other than '{key}' if you meant to "
                               "execute a different request."}})
            return _Response(response.status, response.body, {**response.headers, "Idempotent-Replayed": "true"})
        response = self._route(method, path, record)
        if key is not None and (response.status < 400 or response.status == 402):
            self._replays[key] = (fingerprint, response)
        if key is not None:
            response.headers.setdefault("Idempotency-Key", key)
        return response

    def _route(self, method: str, path: str, record: RecordedRequest,
               routes: list[tuple[str, re.Pattern[str], Handler]] | None = None) -> _Response:
        for route_method, pattern, handler in _ROUTES if routes is None else routes:
            match = pattern.fullmatch(path)
            if match is not None and route_method == method:
                try:
                    return _Response(200, copy.deepcopy(handler(self, match, record.params, record.query)))
                except StubError as error:
                    return error.response
        return _Response(404, {"error": {"type": "invalid_request_error",
                                         "message": f"Unrecognized request URL ({method}: {path})."}})

    # ----------------------------------------------------------------- objects

    def _id(self, prefix: str) -> str:
        return f"{prefix}_Stub{next(self._seq):010d}"

    def _new(self, object_type: str, prefix: str, **fields: Any) -> JSON:
        obj = copy.deepcopy(self._resources[object_type])
        obj.update(copy.deepcopy(_FRESH.get(object_type, {})))
        obj.update(id=self._id(prefix), created=int(time.time()), livemode=False)
        obj.update(fields)
        obj.update(copy.deepcopy(self._overrides.get(object_type, {})))
        self.objects[obj["id"]] = obj
        return obj

    def _get(self, object_type: str, object_id: str, param: str) -> JSON:
        obj = self.objects.get(object_id)
        if obj is None and object_type == "payment_method" and object_id in TEST_METHODS:
            obj = self.add_payment_method(object_id)
        if obj is None or obj.get("object") != object_type:
            label = {"payment_method": "PaymentMethod", "payment_intent": "PaymentIntent",
                     "checkout.session": "checkout.session"}.get(object_type, object_type)
            raise StubError(404, f"No such {label}: '{object_id}'", param=param, code="resource_missing")
        return obj

    def _secret(self, object_id: str) -> str:
        return f"{object_id}_secret_{hashlib.sha256(object_id.encode()).hexdigest()[:24]}"


# --------------------------------------------------------------------------- validation helpers


def _required(params: JSON, name: str) -> Any:
    if params.get(name) in (None, ""):
        raise StubError(400, f"Missing required param: {name}.", param=name, code="parameter_missing")
    return params[name]


def _integer(params: JSON, name: str, *, required: bool = True) -> int | None:
    raw = params.get(name)
    if raw is None:
        if required:
            _required(params, name)
        return None
    if not re.fullmatch(r"-?\d+", str(raw)):
        raise StubError(400, f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer")
    return int(raw)


def _boolean(params: JSON, name: str) -> bool:
    raw = params.get(name)
    if raw not in (None, "true", "false"):
        raise StubError(400, f"Invalid boolean: {raw}", param=name, code="parameter_invalid_boolean")
    return raw == "true"


def _removed(params: JSON, name: str, version: str) -> None:
    if name in params:
        raise StubError(400, f"Received unknown parameter: {name} (removed in API version {version}).",
                        param=name, code="payment_method_types_no_longer_supported"
                        if name == "payment_method_types" else "parameter_unknown")


# --------------------------------------------------------------------------- handlers


def _customer_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    fields = {k: params[k] for k in ("email", "name", "description", "phone") if k in params}
    return stub._new("customer", "cus", metadata=params.get("metadata", {}), **fields)


def _customer_search(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    text = str(_required(query, "query"))
    clauses = re.findall(r"metadata\['([^']+)'\]\s*:\s*'([^']*)'", text)
    emails = re.findall(r"email\s*:\s*'([^']*)'", text)
    if not clauses and not emails:
        raise StubError(400, f"Invalid search query: {text}", param="query")
    found = [] if stub.search_lag else [
        c for c in stub.of_type("customer")
        if not c.get("deleted") and all(c.get("metadata", {}).get(k) == v for k, v in clauses)
        and all(c.get("email") == e for e in emails)]
    return {"object": "search_result", "data": found, "has_more": False, "next_page": None,
            "url": "/v1/customers/search"}


def _customer_retrieve(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    return stub._get("customer", match["id"], "id")


def _customer_update(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    customer = stub._get("customer", match["id"], "id")
    settings = params.get("invoice_settings", {})
    if "default_payment_method" in settings:
        method_id = settings["default_payment_method"]
        method = stub.objects.get(method_id)
        if method_id and (method is None or method.get("customer") != customer["id"]):
            raise StubError(400, f"The customer does not have a payment method with the ID {method_id}. The "
                                 "payment method must be attached to the customer.",
                            param="invoice_settings[default_payment_method]")
        customer["invoice_settings"]["default_payment_method"] = method_id or None
    for name in ("email", "name", "description"):
        if name in params:
            customer[name] = params[name]
    customer["metadata"].update(params.get("metadata", {}))
    return customer


def _line_items(params: JSON, *, recurring: bool) -> tuple[int, str]:
    items = _required(params, "line_items")
    total, currencies = 0, set()
    for index, item in enumerate(items):
        price = item.get("price_data")
        if price is None:
            raise StubError(400, "You must specify either `price` or `price_data`.",
                            param=f"line_items[{index}][price_data]")
        currencies.add(_required(price, "currency"))
        amount = _integer(price, "unit_amount") or 0
        if recurring and "recurring" not in price:
            raise StubError(400, "You must specify `recurring` in `subscription` mode.",
                            param=f"line_items[{index}][price_data][recurring]")
        if not recurring and "recurring" in price:
            raise StubError(400, "You specified `payment` mode but passed a recurring price.",
                            param=f"line_items[{index}][price_data][recurring]")
        if "recurring" in price and price["recurring"].get("interval") not in ("day", "week", "month", "year"):
            raise StubError(400, "Invalid recurring interval", param=f"line_items[{index}][price_data][recurring]")
        if not price.get("product_data", {}).get("name"):
            raise StubError(400, "Missing required param: product_data[name].",
                            param=f"line_items[{index}][price_data][product_data][name]")
        total += amount * (_integer(item, "quantity", required=False) or 1)
    if len(currencies) != 1:
        raise StubError(400, "All line items must use the same currency.", param="line_items")
    return total, currencies.pop()


def _session_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    _removed(params, "payment_method_types", "2026-09-30.endive")
    ui_mode = params.get("ui_mode", "hosted_page")
    if ui_mode not in _UI_MODES:
        raise StubError(400, f"Invalid ui_mode: must be one of {', '.join(sorted(_UI_MODES))}", param="ui_mode")
    mode = _required(params, "mode")
    if mode not in ("payment", "subscription", "setup"):
        raise StubError(400, "Invalid mode", param="mode")
    if ui_mode in ("embedded_page", "elements"):
        if "success_url" in params:
            raise StubError(400, "success_url is not allowed with this ui_mode", param="success_url")
        if params.get("redirect_on_completion") != "never":
            _required(params, "return_url")
    if "customer" in params and "customer_email" in params:
        raise StubError(400, "You may only specify one of these parameters: customer, customer_email.",
                        param="customer_email")
    if "customer" in params:
        stub._get("customer", params["customer"], "customer")
    subscription = params.get("subscription_data", {})
    if subscription and mode != "subscription":
        raise StubError(400, "subscription_data is only allowed in subscription mode", param="subscription_data")
    if _integer(subscription, "trial_period_days", required=False) == 0:
        raise StubError(400, "trial_period_days must be at least 1", param="subscription_data[trial_period_days]")
    total, currency = _line_items(params, recurring=mode == "subscription")
    session_id = stub._id("cs_test")
    stub._trials[session_id] = _integer(subscription, "trial_period_days", required=False) or 0
    return stub._new(
        "checkout.session", "cs_test", id=session_id, mode=mode, ui_mode=ui_mode,
        client_secret=stub._secret(session_id) if ui_mode != "hosted_page" else None,
        url=f"https://checkout.stripe.com/c/pay/{session_id}" if ui_mode == "hosted_page" else None,
        customer=params.get("customer"), customer_email=params.get("customer_email"),
        client_reference_id=params.get("client_reference_id"), metadata=params.get("metadata", {}),
        return_url=params.get("return_url"), amount_total=total, amount_subtotal=total, currency=currency,
        payment_method_types=params.get("allowed_payment_method_types", ["card"]),
        expires_at=int(time.time()) + 86_400)


def _session_retrieve(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    return stub._get("checkout.session", match["id"], "session")


def _portal_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    customer = stub._get("customer", _required(params, "customer"), "customer")
    session_id = stub._id("bps")
    return stub._new("billing_portal.session", "bps", id=session_id, customer=customer["id"], flow=None,
                     return_url=params.get("return_url"), livemode=False,
                     url=f"https://billing.stripe.com/p/session/test_{session_id}")


def _setup_intent_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    _removed(params, "payment_method_types", "2026-09-30.endive")
    if "customer" in params:
        stub._get("customer", params["customer"], "customer")
    usage = params.get("usage", "off_session")
    if usage not in ("on_session", "off_session"):
        raise StubError(400, "Invalid usage", param="usage")
    intent_id = stub._id("seti")
    return stub._new("setup_intent", "seti", id=intent_id, client_secret=stub._secret(intent_id),
                     customer=params.get("customer"), usage=usage, metadata=params.get("metadata", {}),
                     payment_method_types=["card", "sepa_debit"])


def _method_retrieve(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    return stub._get("payment_method", match["id"], "payment_method")


def _method_attach(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    method = stub._get("payment_method", match["id"], "payment_method")
    customer = stub._get("customer", _required(params, "customer"), "customer")
    if method["customer"] not in (None, customer["id"]):
        raise StubError(400, "The payment method you provided has already been attached to a customer.",
                        param="payment_method")
    method["customer"] = customer["id"]
    return method


def _method_detach(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    method = stub._get("payment_method", match["id"], "payment_method")
    if method["customer"] is None:
        raise StubError(400, "The payment method you provided is not attached to a customer so detachment "
                             "is impossible.")
    customer = stub.objects.get(method["customer"])
    if customer is not None and customer["invoice_settings"]["default_payment_method"] == method["id"]:
        customer["invoice_settings"]["default_payment_method"] = None
    method["customer"] = None
    return method


def _intent_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    _removed(params, "payment_method_types", "2026-09-30.endive")
    amount = _integer(params, "amount") or 0
    currency = str(_required(params, "currency"))
    if currency != currency.lower():
        raise StubError(400, "Invalid currency: currencies are lower case", param="currency")
    if currency == "usd" and amount < 50:
        raise StubError(400, "Amount must be at least $0.50 usd", param="amount", code="amount_too_small")
    customer_id = params.get("customer")
    if customer_id is not None:
        stub._get("customer", customer_id, "customer")
    confirm = _boolean(params, "confirm")
    _boolean(params, "off_session")
    method_id = params.get("payment_method")
    if confirm and method_id is None:
        raise StubError(400, "You cannot confirm this PaymentIntent because it's missing a payment method. To "
                             "confirm it, update it with a payment method.", param="payment_method",
                        code="payment_intent_unexpected_state")
    method = stub._get("payment_method", method_id, "payment_method") if method_id else None
    if method is not None and customer_id is not None and method["customer"] != customer_id:
        raise StubError(400, f"The provided PaymentMethod {method_id} does not belong to the Customer "
                             f"{customer_id}.", param="payment_method")
    intent_id = stub._id("pi")
    status = "succeeded" if confirm else "requires_confirmation"
    if confirm and method is not None and method["type"] == "sepa_debit":
        status = "processing"
    intent = stub._new(
        "payment_intent", "pi", id=intent_id, amount=amount, currency=currency, customer=customer_id,
        payment_method=method_id, description=params.get("description"), metadata=params.get("metadata", {}),
        client_secret=stub._secret(intent_id), status=status,
        amount_received=amount if status == "succeeded" else 0,
        latest_charge=f"ch_{intent_id[3:]}" if confirm else None,
        payment_method_types=[method["type"]] if method is not None else ["card"])
    if confirm and method_id in DECLINES:
        code, decline_code, message = DECLINES[method_id]
        intent.update(status="requires_payment_method", amount_received=0, last_payment_error={
            "type": "card_error", "code": code, "decline_code": decline_code, "message": message,
            "payment_method": method})
        raise StubError(402, message, type_="card_error", code=code, decline_code=decline_code,
                        charge=intent["latest_charge"], payment_intent=copy.deepcopy(intent),
                        payment_method=copy.deepcopy(method))
    if intent["status"] == "requires_action" and intent.get("next_action") is None:
        intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
    return intent


def _intent_retrieve(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    return stub._get("payment_intent", match["id"], "intent")


def _refund_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    if "payment_intent" in params:
        intent = stub._get("payment_intent", params["payment_intent"], "payment_intent")
    elif "charge" in params:
        found = [i for i in stub.of_type("payment_intent") if i.get("latest_charge") == params["charge"]]
        if not found:
            raise StubError(404, f"No such charge: '{params['charge']}'", param="charge", code="resource_missing")
        intent = found[0]
    else:
        raise StubError(400, "One of `charge` or `payment_intent` is required.", param="payment_intent",
                        code="parameter_missing")
    if intent["status"] != "succeeded":
        raise StubError(400, f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                        param="payment_intent", code="charge_not_refundable")
    left = int(intent["amount"]) - stub._refunded.get(intent["id"], 0)
    amount = _integer(params, "amount", required=False) or left
    if amount > left:
        raise StubError(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                        param="amount", code="amount_too_large")
    stub._refunded[intent["id"]] = stub._refunded.get(intent["id"], 0) + amount
    return stub._new("refund", "re", amount=amount, currency=intent["currency"], payment_intent=intent["id"],
                     charge=intent.get("latest_charge"), status="succeeded", metadata=params.get("metadata", {}))


def _invoice_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    customer = stub._get("customer", _required(params, "customer"), "customer")
    collection = params.get("collection_method", "charge_automatically")
    if collection == "send_invoice" and "days_until_due" not in params and "due_date" not in params:
        raise StubError(400, "Invoices with collection_method=send_invoice need days_until_due or due_date.",
                        param="days_until_due")
    invoice_id = stub._id("in")
    return stub._new(
        "invoice", "in", id=invoice_id, customer=customer["id"], currency=params.get("currency", "usd"),
        auto_advance=_boolean(params, "auto_advance"), collection_method=collection,
        description=params.get("description"), metadata=params.get("metadata", {}),
        lines={"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"})


def _invoice_item_create(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    customer = stub._get("customer", _required(params, "customer"), "customer")
    amount = _integer(params, "amount") or 0
    currency = str(_required(params, "currency"))
    invoice = stub._get("invoice", params["invoice"], "invoice") if "invoice" in params else None
    if invoice is not None:
        if invoice["status"] != "draft":
            raise StubError(400, "You can only add invoice items to draft invoices.", param="invoice",
                            code="invoice_not_editable")
        if invoice["customer"] != customer["id"] or invoice["currency"] != currency:
            raise StubError(400, "The invoice item's customer and currency must match the invoice's.",
                            param="invoice")
    item = stub._new("invoiceitem", "ii", customer=customer["id"], amount=amount, currency=currency,
                     description=params.get("description"), invoice=invoice["id"] if invoice else None,
                     metadata=params.get("metadata", {}), quantity=1)
    if invoice is not None:
        line = copy.deepcopy(stub._resources["invoice"]["lines"]["data"][0])
        line.update(id=stub._id("il"), amount=amount, currency=currency, description=item["description"],
                    invoice=invoice["id"], subtotal=amount, metadata=item["metadata"])
        invoice["lines"]["data"].append(line)
        total = sum(int(line["amount"]) for line in invoice["lines"]["data"])
        invoice.update(amount_due=total, amount_remaining=total, subtotal=total, total=total)
    return item


def _invoice_finalize(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    invoice = stub._get("invoice", match["id"], "invoice")
    if invoice["status"] != "draft":
        raise StubError(400, "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                        code="invoice_not_editable")
    if "auto_advance" in params:
        invoice["auto_advance"] = _boolean(params, "auto_advance")
    number = sum(1 for i in stub.of_type("invoice") if i.get("number")) + 1
    paid = invoice["amount_due"] == 0
    invoice.update(status="paid" if paid else "open", number=f"STUB-{number:04d}", effective_at=int(time.time()),
                   hosted_invoice_url=f"https://invoice.stripe.com/i/acct_stub/test_{invoice['id']}",
                   invoice_pdf=f"https://pay.stripe.com/invoice/acct_stub/test_{invoice['id']}/pdf")
    invoice.update(copy.deepcopy(stub._overrides.get("invoice", {})))
    return invoice


def _invoice_retrieve(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    return stub._get("invoice", match["id"], "invoice")


def _subscription_retrieve(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    return stub._get("subscription", match["id"], "id")


def _subscription_update(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    """Items swapped to another price; with ``proration_behavior=always_invoice`` the proration
    (new minus old unit amount, for the part of the period left after ``proration_date``) is
    invoiced and finalized at once and becomes ``latest_invoice``."""
    subscription = stub._get("subscription", match["id"], "id")
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("always_invoice", "create_prorations", "none"):
        raise StubError(400, "Invalid proration_behavior", param="proration_behavior")
    if "cancel_at_period_end" in params:
        subscription["cancel_at_period_end"] = _boolean(params, "cancel_at_period_end")
    subscription["metadata"].update(params.get("metadata", {}))
    swaps = params.get("items", [])
    item = subscription["items"]["data"][0]
    invoice: JSON | None = None
    for swap in swaps:
        if swap.get("id") != item["id"]:
            raise StubError(400, f"No such subscription item: '{swap.get('id')}'", param="items[0][id]",
                            code="resource_missing")
        old = int(item["price"]["unit_amount"])
        if "price" in swap:
            price = stub._get("price", swap["price"], "items[0][price]")
        elif "price_data" in swap:
            data = swap["price_data"]
            if "product_data" in data:
                raise StubError(400, "Received unknown parameter: items[0][price_data][product_data]",
                                param="items[0][price_data][product_data]")
            price = stub._new("price", "price", unit_amount=_integer(data, "unit_amount"),
                              currency=_required(data, "currency"), product=_required(data, "product"),
                              recurring={**item["price"]["recurring"], **data.get("recurring", {})}, active=False)
        else:
            raise StubError(400, "Missing required param: items[0][price].", param="items[0][price]")
        item["price"] = copy.deepcopy(price)
        start, end = int(item["current_period_start"]), int(item["current_period_end"])
        at = _integer(params, "proration_date", required=False) or int(time.time())
        left = min(max(end - at, 0), end - start)
        amount = (int(price["unit_amount"]) - old) * left // max(end - start, 1)
        if behavior == "always_invoice":
            invoice = stub._new("invoice", "in", customer=subscription["customer"], currency=price["currency"],
                                subscription=subscription["id"], billing_reason="subscription_update",
                                collection_method="charge_automatically", metadata={},
                                amount_due=max(amount, 0), amount_remaining=max(amount, 0), subtotal=amount,
                                total=amount, lines={"object": "list", "data": [], "has_more": False,
                                                     "url": "/v1/invoices/lines"})
            number = sum(1 for i in stub.of_type("invoice") if i.get("number")) + 1
            invoice.update(status="paid" if amount <= 0 else "open", number=f"STUB-{number:04d}",
                           hosted_invoice_url=f"https://invoice.stripe.com/i/acct_stub/test_{invoice['id']}",
                           invoice_pdf=f"https://pay.stripe.com/invoice/acct_stub/test_{invoice['id']}/pdf")
            subscription["latest_invoice"] = invoice["id"]
    stub._queue_event("customer.subscription.updated", subscription)
    shown = copy.deepcopy(subscription)
    wanted = params.get("expand") or []
    if "latest_invoice" in wanted and isinstance(shown.get("latest_invoice"), str):
        shown["latest_invoice"] = copy.deepcopy(stub.objects[shown["latest_invoice"]])
    return shown


def _price_list(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    keys = query.get("lookup_keys") or []
    active = query.get("active")
    found = [p for p in stub.of_type("price") if (not keys or p.get("lookup_key") in keys)
             and (active is None or p.get("active") == (active == "true"))]
    limit = int(query.get("limit", 10))
    return {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": "/v1/prices"}


# --------------------------------------------------------------------------- Stripe.js stand-in routes
# Authenticated with the publishable key plus the object's client secret, as Stripe.js's own calls are.


def _client_secret(stub: StripeStub, obj: JSON, params: JSON, query: JSON) -> None:
    given = params.get("client_secret") or query.get("client_secret")
    if given != obj.get("client_secret"):
        raise StubError(400, "The client_secret provided does not match this object.", param="client_secret")


def _page_retrieve(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    session = stub._get("checkout.session", match["id"], "session")
    _client_secret(stub, session, params, query)
    return {**session, "trial_period_days": stub._trials.get(session["id"], 0)}


def _page_confirm(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    session = stub._get("checkout.session", match["id"], "session")
    _client_secret(stub, session, params, query)
    return stub.finish_checkout(session["id"], params.get("payment_method"))


def _setup_intent_confirm(stub: StripeStub, match: re.Match[str], params: JSON, query: JSON) -> JSON:
    intent = stub._get("setup_intent", match["id"], "intent")
    _client_secret(stub, intent, params, query)
    if intent["status"] == "succeeded":
        raise StubError(400, "This SetupIntent has already succeeded.", code="setup_intent_unexpected_state")
    method = stub._get("payment_method", _required(params, "payment_method"), "payment_method")
    if intent.get("customer"):
        if method["customer"] not in (None, intent["customer"]):
            raise StubError(400, "The payment method you provided has already been attached to a customer.",
                            param="payment_method")
        method["customer"] = intent["customer"]
    intent.update(status="succeeded", payment_method=method["id"])
    return intent


_ID = r"(?P<id>[A-Za-z0-9_]+)"
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(r"/v1/customers"), _customer_create),
    ("GET", re.compile(r"/v1/customers/search"), _customer_search),
    ("GET", re.compile(rf"/v1/customers/{_ID}"), _customer_retrieve),
    ("POST", re.compile(rf"/v1/customers/{_ID}"), _customer_update),
    ("POST", re.compile(r"/v1/checkout/sessions"), _session_create),
    ("GET", re.compile(rf"/v1/checkout/sessions/{_ID}"), _session_retrieve),
    ("POST", re.compile(r"/v1/billing_portal/sessions"), _portal_create),
    ("POST", re.compile(r"/v1/setup_intents"), _setup_intent_create),
    ("GET", re.compile(rf"/v1/payment_methods/{_ID}"), _method_retrieve),
    ("POST", re.compile(rf"/v1/payment_methods/{_ID}/attach"), _method_attach),
    ("POST", re.compile(rf"/v1/payment_methods/{_ID}/detach"), _method_detach),
    ("POST", re.compile(r"/v1/payment_intents"), _intent_create),
    ("GET", re.compile(rf"/v1/payment_intents/{_ID}"), _intent_retrieve),
    ("POST", re.compile(r"/v1/refunds"), _refund_create),
    ("POST", re.compile(r"/v1/invoices"), _invoice_create),
    ("POST", re.compile(r"/v1/invoiceitems"), _invoice_item_create),
    ("POST", re.compile(rf"/v1/invoices/{_ID}/finalize"), _invoice_finalize),
    ("GET", re.compile(rf"/v1/invoices/{_ID}"), _invoice_retrieve),
    ("GET", re.compile(rf"/v1/subscriptions/{_ID}"), _subscription_retrieve),
    ("POST", re.compile(rf"/v1/subscriptions/{_ID}"), _subscription_update),
    ("GET", re.compile(r"/v1/prices"), _price_list),
]
_PUBLISHABLE_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(rf"/v1/payment_pages/{_ID}"), _page_retrieve),
    ("POST", re.compile(rf"/v1/payment_pages/{_ID}/confirm"), _page_confirm),
    ("POST", re.compile(rf"/v1/setup_intents/{_ID}/confirm"), _setup_intent_confirm),
]
STRIPE_JS_STANDIN = Path(__file__).with_name("stripe_js_standin.js")
"""The stand-in for Stripe.js the stub serves at ``/v3/``."""


def _handler_for(stub: StripeStub) -> type[BaseHTTPRequestHandler]:
    class _StubHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def do_OPTIONS(self) -> None:
            # CORS preflight of the Stripe.js stand-in (the console's origin differs from the stub's).
            self.send_response(204)
            self._cors()
            self.send_header("Access-Control-Allow-Methods", "GET, POST")
            self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", "*")

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            if self.command == "GET" and urlsplit(self.path).path == "/v3/":
                script = STRIPE_JS_STANDIN.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript; charset=utf-8")
                self.send_header("Content-Length", str(len(script)))
                self.end_headers()
                self.wfile.write(script)
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            response = stub.handle(self.command, self.path, headers, body)
            stub.deliver_pending()
            if response is None:
                self.close_connection = True
                return
            payload = json.dumps(response.body).encode()
            self.send_response(response.status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_stub{len(stub.requests):06d}")
            if "stripe-version" in headers:
                self.send_header("Stripe-Version", headers["stripe-version"])
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return _StubHandler


def running_stub(fixtures: Mapping[str, Any]) -> Iterator[StripeStub]:
    """For a pytest fixture: ``yield from running_stub(fixtures_or_skip())``."""
    with StripeStub(fixtures) as stub:
        yield stub
