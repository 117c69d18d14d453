"""``Mailer`` over SMTP with smtplib (plain, STARTTLS or implicit TLS, optional login)."""

from __future__ import annotations

import smtplib
import ssl

from adapters.email.mime import to_mime
from billing_core.errors import EmailRejected, InvalidInput, ProviderUnavailable
from billing_core.ports import EmailMessage


class SmtpMailer:
    """One SMTP connection per message (the outbox sends few, and a fresh connection never goes stale).

    The password is kept only to log in: it is not in ``repr`` nor in any error message.
    """

    def __init__(self, host: str, port: int, *, username: str | None = None, password: str | None = None,
                 starttls: bool = False, use_ssl: bool = False, sender: str = "billing@localhost",
                 timeout: float = 10, ssl_context: ssl.SSLContext | None = None) -> None:
        if starttls and use_ssl:
            raise InvalidInput("starttls", "choose STARTTLS or implicit TLS (use_ssl), not both")
        if password is not None and username is None:
            raise InvalidInput("username", "a password needs a username")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.sender = sender
        self.timeout = timeout
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return (f"SmtpMailer(host={self.host!r}, port={self.port}, username={self.username!r}, "
                f"starttls={self.starttls}, use_ssl={self.use_ssl}, sender={self.sender!r})")

    def send(self, message: EmailMessage) -> None:
        """Deliver the message to the SMTP server.

        Raises InvalidInput when the message cannot be built (bad recipient, header injection) or
        the server refuses every recipient permanently (5xx); ProviderUnavailable when the server
        cannot be reached, refuses the login, or answers with a temporary or unexpected error.
        Not idempotent: a retry after an ambiguous failure may deliver twice (mail is at-least-once).
        """
        mime = to_mime(message, sender=self.sender)
        where = f"{self.host}:{self.port}"
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=self._context())
                if self.username is not None:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(mime)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(500 <= code < 600 for code in codes):
                raise EmailRejected("to", f"the mail server refused the recipient ({codes[0]})") from None
            raise ProviderUnavailable(f"SMTP server {where} deferred the recipient") from None
        except smtplib.SMTPAuthenticationError as exc:
            # ``from None``: the server's answer to AUTH may echo what was sent.
            raise ProviderUnavailable(f"SMTP server {where} refused the login ({exc.smtp_code})") from None
        except smtplib.SMTPResponseException as exc:
            raise ProviderUnavailable(f"SMTP server {where} answered {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderUnavailable(f"SMTP server {where} unavailable: {type(exc).__name__}") from exc

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context if self._ssl_context is not None else ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)
