"""``Mailer`` for development: each message becomes an ``.eml`` file and/or a one-line summary."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from adapters.email.mime import to_mime
from billing_core.errors import ProviderUnavailable
from billing_core.ports import EmailMessage


class ConsoleMailer:
    """The offline default. With a ``directory`` every message is written there as an ``.eml`` file
    (open it with any mail client); the summary line goes to ``stream`` when one is given, and to
    standard output when there is no directory (so a message is never silently dropped).
    Attachment bytes are never printed: the summary names each attachment and its size.
    """

    def __init__(self, directory: Path | None = None, stream: TextIO | None = None, *,
                 sender: str = "billing@localhost") -> None:
        self.directory = directory
        self._stream = stream
        self.sender = sender
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        """Write the message. Raises InvalidInput for a message that cannot be built and
        ProviderUnavailable when the directory cannot be written."""
        mime = to_mime(message, sender=self.sender)
        path: Path | None = None
        if self.directory is not None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = self.directory / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                temporary = path.with_suffix(".tmp")
                temporary.write_bytes(mime.as_bytes())
                os.replace(temporary, path)
            except OSError as exc:
                raise ProviderUnavailable(f"cannot write mail to {self.directory}: {type(exc).__name__}") from exc
        stream = self._stream if self._stream is not None else (sys.stdout if self.directory is None else None)
        if stream is not None:
            with self._lock:
                stream.write(summary(message, path) + "\n")
                stream.flush()


def summary(message: EmailMessage, path: Path | None = None) -> str:
    """``mail to=... subject=... attachments=[invoice.pdf 1234 B]`` on one line."""
    attachments = ", ".join(f"{a.filename} {len(a.content)} B" for a in message.attachments)
    line = f"mail to={message.to} subject={message.subject!r} html={'yes' if message.html else 'no'}"
    line += f" attachments=[{attachments}]"
    if path is not None:
        line += f" file={path}"
    return line
