"""A local EasyBill REST API v1 stub: stdlib ``http.server`` on 127.0.0.1, a free port, a thread.

It follows EasyBill's published shapes, as far as the legal-invoice adapter uses them:

- ids are integers; documents are created as drafts (``is_draft`` is read-only: sending it, or
  ``number``, ``amount``, ``amount_net``, ``cancel_id``, ``id`` on create is a 400); the number is
  assigned at ``PUT /documents/{id}/done``; ``POST /documents/{id}/cancel`` creates a finalized
  STORNO document and sets the invoice's ``cancel_id``;
- amounts are integer cents, ``single_price_net`` included (the pinned unit): a position's
  ``total_price_net`` is ``quantity × single_price_net`` rounded half-up to the cent; VAT applies
  only when ``vat_option`` is null, per rate on the summed net, half-up;
- lists are ``{page, pages, limit, total, items}`` with ``page`` from 1 and ``limit`` up to 1000;
- ``Authorization: Bearer <api_key>`` is required (401 otherwise).

Every request is recorded (:attr:`EasyBillStub.requests`); :meth:`EasyBillStub.fail_next` makes the
next matching requests answer 429 (with ``Retry-After``), 500, 422... without processing them.
"""

from __future__ import annotations

import json
import math
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import msgspec
from fpdf import FPDF

from adapters.einvoice.cii import to_cii
from adapters.einvoice.facturx_pdf import embed_facturx
from billing_core.einvoice import Address, EInvoice, Line, Party, Totals, VatBreakdown, VatCategory
from tests.support.http_server import LocalServer

API_PREFIX = "/rest/v1"
READ_ONLY_DOCUMENT_FIELDS = frozenset({"id", "number", "is_draft", "amount", "amount_net", "cancel_id"})
CREATABLE_TYPES = frozenset({"INVOICE", "CREDIT", "OFFER", "ORDER", "DELIVERY", "CHARGE", "PROFORMA_INVOICE"})
VAT_OPTIONS = frozenset({None, "nStb", "nStbUstID", "nStbNoneUstID", "revc", "IG", "AL", "sStfr", "smallBusiness"})
NUMBER_PREFIXES = {"INVOICE": "RE-", "CREDIT": "GS-", "STORNO": "ST-"}

_encoder = msgspec.json.Encoder(decimal_format="number")

Json = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    """Without the ``/rest/v1`` prefix, without the query."""
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    """Decoded JSON (fractions as Decimal), or None."""


