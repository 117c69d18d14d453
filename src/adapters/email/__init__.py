"""Mail adapters: SMTP for production, a console/file mailer for development."""

from adapters.email.console import ConsoleMailer
from adapters.email.smtp import SmtpMailer

__all__ = ["ConsoleMailer", "SmtpMailer"]
