"""One contract per delivery port, run against the fake and every real adapter of that port.

- LegalInvoicing: InMemoryLegalInvoicing, LocalPdfLegalInvoicing, EasyBillLegalInvoicing (+ stub)
- Mailer: InMemoryMailer, SmtpMailer (+ aiosmtpd), ConsoleMailer
- WebhookSender: InMemoryWebhookSender, HttpxWebhookSender (+ local receiver)
- TaxIdVerifier: InMemoryTaxIdVerifier, StdnumTaxIdVerifier
"""

from __future__ import annotations

import email
import email.policy
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.easybill.legal_invoicing import EasyBillLegalInvoicing
from adapters.email.console import ConsoleMailer
from adapters.email.smtp import SmtpMailer
from adapters.fakes import InMemoryLegalInvoicing, InMemoryMailer, InMemoryTaxIdVerifier, InMemoryWebhookSender
from adapters.pdf.local_invoicing import LocalPdfLegalInvoicing
from adapters.tax.stdnum_verifier import StdnumTaxIdVerifier
from adapters.webhooks.sender import HttpxWebhookSender
from billing_core.errors import NotFound
from billing_core.ports import (
    Attachment,
    EmailMessage,
    LegalInvoicing,
    Mailer,
    TaxIdVerifier,
    WebhookDelivery,
    WebhookSender,
)
from tests.support import delivery
from tests.support.easybill_stub import EasyBillStub

# --------------------------------------------------------------------------- LegalInvoicing


@pytest.fixture(params=["in_memory", "local_pdf", "easybill"])
def legal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LegalInvoicing]:
    if request.param == "in_memory":
        yield InMemoryLegalInvoicing()
    elif request.param == "local_pdf":
        yield LocalPdfLegalInvoicing(tmp_path / "documents", seller=delivery.SELLER)
    else:
        with EasyBillStub() as stub:
            adapter = EasyBillLegalInvoicing(stub.api_key, base_url=stub.base_url, sleep=lambda _: None)
            yield adapter
            adapter.close()


class TestLegalInvoicingContract:
    def test_issue_is_idempotent_per_invoice_id(self, legal: LegalInvoicing) -> None:
        inv, org = delivery.invoice(), delivery.organization()
        first = legal.issue(inv, org, delivery.address(), "ap@acme.example")
        assert legal.issue(inv, org, delivery.address(), "ap@acme.example") == first
        other = legal.issue(delivery.invoice(number="INV-000043"), org, delivery.address(), None)
        assert other.document_id != first.document_id

    def test_the_pdf_is_a_pdf(self, legal: LegalInvoicing) -> None:
        document = legal.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
        assert document.number
        assert legal.pdf(document.document_id).startswith(b"%PDF")

    def test_credit_notes_are_idempotent_per_key(self, legal: LegalInvoicing) -> None:
        document = legal.issue(delivery.invoice(), delivery.organization(), delivery.address(), None)
        first = legal.credit_note(document.document_id, amount_cents=100, reason="goodwill", idempotency_key="k1")
        assert legal.credit_note(document.document_id, amount_cents=100, reason="goodwill",
                                 idempotency_key="k1") == first
        second = legal.credit_note(document.document_id, amount_cents=100, reason="goodwill", idempotency_key="k2")
        assert second.document_id not in (first.document_id, document.document_id)
        assert legal.pdf(first.document_id).startswith(b"%PDF")

    def test_a_void_for_the_invoice_total_is_idempotent(self, legal: LegalInvoicing) -> None:
        inv = delivery.invoice(credit_cents=300)
        document = legal.issue(inv, delivery.organization(), delivery.address(), None)
        void = legal.credit_note(document.document_id, amount_cents=inv.total.cents, reason="voided",
                                 idempotency_key="void")
        assert legal.credit_note(document.document_id, amount_cents=inv.total.cents, reason="voided",
                                 idempotency_key="void") == void
        assert void.document_id != document.document_id

    def test_unknown_documents_are_not_found(self, legal: LegalInvoicing) -> None:
        for document_id in ["12345", "doc-404", "inv_" + "0" * 32]:
            with pytest.raises(NotFound):
                legal.pdf(document_id)
            with pytest.raises(NotFound):
                legal.credit_note(document_id, amount_cents=100, reason="x", idempotency_key=f"k-{document_id}")


