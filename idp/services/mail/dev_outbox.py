"""The development mailer: each message becomes a file in ``<instance_path>/outbox/``.

A real implementation, not a mock (CONVENTIONS.md 7): the outbox and worker run exactly as in
production, and the last step writes an RFC 5322 ``.eml`` file that any mail program opens.
Developers read them at ``/dev/outbox`` (development only); tests read them with
:func:`list_messages`. File names start with a UTC timestamp, so the newest sorts first.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage as MimeMessage
from email.parser import BytesParser
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from idp.models.base import utcnow
from idp.services.mail.base import EmailMessage, MailDeliveryError
from idp.services.mail.smtp import to_mime

# 20261205T153000123456Z-password_reset-1a2b3c4d.eml: nothing a URL or a path could abuse.
NAME_PATTERN = re.compile(r"^\d{8}T\d{12}Z-[a-z_]{1,64}-[0-9a-f]{8}\.eml$")


@dataclass(frozen=True)
class StoredMessage:
    """One message from the outbox folder, as the development page and tests see it."""

    name: str
    to: str
    subject: str
    template: str
    sent_at: datetime
    body: str


class DevOutboxMailer:
    """Writes each message as a file instead of sending it."""

    def __init__(self, directory: str | os.PathLike[str], sender: str) -> None:
        self.directory = Path(directory)
        self.sender = sender

    def send(self, message: EmailMessage) -> None:
        now = utcnow()
        mime = to_mime(message, self.sender)
        mime.replace_header("Date", format_datetime(now))
        name = f"{now:%Y%m%dT%H%M%S%f}Z-{message.template}-{secrets.token_hex(4)}.eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Write then rename, so the page never shows half a message.
            partial = self.directory / f".{name}.partial"
            partial.write_bytes(mime.as_bytes(policy=policy.SMTP))
            partial.replace(self.directory / name)
        except OSError as error:
            raise MailDeliveryError(
                f"cannot write to the outbox folder: {error.strerror}"
            ) from None


def list_messages(directory: str | os.PathLike[str], limit: int = 50) -> list[StoredMessage]:
    """The newest ``limit`` messages in the folder, newest first."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    names = sorted((p.name for p in folder.iterdir() if NAME_PATTERN.match(p.name)), reverse=True)
    return [message for n in names[:limit] if (message := read_message(folder, n)) is not None]


def read_message(directory: str | os.PathLike[str], name: str) -> StoredMessage | None:
    """One message by file name, or None if there is no such message (or the name is unsafe)."""
    if not NAME_PATTERN.match(name):
        return None
    path = Path(directory) / name
    try:
        # policy.default makes the parser build EmailMessage objects (with get_body).
        mime = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    except OSError:
        return None
    body = mime.get_body(preferencelist=("plain",))
    return StoredMessage(
        name=name,
        to=str(mime["To"]),
        subject=str(mime["Subject"]),
        template=str(mime["X-Secure-Access-Template"] or ""),
        sent_at=_sent_at(mime, name),
        body=body.get_content() if body is not None else "",
    )


def _sent_at(mime: MimeMessage, name: str) -> datetime:
    try:
        return parsedate_to_datetime(str(mime["Date"])).astimezone(UTC)
    except (TypeError, ValueError):
        return datetime.strptime(name[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
