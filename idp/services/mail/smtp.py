"""Send email through an SMTP server (a relay, a cloud provider's SMTP endpoint, a mail catcher).

SMTP reply codes decide retry or give up: 4xx is the server saying "not now" (greylisting, a
full queue), so we retry; a 5xx refusal of the *recipient* or of the message itself is final.
Anything else (no connection, a refused login, our sender address refused) is our side's
problem and retryable: once the configuration or the server is fixed, the message still goes.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid

from idp.services.mail.base import EmailMessage, MailDeliveryError, PermanentMailError

# Long enough for a slow relay, short enough that one stalled server cannot hold up the worker.
TIMEOUT_SECONDS = 20


def to_mime(message: EmailMessage, sender: str) -> MimeMessage:
    """The RFC 5322 form of ``message``: plain text, UTF-8, marked as automatic."""
    mime = MimeMessage()
    mime["From"] = sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(localtime=False, usegmt=True)
    mime["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">") or None)
    # RFC 3834: out-of-office robots must not answer an automatic message.
    mime["Auto-Submitted"] = "auto-generated"
    mime["X-Secure-Access-Template"] = message.template
    mime.set_content(message.body)
    return mime


class SmtpMailer:
    """One SMTP connection per message: the worker sends a trickle, not a flood."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        mime = to_mime(message, self.sender)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(mime)
        except smtplib.SMTPRecipientsRefused as error:
            # One recipient per message, so "all refused" means ours was.
            codes = [code for code, _ in error.recipients.values()]
            raise _classify(codes[0] if codes else 0, "recipient refused") from None
        except smtplib.SMTPDataError as error:
            raise _classify(error.smtp_code, "message refused") from None
        except smtplib.SMTPResponseException as error:
            raise MailDeliveryError(f"SMTP {error.smtp_code} from {self.host}") from None
        except (smtplib.SMTPException, OSError) as error:
            raise MailDeliveryError(
                f"SMTP server {self.host}:{self.port} unavailable ({type(error).__name__})"
            ) from None


def _classify(code: int, what: str) -> MailDeliveryError:
    # Only the code goes in the message: server texts often quote the address back.
    if 500 <= code < 600:
        return PermanentMailError(f"SMTP {code}: {what}")
    return MailDeliveryError(f"SMTP {code}: {what}, will retry")
