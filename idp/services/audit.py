"""The audit log: every security event is a row in ``audit_events`` and a log line at AUDIT level.

Security events (security-requirements.md K03: sign-ins, lockouts, MFA and helpdesk changes,
refusals) go through :func:`record`: the row is added to the caller's unit of work, so an
action and its record commit together, or neither does. Events about failures (a wrong
password) are committed by the caller too, before it reports the failure.

Routine high-volume records (``oidc.token_issued``, one per token grant) go through
:func:`record_routine`. With ``audit_batch_seconds`` above 0 they are handed to this process's
:class:`~idp.services.audit_writer.AuditWriter`, which writes them in batches, one multi-row
INSERT and one commit every ``audit_batch_seconds`` (issue 4: one INSERT and one COMMIT per
grant were most of the database's work at the token endpoint). Redis is never involved, so
losing Redis still never loses an audit record (DESIGN.md). The trade: a process killed with
SIGKILL loses the routine rows of its last interval at most; a normal exit writes them first.
With ``audit_batch_seconds`` 0 (the test default) they are written in the caller's transaction.

Secrets never go in: details with a secret-looking key are refused, in both paths.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, has_request_context, request
from sqlalchemy import insert

from idp.extensions import db
from idp.logging import AUDIT
from idp.models.audit import AuditEvent
from idp.models.base import utcnow
from idp.services.audit_writer import AuditWriter

log = logging.getLogger("idp.audit")
#: One statement object, so SQLAlchemy compiles it once (see :func:`record_routine`).
_INSERT = insert(AuditEvent.__table__)  # type: ignore[arg-type]  # Core: no ORM layer at all

SUCCESS = "success"
FAILURE = "failure"
DENIED = "denied"

# Keys that must never reach the audit log or the logs (K03).
_FORBIDDEN_KEYS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "otp",
        "totp",
        "recovery_code",
    }
)


@dataclass(frozen=True)
class RequestOrigin:
    """Where an event came from: the request's IP, user agent and request id (all optional)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], request_id: str | None) -> RequestOrigin:
        """From a WSGI environ: a Flask request's, or one the machine lane answers itself."""
        return cls(
            ip=environ.get("REMOTE_ADDR"),
            user_agent=(environ.get("HTTP_USER_AGENT") or "")[:512] or None,
            request_id=request_id,
        )


def request_origin() -> RequestOrigin:
    """The current Flask request's origin; all None outside a request (the worker, the CLI)."""
    if not has_request_context():
        return RequestOrigin()
    return RequestOrigin.from_environ(request.environ, g.get("request_id"))


def _refuse_secrets(details: dict[str, Any]) -> None:
    """K03: a detail key that looks like a secret is a bug in the caller; refuse the event."""
    bad = _FORBIDDEN_KEYS.intersection(k.lower() for k in details)
    if bad:
        raise ValueError(f"audit details must not carry secrets: {sorted(bad)}")


def _context(details: dict[str, Any]) -> dict[str, str | None]:
    """Refuse secret-looking detail keys (K03); the request's IP, user agent and request id."""
    _refuse_secrets(details)
    origin = request_origin()
    return {"ip": origin.ip, "user_agent": origin.user_agent, "request_id": origin.request_id}


def _log_line(
    event: str,
    outcome: str,
    actor: str | None,
    target: str | None,
    target_type: str | None,
    reason: str | None,
    details: dict[str, Any],
) -> None:
    """The AUDIT-level log line that mirrors each row (structured under ``audit``)."""
    if not log.isEnabledFor(AUDIT):
        return
    log.log(
        AUDIT,
        "%s %s actor=%s target=%s",
        event,
        outcome,
        actor,
        target,
        extra={
            "audit": {
                "event": event,
                "outcome": outcome,
                "actor": actor,
                "target": target,
                "target_type": target_type,
                "reason": reason,
                "details": details,
            }
        },
    )


def record(
    event: str,
    *,
    actor: str | None,
    target: str | None = None,
    outcome: str = SUCCESS,
    target_type: str | None = None,
    reason: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Record one security event and return the (flushed) row."""
    row = AuditEvent(
        event=event,
        outcome=outcome,
        actor_id=actor,
        target_type=target_type,
        target_id=target,
        reason=reason,
        details=details,
        **_context(details),
    )
    db.session.add(row)
    db.session.flush()
    _log_line(event, outcome, actor, target, target_type, reason, details)
    return row


def routine_batched() -> bool:
    """Whether :func:`record_routine` hands rows to the batch writer in this app (so they are
    not part of the caller's transaction) rather than writing them in it."""
    return current_app.extensions.get("audit_writer") is not None


def record_routine(
    event: str,
    *,
    actor: str | None,
    target: str | None = None,
    outcome: str = SUCCESS,
    target_type: str | None = None,
    reason: str | None = None,
    origin: RequestOrigin | None = None,
    **details: Any,
) -> None:
    """Record a high-volume routine event (a token issued) where nothing needs the row back.

    Batched (``audit_batch_seconds`` > 0): the row goes to this process's
    :class:`~idp.services.audit_writer.AuditWriter` and nothing touches ``db.session``, so the
    caller's transaction neither carries nor waits for it; call this only once what it
    records has happened (committed). Synchronous (0): one Core ``INSERT`` in the caller's
    transaction, without the ORM's unit-of-work flush (about a fifth of the CPU of
    :func:`record`; issue 4).

    ``origin`` defaults to the current request's (:func:`request_origin`); pass it when
    recording outside a request context. Needs an app context either way.
    """
    _refuse_secrets(details)
    where = origin if origin is not None else request_origin()
    row = {
        "occurred_at": utcnow(),
        "event": event,
        "outcome": outcome,
        "actor_id": actor,
        "target_type": target_type,
        "target_id": target,
        "reason": reason,
        "details": details,
        "ip": where.ip,
        "user_agent": where.user_agent,
        "request_id": where.request_id,
    }
    writer: AuditWriter | None = current_app.extensions.get("audit_writer")
    if writer is not None:
        writer.write(row)
    else:
        db.session.execute(_INSERT, row)
    _log_line(event, outcome, actor, target, target_type, reason, details)
