"""The durable outbox: queue a message with the action that causes it; a worker sends it later.

Why an outbox (DESIGN.md §9, "nothing is lost"): :func:`enqueue_email` adds a row to the
caller's unit of work, so the email exists if and only if the action committed (no reset email
for a rolled-back reset, no reset without its email). The worker (``flask --app idp worker``)
calls :func:`deliver_due`, which sends each due row through the handler for its kind and
records the outcome. A provider outage only delays: failed rows are retried with growing gaps
(``outbox_retry_delays_seconds``) and given up (``DEAD``) only after ``outbox_max_attempts``,
or at once when the provider says the message can never be sent.

Claiming: on PostgreSQL each row is taken with ``SELECT ... FOR UPDATE SKIP LOCKED`` and its
outcome committed before the next is taken, so any number of workers share the queue and no
two send the same row, and one bad message never blocks the others. SQLite has no row locks
(the clause is left out); the embedded set-up is one process with one worker.

Delivery is at least once: if the worker dies after the provider accepted a message but before
the commit, the row is still pending and is sent again. For email that is a rare duplicate; for
back-channel logout it is harmless (a repeated logout of an ended session).

Payloads can hold one-time links, so they are stored encrypted (context "outbox"), and
neither ``last_error``, the logs nor the audit trail ever quote them.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from idp.config import Settings
from idp.extensions import db
from idp.models.base import utcnow
from idp.models.outbox import OutboxKind, OutboxMessage, OutboxStatus
from idp.services import audit, crypto
from idp.services.mail import EmailMessage, MailDeliveryError, PermanentMailError, get_mailer
from idp.services.mail import templates as email_templates

log = logging.getLogger(__name__)

PAYLOAD_CONTEXT = "outbox"
_LAST_ERROR_LENGTH = 200


class DeliveryError(Exception):
    """A handler could not deliver this time; the row is retried later.

    Any other exception from a handler is treated the same way (a bug or an outage should
    delay a message, not lose it); raise this one to give a clearer ``last_error``.
    """


class PermanentDeliveryError(DeliveryError):
    """A handler says this message can never be delivered: give it up now, without retries."""


@dataclass(frozen=True)
class Handler:
    """How to deliver one kind of outbox message, and how its outcome is audited.

    ``audit_prefix`` names the audit events (``<prefix>.sent``, ``<prefix>.failed``).
    ``audit_target`` turns the row's recipient into what the audit trail may show: an email
    address is masked there, a client id is not personal and is shown as it is.
    """

    deliver: Callable[[OutboxMessage], None]
    audit_prefix: str
    audit_target: Callable[[str], str]


_HANDLERS: dict[OutboxKind, Handler] = {}


def register_handler(
    kind: OutboxKind,
    deliver: Callable[[OutboxMessage], None],
    *,
    audit_prefix: str | None = None,
    audit_target: Callable[[str], str] | None = None,
) -> Handler | None:
    """Make ``deliver`` the sender of ``kind`` rows; return the handler it replaces, if any.

    ``deliver`` gets the row (use :func:`payload_of` for its data), returns on success and
    raises on failure: :class:`PermanentDeliveryError` to give up, anything else to retry.
    """
    previous = _HANDLERS.get(kind)
    _HANDLERS[kind] = Handler(
        deliver=deliver,
        audit_prefix=audit_prefix or kind.value,
        audit_target=audit_target or (lambda recipient: recipient),
    )
    return previous


def unregister_handler(kind: OutboxKind) -> Handler | None:
    return _HANDLERS.pop(kind, None)


def get_handler(kind: OutboxKind) -> Handler | None:
    return _HANDLERS.get(kind)


# -- queueing ----------------------------------------------------------------------------


def enqueue(
    kind: OutboxKind, recipient: str, template: str, payload: Mapping[str, Any]
) -> OutboxMessage:
    """Add one message to the caller's unit of work (flushed, not committed)."""
    plaintext = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True).encode()
    message = OutboxMessage(
        kind=kind,
        recipient=recipient,
        template=template,
        payload_ciphertext=crypto.encrypt(plaintext, context=PAYLOAD_CONTEXT),
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    db.session.add(message)
    db.session.flush()
    return message


def enqueue_email(to: str, template: str, **personalisation: object) -> OutboxMessage:
    """Queue email ``template`` to ``to``, committed (or not) with the caller's action.

    The values are checked now, so a missing link fails the action rather than the send.
    Links must be built from ``settings.public_base_url``, never from the request.
    """
    stored = email_templates.normalise(template, personalisation)
    return enqueue(OutboxKind.EMAIL, to.strip(), template, stored)


def payload_of(message: OutboxMessage) -> dict[str, Any]:
    """The decrypted data of an outbox row."""
    data: dict[str, Any] = json.loads(
        crypto.decrypt(message.payload_ciphertext, context=PAYLOAD_CONTEXT)
    )
    return data


# -- delivery ----------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one :func:`deliver_due` call did, for the worker's log line."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    sent_ids: list[int] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.dead

    def __str__(self) -> str:
        return f"sent={self.sent} retried={self.retried} dead={self.dead}"


def deliver_due(now: datetime | None = None, limit: int = 50) -> DeliveryReport:
    """Send up to ``limit`` due messages, one transaction each; return what happened.

    Database errors are not caught here: the worker loop rolls back, waits and tries again,
    and every row not yet committed as sent or failed is still pending.
    """
    settings: Settings = current_app.extensions["settings"]
    moment = now or utcnow()
    report = DeliveryReport()
    for _ in range(limit):
        row = _claim_next(moment)
        if row is None:
            break
        _attempt(row, moment, settings, report)
        db.session.commit()  # releases the row lock; the outcome is durable from here on
    return report


def _claim_next(moment: datetime) -> OutboxMessage | None:
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.next_attempt_at <= moment,
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(1)
        # PostgreSQL: lock the row, skipping rows another worker holds. SQLite: no-op.
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(query).first()


def _attempt(
    row: OutboxMessage, moment: datetime, settings: Settings, report: DeliveryReport
) -> None:
    handler = _HANDLERS.get(row.kind) or _unhandled(row.kind)
    row.attempts += 1
    try:
        handler.deliver(row)
    except PermanentDeliveryError as error:
        _give_up(row, handler, _describe(error), report)
    except Exception as error:
        if not isinstance(error, DeliveryError):
            # Where it went wrong, but not the exception's text: that could quote the payload.
            log.error(
                "outbox %s %s: unexpected %s at\n%s",
                row.kind.value,
                row.id,
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)).rstrip(),
            )
        description = _describe(error)
        if row.attempts >= settings.outbox_max_attempts:
            _give_up(row, handler, description, report)
            return
        delays = settings.outbox_retry_delays_seconds
        delay = delays[min(row.attempts, len(delays)) - 1]
        row.last_error = description
        row.next_attempt_at = moment + timedelta(seconds=delay)
        report.retried += 1
        log.warning(
            "outbox %s %s: attempt %d failed (%s); next try in %ds",
            row.kind.value,
            row.id,
            row.attempts,
            description,
            delay,
        )
    else:
        row.status = OutboxStatus.SENT
        row.sent_at = moment
        row.last_error = None
        report.sent += 1
        report.sent_ids.append(row.id)
        _audit(row, handler, audit.SUCCESS, reason=None)


