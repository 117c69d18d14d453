"""SmtpMailer against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from adapters.email.smtp import SmtpMailer
from billing_core.errors import InvalidInput, ProviderUnavailable
from billing_core.ports import Attachment, EmailMessage
from tests.support.delivery import SmtpSink, free_port

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


def invoice_mail(to: str = "ap@acme.example") -> EmailMessage:
    return EmailMessage(to=to, subject="Invoice INV-000042 — February 2026",
                        text="Your invoice INV-000042 is attached.\nAmount due: EUR 29.56.",
                        html="<p>Your invoice <b>INV-000042</b> is attached.</p>",
                        attachments=(Attachment("invoice-INV-000042.pdf", "application/pdf", PDF),))


def test_a_message_arrives_with_text_html_and_the_pdf(sink: SmtpSink) -> None:
    SmtpMailer("127.0.0.1", sink.port, sender="billing@billing.example").send(invoice_mail())

    [mail] = sink.received
    assert mail.mail_from == "billing@billing.example"
    assert mail.rcpt_tos == ["ap@acme.example"]
    message = mail.message
    assert message["Subject"] == "Invoice INV-000042 — February 2026"
    assert message["To"] == "ap@acme.example"
    assert message["From"] == "billing@billing.example"
    assert message["Message-ID"].endswith("@billing.example>")
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and "Amount due: EUR 29.56." in text.get_content()
    assert html is not None and "<b>INV-000042</b>" in html.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "invoice-INV-000042.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF


def test_the_message_id_names_the_message_and_is_checked(sink: SmtpSink) -> None:
    mailer = SmtpMailer("127.0.0.1", sink.port, sender="billing@billing.example")
    mailer.send(EmailMessage(to="a@b.example", subject="Low balance", text="Top up.", message_id="outbox-42.a_b+c"))
    [mail] = sink.received
    assert mail.message["Message-ID"] == "<outbox-42.a_b+c@billing.example>"
    for bad in ("two words", "x>\r\nBcc: victim@example.com", "", "<angle>", "a@b"):
        with pytest.raises(InvalidInput, match="message_id"):
            mailer.send(EmailMessage(to="a@b.example", subject="Low balance", text="Top up.", message_id=bad))
    assert len(sink.received) == 1


def test_text_only_messages_are_single_part(sink: SmtpSink) -> None:
    SmtpMailer("127.0.0.1", sink.port).send(EmailMessage(to="a@b.example", subject="Low balance", text="Top up."))
    [mail] = sink.received
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().strip() == "Top up."


def test_an_unreachable_server_is_provider_unavailable() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(ProviderUnavailable, match="unavailable"):
        mailer.send(invoice_mail())


def test_header_injection_and_bad_recipients_are_invalid_input(sink: SmtpSink) -> None:
    mailer = SmtpMailer("127.0.0.1", sink.port)
    with pytest.raises(InvalidInput):
        mailer.send(EmailMessage(to="a@b.example", subject="hi\r\nBcc: victim@evil.example", text="x"))
    with pytest.raises(InvalidInput):
        mailer.send(EmailMessage(to="a@b.example\r\nBcc: victim@evil.example", subject="hi", text="x"))
    assert sink.received == []


class _Authenticator:
    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret-pass", handled=False)


def test_login_is_used_and_the_password_never_shows() -> None:
    authenticator = _Authenticator()
    with SmtpSink(authenticator=authenticator, auth_require_tls=False) as sink:
        good = SmtpMailer("127.0.0.1", sink.port, username="billing", password="s3cret-pass")
        good.send(invoice_mail())
        assert authenticator.logins == [("billing", "s3cret-pass")]
        assert len(sink.received) == 1
        assert "s3cret-pass" not in repr(good)

        bad = SmtpMailer("127.0.0.1", sink.port, username="billing", password="wrong-pass")
        with pytest.raises(ProviderUnavailable, match="refused the login") as caught:
            bad.send(invoice_mail())
        assert "wrong-pass" not in str(caught.value)
        assert caught.value.__cause__ is None


def test_conflicting_tls_options_are_refused() -> None:
    with pytest.raises(InvalidInput):
        SmtpMailer("127.0.0.1", 25, starttls=True, use_ssl=True)
