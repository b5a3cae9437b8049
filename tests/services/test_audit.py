"""The audit log: rows and AUDIT-level log lines, committed with the action, never secrets."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.logging import AUDIT
from idp.models import AuditEvent
from idp.services import audit
from idp.services.transaction import transaction


def test_record_writes_a_row_and_an_audit_log_line(app, caplog):
    caplog.set_level(AUDIT, logger="idp.audit")
    with transaction():
        audit.record("user.unlocked", actor="helpdesk-1", target="user-1", reason="ticket 42")
    row = db.session.scalar(select(AuditEvent))
    assert (row.event, row.actor_id, row.target_id, row.outcome, row.reason) == (
        "user.unlocked",
        "helpdesk-1",
        "user-1",
        "success",
        "ticket 42",
    )
    assert any(r.levelno == AUDIT and "user.unlocked" in r.getMessage() for r in caplog.records)
    assert logging.getLevelName(AUDIT) == "AUDIT"


def failing_action() -> None:
    with transaction():
        audit.record("user.deactivated", actor="a", target="b")
        raise RuntimeError("the action failed")


def test_event_is_not_kept_when_the_action_fails(app):
    with pytest.raises(RuntimeError):
        failing_action()
    assert db.session.scalar(select(AuditEvent)) is None


@pytest.mark.parametrize("key", ["password", "token", "client_secret", "code", "Refresh_Token"])
def test_secrets_are_refused(app, key):
    with pytest.raises(ValueError, match="secrets"):
        audit.record("x", actor="a", **{key: "hunter2"})


def test_request_context_is_captured(app):
    with app.test_request_context(
        "/", headers={"User-Agent": "pytest-agent"}, environ_base={"REMOTE_ADDR": "192.0.2.7"}
    ):
        row = audit.record("sign_in.failed", actor=None, outcome=audit.FAILURE)
    assert (row.ip, row.user_agent) == ("192.0.2.7", "pytest-agent")
