"""What every mailer is: one method, ``send``, and two kinds of failure.

The outbox worker is the only caller. It needs to know one thing about a failure: is it
worth trying again? :class:`MailDeliveryError` (a provider outage, a full queue, a greylisting
server) means yes, later; :class:`PermanentMailError` (an address the provider refuses) means
no, never, so the message is given up at once instead of being retried for a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class EmailMessage:
    """One rendered email, ready for any mailer.

    ``subject`` and ``body`` are our own plain-text rendering (used by SMTP and the development
    outbox). GOV.UK Notify keeps its own copy of each template, so it is sent ``template``'s
    Notify id and ``personalisation`` instead. ``reference`` is our outbox id, for tracing a
    message through a provider's logs; it never carries personal data.
    """

    to: str
    template: str
    subject: str
    body: str
    personalisation: dict[str, str] = field(default_factory=dict)
    reference: str | None = None


class MailDeliveryError(Exception):
    """The message was not sent this time, but may be later: retry with back-off.

    The message text ends up in the outbox row's ``last_error`` and the logs, so it must
    describe the failure without quoting the message (never a link or personalisation).
    """


class PermanentMailError(MailDeliveryError):
    """The message can never be sent as it is (for example, the address is refused).

    A subclass of :class:`MailDeliveryError` so code that only cares "did it go?" can catch one
    type; the outbox checks for this one first and gives the message up without retrying.
    """


class Mailer(Protocol):
    """Anything that can send an :class:`EmailMessage`, raising the errors above on failure."""

    def send(self, message: EmailMessage) -> None: ...