def _unhandled(kind: OutboxKind) -> Handler:
    """Stands in when no handler is registered (code not deployed on this worker yet).

    The row is kept and retried rather than failed, so deploying the handler delivers it.
    """

    def deliver(_row: OutboxMessage) -> None:
        raise DeliveryError(f"no handler registered for {kind.value}")

    return Handler(deliver=deliver, audit_prefix=kind.value, audit_target=lambda r: r)


def _give_up(
    row: OutboxMessage, handler: Handler, description: str, report: DeliveryReport
) -> None:
    row.status = OutboxStatus.DEAD
    row.last_error = description
    report.dead += 1
    log.error(
        "outbox %s %s: given up after %d attempt(s): %s",
        row.kind.value,
        row.id,
        row.attempts,
        description,
    )
    _audit(row, handler, audit.FAILURE, reason=description)


def _audit(row: OutboxMessage, handler: Handler, outcome: str, reason: str | None) -> None:
    audit.record(
        f"{handler.audit_prefix}.{'sent' if outcome == audit.SUCCESS else 'failed'}",
        actor="system",
        target=handler.audit_target(row.recipient)[:64],
        target_type=row.kind.value,
        outcome=outcome,
        reason=reason,
        outbox_id=row.id,
        template=row.template,
        attempts=row.attempts,
    )


def _describe(error: Exception) -> str:
    """A short, payload-free description for ``last_error`` and the logs.

    Delivery errors are written not to quote the message, so their text is kept. Other
    exceptions (a bug, a library error) could carry anything, so only their type is kept; the
    log line gives the traceback's frames to find the bug.
    """
    text = str(error) if isinstance(error, DeliveryError) else type(error).__name__
    return text[:_LAST_ERROR_LENGTH]


# -- email -------------------------------------------------------------------------------


def mask_email(address: str) -> str:
    """``jane.smith@school.sch.uk`` → ``j***@school.sch.uk``: recognisable, not harvestable."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def deliver_email(row: OutboxMessage) -> None:
    """The email handler: decrypt, render our template, hand it to the configured mailer."""
    stored = payload_of(row)
    subject, body = email_templates.render(row.template, stored)
    message = EmailMessage(
        to=row.recipient,
        template=row.template,
        subject=subject,
        body=body,
        personalisation=email_templates.personalisation(row.template, stored),
        reference=f"outbox-{row.id}",
    )
    try:
        get_mailer().send(message)
    except PermanentMailError as error:
        raise PermanentDeliveryError(str(error)) from error
    except MailDeliveryError as error:
        raise DeliveryError(str(error)) from error


register_handler(OutboxKind.EMAIL, deliver_email, audit_prefix="email", audit_target=mask_email)
