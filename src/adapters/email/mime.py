"""Our ``EmailMessage`` (the port's value) as a MIME message: text, optional HTML alternative,
attachments. Shared by the SMTP and the console mailer so both produce the same bytes."""

from __future__ import annotations

import email.message
import email.policy
import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

from billing_core.billing_settings import check_email
from billing_core.errors import InvalidInput
from billing_core.ports import EmailMessage

_ID_LEFT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


def message_id_header(message: EmailMessage, domain: str) -> str:
    """``<message_id@domain>`` for a message that names itself, a fresh unique id otherwise. Raises
    InvalidInput for an id that is not a dot-atom (it would break the header)."""
    if message.message_id is None:
        return make_msgid(idstring=uuid.uuid4().hex, domain=domain)
    if not _ID_LEFT.match(message.message_id):
        raise InvalidInput("message_id", "message_id must be letters, digits and . - _ + only", code="invalid_header")
    return f"<{message.message_id}@{domain}>"


def to_mime(message: EmailMessage, *, sender: str, now: datetime | None = None) -> email.message.EmailMessage:
    """Build the MIME message. Raises InvalidInput for a bad recipient or a header carrying line
    breaks (header injection) or an attachment whose content type is not ``type/subtype``."""
    recipient = check_email(message.to, "to")
    if any(ch in message.subject for ch in "\r\n"):
        raise InvalidInput("subject", "subject must not contain line breaks", code="invalid_header")
    mime = email.message.EmailMessage(policy=email.policy.SMTP)
    try:
        mime["From"] = sender
        mime["To"] = recipient
        mime["Subject"] = message.subject
    except ValueError as exc:
        raise InvalidInput("to", f"invalid mail header: {exc}", code="invalid_header") from exc
    mime["Date"] = format_datetime(now or datetime.now(UTC))
    domain = sender.rpartition("@")[2] or "localhost"
    mime["Message-ID"] = message_id_header(message, domain)
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not maintype or not subtype:
            raise InvalidInput("attachments", f"bad content type {attachment.content_type!r}",
                               code="invalid_attachment")
        mime.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return mime