# --------------------------------------------------------------------------- Mailer


@dataclass
class MailerUnderTest:
    mailer: Mailer
    received: Callable[[], list[tuple[str, str, bytes | None]]]
    """(to, subject, first attachment's bytes) of every message the far side got."""
    message_ids: Callable[[], list[str | None]]
    """How the far side identifies each message it got (its ``Message-ID``), in order."""


def _console_received(directory: Path) -> list[tuple[str, str, bytes | None]]:
    result: list[tuple[str, str, bytes | None]] = []
    for path in sorted(directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        attachments = [part.get_payload(decode=True) for part in message.walk() if part.get_filename()]
        first = attachments[0] if attachments and isinstance(attachments[0], bytes) else None
        result.append((str(message["To"]), str(message["Subject"]), first))
    return result


def _console_message_ids(directory: Path) -> list[str | None]:
    return [str(email.message_from_bytes(path.read_bytes(), policy=email.policy.default)["Message-ID"])
            for path in sorted(directory.glob("*.eml"))]


@pytest.fixture(params=["in_memory", "smtp", "console"])
def mail(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailerUnderTest]:
    if request.param == "in_memory":
        fake = InMemoryMailer()
        yield MailerUnderTest(fake, lambda: [(m.to, m.subject, m.attachments[0].content if m.attachments else None)
                                             for m in fake.sent],
                              lambda: [m.message_id for m in fake.sent])
    elif request.param == "smtp":
        with delivery.SmtpSink() as sink:
            def smtp_received() -> list[tuple[str, str, bytes | None]]:
                result: list[tuple[str, str, bytes | None]] = []
                for mail in sink.received:
                    attachments = [part.get_content() for part in mail.message.iter_attachments()]
                    result.append((str(mail.message["To"]), str(mail.message["Subject"]),
                                   attachments[0] if attachments else None))
                return result
            yield MailerUnderTest(SmtpMailer("127.0.0.1", sink.port), smtp_received,
                                  lambda: [str(m.message["Message-ID"]) for m in sink.received])
    else:
        directory = tmp_path / "mail"
        yield MailerUnderTest(ConsoleMailer(directory, io.StringIO()), lambda: _console_received(directory),
                              lambda: _console_message_ids(directory))


class TestMailerContract:
    def test_a_sent_message_is_observable(self, mail: MailerUnderTest) -> None:
        pdf = b"%PDF-1.4 fake invoice"
        mail.mailer.send(EmailMessage(to="ap@acme.example", subject="Invoice INV-000042", text="Attached.",
                                      html="<p>Attached.</p>",
                                      attachments=(Attachment("invoice.pdf", "application/pdf", pdf),)))
        mail.mailer.send(EmailMessage(to="owner@acme.example", subject="Low balance", text="Top up."))
        assert mail.received() == [("ap@acme.example", "Invoice INV-000042", pdf),
                                   ("owner@acme.example", "Low balance", None)]

    def test_a_repeated_send_carries_the_same_message_id(self, mail: MailerUnderTest) -> None:
        # At-least-once delivery repeats a send after a crash; the repeat must be recognisable.
        notice = EmailMessage(to="owner@acme.example", subject="Low balance", text="Top up.",
                              message_id="outbox-5b0d7c1e-9a55-4a8e-8f5e-0f6f3c2b1a00")
        mail.mailer.send(notice)
        mail.mailer.send(notice)
        mail.mailer.send(EmailMessage(to="owner@acme.example", subject="Low balance", text="Top up.",
                                      message_id="outbox-other"))
        mail.mailer.send(EmailMessage(to="owner@acme.example", subject="Low balance", text="Top up."))
        first, repeat, other, unnamed = mail.message_ids()
        assert first is not None and first == repeat
        assert "outbox-5b0d7c1e-9a55-4a8e-8f5e-0f6f3c2b1a00" in first
        assert other != first and unnamed not in (first, other)


def test_the_console_mailer_summarizes_without_attachment_bytes(tmp_path: Path) -> None:
    stream = io.StringIO()
    secret_bytes = b"%PDF-1.4 TOP-SECRET-CONTENT"
    ConsoleMailer(stream=stream).send(EmailMessage(
        to="ap@acme.example", subject="Invoice", text="body text",
        attachments=(Attachment("invoice.pdf", "application/pdf", secret_bytes),)))
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert "to=ap@acme.example" in line and "invoice.pdf 27 B" in line
    assert "TOP-SECRET" not in line and "body text" not in line


# --------------------------------------------------------------------------- WebhookSender


@dataclass
class SenderUnderTest:
    sender: WebhookSender
    url: str
    received_ids: Callable[[], list[str]]


@pytest.fixture(params=["in_memory", "httpx"])
def webhooks(request: pytest.FixtureRequest) -> Iterator[SenderUnderTest]:
    if request.param == "in_memory":
        fake = InMemoryWebhookSender()
        yield SenderUnderTest(fake, "https://hooks.example/billing", lambda: [e.id for _, e in fake.deliveries])
    else:
        with delivery.WebhookReceiver(secrets=["whsec_contract"]) as receiver:
            sender = HttpxWebhookSender(timeout=5, allow_private=True)
            yield SenderUnderTest(sender, receiver.url,
                                  lambda: [r.headers["billing-webhook-id"] for r in receiver.received if r.verified])
            sender.close()


class TestWebhookSenderContract:
    def test_a_delivered_event_reaches_the_receiver(self, webhooks: SenderUnderTest) -> None:
        event = WebhookDelivery(id="evt_1", type="wallet.low_balance", created=datetime(2026, 3, 14, tzinfo=UTC),
                                data={"balance_micros": 4_000_000})
        assert webhooks.sender.send(url=webhooks.url, secret="whsec_contract", event=event) == 200
        assert webhooks.received_ids() == ["evt_1"]


# --------------------------------------------------------------------------- TaxIdVerifier

VALID_DE = "DE136695976"
BROKEN_DE = "DE136695977"  # same number, wrong check digit


@pytest.fixture(params=["in_memory", "stdnum"])
def verifier(request: pytest.FixtureRequest) -> TaxIdVerifier:
    if request.param == "in_memory":
        return InMemoryTaxIdVerifier(invalid={BROKEN_DE})  # the fake is told which ids its "registry" rejects
    return StdnumTaxIdVerifier()


class TestTaxIdVerifierContract:
    def test_a_valid_vat_number_verifies(self, verifier: TaxIdVerifier) -> None:
        assert verifier.verify("DE", VALID_DE) is True

    def test_a_checksum_broken_vat_number_does_not(self, verifier: TaxIdVerifier) -> None:
        assert verifier.verify("DE", BROKEN_DE) is False


@pytest.mark.parametrize(("country", "value", "valid"), [
    ("DE", "DE 136 695 976", True),
    ("FR", "FR40303265045", True),
    ("GR", "EL094259216", True),
    ("AT", "DE136695976", False),  # a valid German number is not an Austrian one
    ("GB", "GB980780684", True),
    ("GB", "GB980780685", False),
    ("CH", "CHE-107.787.577 IVA", True),
    ("NO", "NO995525828MVA", True),
    ("US", "04-2103594", True),
    ("BR", "anything", True),  # no checker: the core's format check is all there is
    ("DE", "DE13669597", False),
])
def test_stdnum_checks_each_country(country: str, value: str, valid: bool) -> None:
    assert StdnumTaxIdVerifier().verify(country, value) is valid
