"""Builders and local servers for the delivery adapters' tests (legal invoices, mail, webhooks).

Invoices are built with the core's own types; the SMTP sink is a real aiosmtpd server and the
webhook receiver a stdlib ``http.server`` that verifies signatures exactly as ``docs/webhooks.md``
tells receivers to.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import json
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.pdf.rendering import SellerDetails
from adapters.webhooks.signature import verify
from billing_core.billing_settings import InvoiceAddress
from billing_core.invoices import Invoice, InvoiceItem, InvoiceStatus
from billing_core.money import MICROS_PER_CENT, Money, micros_to_cents
from billing_core.organization import Organization
from billing_core.tax import REVERSE_CHARGE_NOTE, TaxConfig, TaxLine, TaxTreatment, tax_line
from tests.support.http_server import LocalServer

ISSUED_AT = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
PERIOD_START = datetime(2026, 2, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 3, 1, tzinfo=UTC)
DUE_AT = datetime(2026, 3, 15, 0, 5, tzinfo=UTC)
PROJECT_ID = uuid.UUID("0f0e0d0c-0b0a-4909-8807-060504030201")

SELLER = SellerDetails(name="billing-core demo GmbH", address_1="Alexanderplatz 1", postal_code="10178",
                       city="Berlin", country="DE", vat_id="DE136695976", email="billing@example.com",
                       bank_details="IBAN DE89 3704 0044 0532 0130 00 - BIC COBADEFFXXX")


def organization(name: str = "Acme Robotics") -> Organization:
    return Organization(id=uuid.uuid4(), name=name, created_at=ISSUED_AT, currency_iso="EUR")


def address(country: str = "DE", *, company: str = "Acme Robotics GmbH", po_number: str | None = "PO-4711",
            address_2: str | None = "Building 3") -> InvoiceAddress:
    return InvoiceAddress(company_name=company, address_1="Torstrasse 12", address_2=address_2, city="Hamburg",
                          postal_code="20095", country=country, po_number=po_number)


def item(product: str, quantity: int, unit: str, unit_price_micros: int, *,
         project_id: uuid.UUID | None = PROJECT_ID, currency_iso: str = "EUR") -> InvoiceItem:
    amount_micros = quantity * unit_price_micros
    return InvoiceItem(product_id=uuid.uuid5(uuid.NAMESPACE_URL, product), product=product, project_id=project_id,
                       quantity=quantity, unit=unit, unit_price_micros=unit_price_micros,
                       amount_micros=amount_micros, amount=Money(micros_to_cents(amount_micros), currency_iso))


def default_items() -> tuple[InvoiceItem, ...]:
    """A whole-cent price (3 × 0.05 EUR) and a sub-cent metered price (1,234,567 tokens × 0.00002)."""
    return (item("GPU inference", 1_234_567, "token", 20),
            item("Object storage", 3, "GB-month", 5 * MICROS_PER_CENT, project_id=None))


def invoice(*, treatment: TaxTreatment = TaxTreatment.DOMESTIC_VAT, credit_cents: int = 0,
            items: tuple[InvoiceItem, ...] | None = None, number: str = "INV-000042",
            currency_iso: str = "EUR") -> Invoice:
    """A finalized invoice as the core builds it: tax on subtotal minus credit, half-up."""
    lines = items if items is not None else default_items()
    subtotal = sum(i.amount.cents for i in lines)
    if treatment == TaxTreatment.DOMESTIC_VAT:
        tax = tax_line(max(subtotal - credit_cents, 0), "DE", False, TaxConfig())
    elif treatment == TaxTreatment.REVERSE_CHARGE:
        tax = TaxLine(TaxTreatment.REVERSE_CHARGE, 0, 0, REVERSE_CHARGE_NOTE)
    else:
        tax = TaxLine(TaxTreatment.NO_VAT, 0, 0, None)
    return Invoice(id=uuid.uuid4(), organization_id=uuid.uuid4(), period_start=PERIOD_START, period_end=PERIOD_END,
                   status=InvoiceStatus.OPEN, currency_iso=currency_iso, items=lines,
                   usage_micros=sum(i.amount_micros for i in lines), subtotal_cents=subtotal,
                   credit_applied_cents=credit_cents, tax=tax, created_at=ISSUED_AT, number=number,
                   finalized_at=ISSUED_AT, due_at=DUE_AT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage


class _SinkHandler:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.received: list[ReceivedMail] = []
        self.delay_s = delay_s

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.received.append(ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        if self.delay_s:
            # A relay that takes a while to acknowledge: the message is here, the sender not told yet.
            await asyncio.sleep(self.delay_s)
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port, collecting what it receives;
    ``delay_s`` holds back each acknowledgement (a slow relay)."""

    def __init__(self, *, delay_s: float = 0.0, **controller_options: Any) -> None:
        self._handler = _SinkHandler(delay_s)
        self.port = free_port()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port, **controller_options)

    @property
    def received(self) -> list[ReceivedMail]:
        return self._handler.received

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._controller.stop()


# --------------------------------------------------------------------------- webhooks


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class WebhookReceiver:
    """An HTTP endpoint that verifies ``Billing-Webhook-Signature`` the documented way: with every
    secret it currently accepts (old and new during a rotation), within the replay tolerance, and
    dedupes on the event id. Answers ``status`` (a 3xx redirects to ``/moved``)."""

    secrets: list[str]
    status: int = 200
    received: list[ReceivedWebhook] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    _http: LocalServer | None = None

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        # The recipe of docs/webhooks.md: verify with each accepted secret, reject if none matches.
        timestamp = headers.get("billing-webhook-timestamp")
        signature = headers.get("billing-webhook-signature")
        verified = any(verify(secret, signature, timestamp, body) for secret in self.secrets if secret)
        self.received.append(ReceivedWebhook(path, headers, body, verified))
        if not verified:
            return 400, {}
        if 300 <= self.status < 400:
            return self.status, {"Location": "/moved"}
        event_id = json.loads(body)["id"]
        if event_id in self.seen_ids:
            return 200, {}
        if self.status < 300:
            self.seen_ids.add(event_id)
        return self.status, {}

    @property
    def url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.port}/hooks/billing"

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, extra = receiver.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._http = LocalServer(ThreadingHTTPServer(("127.0.0.1", 0), Handler), name="webhook-receiver")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._http is not None:
            self._http.stop()
