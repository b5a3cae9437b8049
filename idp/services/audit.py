"""The audit log: every security event is a row in ``audit_events`` and a log line at AUDIT level.

Rows are added to the caller's unit of work, so an action and its record commit together, or
neither does. Events about failures (a wrong password) are committed by the caller too, before
it reports the failure. Secrets never go in: details with a secret-looking key are refused.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import g, has_request_context, request

from idp.extensions import db
from idp.logging import AUDIT
from idp.models.audit import AuditEvent

log = logging.getLogger("idp.audit")

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
    bad = _FORBIDDEN_KEYS.intersection(k.lower() for k in details)
    if bad:
        raise ValueError(f"audit details must not carry secrets: {sorted(bad)}")
    ip = user_agent = request_id = None
    if has_request_context():
        ip = request.remote_addr
        user_agent = (request.user_agent.string or "")[:512] or None
        request_id = g.get("request_id")
    row = AuditEvent(
        event=event,
        outcome=outcome,
        actor_id=actor,
        target_type=target_type,
        target_id=target,
        reason=reason,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
        details=details,
    )
    db.session.add(row)
    db.session.flush()
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
    return row