@dataclass
class _Failure:
    status: int
    remaining: int
    retry_after: str | None
    method: str | None
    path: re.Pattern[str] | None
    message: str


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _cents(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def _number(value: Any, field_name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _ApiError(400, f"{field_name} must be a number")
    return Decimal(value)


class EasyBillStub:
    """Start with ``with EasyBillStub() as stub:``; point the adapter at :attr:`base_url`."""

    def __init__(self, api_key: str = "test-api-key") -> None:
        self.api_key = api_key
        self.customers: dict[int, Json] = {}
        self.documents: dict[int, Json] = {}
        self.requests: list[RecordedRequest] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._next_customer_id = 1001
        self._next_document_id = 50001
        self._counters = dict.fromkeys(NUMBER_PREFIXES, 0)
        self._http: LocalServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EasyBillStub:
        self._http = LocalServer(_Server(self), name="easybill-stub")
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    def __enter__(self) -> EasyBillStub:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._http is not None, "start the stub first"
        return f"http://127.0.0.1:{self._http.port}{API_PREFIX}"

    # ------------------------------------------------------------------ test controls

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None, method: str | None = None,
                  path: str | None = None, message: str = "simulated failure") -> None:
        """Answer the next ``times`` requests (matching ``method`` and the ``path`` regex, if given)
        with ``status`` without processing them."""
        with self._lock:
            self._failures.append(_Failure(status, times, retry_after, method,
                                           re.compile(path) if path else None, message))

    def calls(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        """Recorded requests whose method matches and whose path fully matches the regex."""
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # ------------------------------------------------------------------ dispatch

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> _Reply:
        parts = urlsplit(raw_path)
        path = parts.path[len(API_PREFIX):] if parts.path.startswith(API_PREFIX) else parts.path
        query = dict(parse_qsl(parts.query))
        try:
            body = json.loads(raw_body, parse_float=Decimal) if raw_body else None
        except ValueError:
            body = "<invalid json>"
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, headers, body))
            failure = self._take_failure(method, path)
            if failure is not None:
                extra = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
                return _Reply(failure.status, _encoder.encode({"message": failure.message}), headers=extra)
            if headers.get("authorization") != f"Bearer {self.api_key}":
                return _Reply(401, _encoder.encode({"message": "invalid api key"}))
            if body == "<invalid json>":
                return _Reply(400, _encoder.encode({"message": "malformed JSON"}))
            try:
                return self._route(method, path, query, headers, body)
            except _ApiError as exc:
                return _Reply(exc.status, _encoder.encode({"message": exc.message}))

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.remaining <= 0:
                continue
            if failure.method is not None and failure.method != method:
                continue
            if failure.path is not None and not failure.path.fullmatch(path):
                continue
            failure.remaining -= 1
            return failure
        return None

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> _Reply:
        if path == "/customers":
            if method == "GET":
                return _json(200, self._page(list(self.customers.values()), query, ("number", "country")))
            if method == "POST":
                return _json(201, self._create_customer(_object(body)))
        if match := re.fullmatch(r"/customers/(\d+)", path):
            customer = self._get(self.customers, int(match[1]), "customer")
            if method == "GET":
                return _json(200, customer)
            if method == "PUT":
                update = {k: v for k, v in _object(body).items() if k not in ("id", "created_at")}
                customer.update(update)
                return _json(200, customer)
        if path == "/documents":
            if method == "GET":
                filters = ("type", "customer_id", "is_draft", "ref_id", "cancel_id", "number")
                return _json(200, self._page(list(self.documents.values()), query, filters))
            if method == "POST":
                return _json(201, self._create_document(_object(body)))
        if match := re.fullmatch(r"/documents/(\d+)(/done|/cancel|/pdf)?", path):
            document = self._get(self.documents, int(match[1]), "document")
            action = match[2]
            if action is None and method == "GET":
                return _json(200, document)
            if action == "/done" and method == "PUT":
                return _json(200, self._done(document))
            if action == "/cancel" and method == "POST":
                return _json(200, self._cancel(document))
            if action == "/pdf" and method == "GET":
                if "application/pdf" not in headers.get("accept", ""):
                    raise _ApiError(406, "GET /documents/{id}/pdf needs Accept: application/pdf")
                return _Reply(200, self.pdf_bytes(document), content_type="application/pdf")
        raise _ApiError(404, f"no route for {method} {path}")

    # ------------------------------------------------------------------ resources

    @staticmethod
    def _get(table: dict[int, Json], key: int, kind: str) -> Json:
        if key not in table:
            raise _ApiError(404, f"{kind} {key} not found")
        return table[key]

    @staticmethod
    def _page(rows: list[Json], query: dict[str, str], filters: tuple[str, ...]) -> Json:
        for name in filters:
            if name in query:
                wanted = query[name]
                rows = [r for r in rows if _as_query(r.get(name)) == wanted]
        limit = min(max(int(query.get("limit", "100")), 1), 1000)
        page = max(int(query.get("page", "1")), 1)
        pages = max(math.ceil(len(rows) / limit), 1)
        return {"page": page, "pages": pages, "limit": limit, "total": len(rows),
                "items": rows[(page - 1) * limit: page * limit]}

    def _create_customer(self, body: Json) -> Json:
        if "id" in body:
            raise _ApiError(400, "id is read-only")
        if not body.get("company_name") and not body.get("last_name"):
            raise _ApiError(400, "company_name or last_name is required")
        if body.get("country") is not None and not re.fullmatch(r"[A-Z]{2}", str(body["country"])):
            raise _ApiError(400, "country must be an ISO 3166-1 alpha-2 code")
        customer = {"id": self._next_customer_id, "created_at": _now(), **body}
        self._next_customer_id += 1
        self.customers[customer["id"]] = customer
        return customer

    def _create_document(self, body: Json) -> Json:
        read_only = READ_ONLY_DOCUMENT_FIELDS & body.keys()
        if read_only:
            raise _ApiError(400, f"read-only field(s): {', '.join(sorted(read_only))}")
        document_type = body.get("type", "INVOICE")
        if document_type not in CREATABLE_TYPES:
            raise _ApiError(400, f"type {document_type!r} cannot be created")
        if body.get("customer_id") not in self.customers:
            raise _ApiError(400, "customer_id does not exist")
        if body.get("vat_option") not in VAT_OPTIONS:
            raise _ApiError(400, f"vat_option {body.get('vat_option')!r} is not valid")
        if body.get("ref_id") is not None and body["ref_id"] not in self.documents:
            raise _ApiError(400, "ref_id does not exist")
        items = body.get("items") or []
        if not isinstance(items, list):
            raise _ApiError(400, "items must be a list")
        document: Json = {
            "id": self._next_document_id, "type": document_type, "number": None, "is_draft": True,
            "cancel_id": None, "ref_id": None, "external_id": None, "currency": "EUR", "title": None, "text": None,
            "document_date": datetime.now(UTC).date().isoformat(), "due_in_days": None, "vat_option": None,
            "paid_amount": 0, "paid_at": None, "created_at": _now(), **body, "items": [],
        }
        self._next_document_id += 1
        document["items"] = [self._position(i, item) for i, item in enumerate(items, 1)]
        self._totals(document)
        self.documents[document["id"]] = document
        return document

    @staticmethod
    def _position(index: int, raw: Any) -> Json:
        item = _object(raw)
        quantity = _number(item.get("quantity", 1), "quantity")
        price = _number(item.get("single_price_net", 0), "single_price_net")
        vat = _number(item.get("vat_percent", 0), "vat_percent")
        total_net = _cents(quantity * price)
        return {"position": index, "type": "POSITION", "unit": None, "description": None, **item,
                "total_price_net": total_net, "total_vat": _cents(total_net * vat / 100)}

    @staticmethod
    def _totals(document: Json) -> None:
        net_by_rate: dict[Decimal, int] = {}
        for item in document["items"]:
            rate = Decimal(item.get("vat_percent") or 0)
            net_by_rate[rate] = net_by_rate.get(rate, 0) + int(item["total_price_net"])
        net = sum(net_by_rate.values())
        vat = 0 if document.get("vat_option") else sum(_cents(Decimal(n) * r / 100) for r, n in net_by_rate.items())
        document["amount_net"] = net
        document["amount"] = net + vat

    def _done(self, document: Json) -> Json:
        if not document["is_draft"]:
            raise _ApiError(400, "document is already done")
        self._counters[document["type"]] = self._counters.get(document["type"], 0) + 1
        prefix = NUMBER_PREFIXES.get(document["type"], "DOC-")
        document["number"] = f"{prefix}{self._counters[document['type']]:05d}"
        document["is_draft"] = False
        return document

    def _cancel(self, document: Json) -> Json:
        if document["type"] != "INVOICE" or document["is_draft"]:
            raise _ApiError(400, "only finalized invoices can be cancelled")
        if document["cancel_id"] is not None:
            raise _ApiError(400, "document is already cancelled")
        storno: Json = {
            **document, "id": self._next_document_id, "type": "STORNO", "number": None, "is_draft": True,
            "ref_id": document["id"], "external_id": None, "created_at": _now(),
            "items": [{**item, "single_price_net": -_number(item["single_price_net"], "single_price_net"),
                       "total_price_net": -item["total_price_net"], "total_vat": -item["total_vat"]}
                      for item in document["items"]],
            "amount": -document["amount"], "amount_net": -document["amount_net"],
        }
        self._next_document_id += 1
        self.documents[storno["id"]] = storno
        self._done(storno)
        document["cancel_id"] = storno["id"]
        return storno

    @staticmethod
    def pdf_bytes(document: Json) -> bytes:
        """What ``GET /documents/{id}/pdf`` answers: a tiny PDF naming the document; with the
        e-invoice template (:data:`EINVOICE_TEMPLATE`, our reading of EasyBill, unverified) a Factur-X
        PDF whose CII states the document's own totals."""
        if document.get("pdf_template") == EINVOICE_TEMPLATE:
            return _facturx_pdf(document)
        return (f"%PDF-1.4\n% easybill stub {document['type']} {document['id']} {document['number']}\n%%EOF\n"
                ).encode()


EINVOICE_TEMPLATE = "ZUGFERD"
"""The ``pdf_template`` the stub treats as EasyBill's e-invoice template (unverified)."""


def _facturx_pdf(document: Json) -> bytes:
    """A Factur-X PDF as EasyBill's e-invoice template would make it: one line per document, its
    net, VAT and gross amounts (cents) as EasyBill computed them."""
    net, gross = int(document["amount_net"]), int(document["amount"])
    rate = next((int(Decimal(i.get("vat_percent") or 0) * 100) for i in document["items"]), 0)
    category = VatCategory.STANDARD if not document.get("vat_option") else VatCategory.NOT_SUBJECT
    address = Address(line_1="Street 1", city="Berlin", postal_code="10115", country="DE")
    party = Party(name="EasyBill customer", address=address, vat_id="DE123456789", legal_registration_id="HRB 1")
    line = Line(id="1", name="Position", description=None, quantity=1, unit_code="C62",
                unit_price_micros=net * 10_000, net_cents=net, rounding_micros=0, category=category,
                rate_basis_points=rate if category == VatCategory.STANDARD else 0)
    terms = EInvoice(
        specification="urn:cen.eu:en16931:2017", business_process=None, number=str(document["number"]),
        type_code="380", issue_date=date.fromisoformat(document["document_date"]), currency=document["currency"],
        vat_accounting_currency=None, due_date=None, buyer_reference=None, preceding_invoice=None,
        preceding_invoice_date=None, period_start=date(2026, 2, 1), period_end=date(2026, 2, 28), notes=(),
        seller=party, buyer=party, payment_means_code="30", payee_iban=None, payee_bic=None,
        payee_account_name=None, payment_terms="14 days", remittance_information=None, lines=(line,),
        allowances=(), vat_breakdown=(VatBreakdown(category=category, rate_basis_points=line.rate_basis_points,
                                                   taxable_cents=net, tax_cents=gross - net),),
        totals=Totals(line_total_cents=net, allowance_total_cents=0, charge_total_cents=0, tax_exclusive_cents=net,
                      tax_total_cents=gross - net, tax_inclusive_cents=gross, prepaid_cents=0, rounding_cents=0,
                      payable_cents=gross),
        invoice_id=uuid.uuid4())
    page = FPDF()
    page.add_page()
    page.set_font("Helvetica", size=10)
    page.cell(0, 10, f"EasyBill stub e-invoice {document['number']}")
    return embed_facturx(bytes(page.output()), to_cii(terms), number=terms.number, seller_name="EasyBill stub",
                         issued=terms.issue_date)


class _Server(ThreadingHTTPServer):
    def __init__(self, stub: EasyBillStub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stub = stub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = cast(_Server, self.server).stub.handle(self.command, self.path, headers, raw)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read :attr:`EasyBillStub.requests` instead."""


def _json(status: int, body: Json) -> _Reply:
    return _Reply(status, _encoder.encode(body))


def _object(body: Any) -> Json:
    if not isinstance(body, dict):
        raise _ApiError(400, "a JSON object is required")
    return body


def _as_query(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
