"""Email through the durable outbox: queued with the action, sent by the worker, never lost.

Every mailer here is a real implementation talking to a real server: the development outbox
writes real files, the SMTP mailer speaks SMTP to a small server on loopback, and the Notify
mailer uses GOV.UK's own client against a stand-in Notify API on loopback. Time moves with
``time_machine``; nothing sleeps.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage as MimeMessage
from email.parser import BytesParser

import pytest
import redis
import time_machine
from flask import Flask, jsonify, request
from notifications_python_client.authentication import decode_jwt_token, get_token_issuer
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import create_engine, func, select, text
from werkzeug.serving import make_server

from idp.cli import worker as worker_cli
from idp.extensions import db
from idp.models import AuditEvent, OutboxKind, OutboxMessage, OutboxStatus
from idp.services import mail, outbox
from idp.services.mail import (
    DevOutboxMailer,
    EmailMessage,
    MailDeliveryError,
    NotifyMailer,
    PermanentMailError,
    SmtpMailer,
)
from idp.services.mail import templates as email_templates
from idp.services.mail.dev_outbox import list_messages
from idp.services.transaction import transaction
from tests.conftest import BACKEND

START = datetime(2026, 12, 5, 15, 30, tzinfo=UTC)
RESET_LINK = "http://localhost/reset-password/9fQ2-secret-token-xyz"
ADDRESS = "jane.smith@hill-school.sch.uk"


# -- a real SMTP server on loopback ------------------------------------------------------------


@dataclass
class SmtpServer:
    """The SMTP conversation smtplib needs, with scripted replies to RCPT (greylisting etc.)."""

    host: str
    port: int
    rcpt_replies: deque[str] = field(default_factory=deque)
    messages: list[MimeMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)


class _SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        state: SmtpServer = self.server.state  # type: ignore[attr-defined]
        sender, recipients = "", []
        self.reply("220 localhost test SMTP ready")
        for raw in self.rfile:
            command = raw.decode().rstrip("\r\n")
            verb = command[:4].upper()
            if verb == "EHLO":
                self.reply("250-localhost")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 localhost")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].split()[0].strip("<>"), []
                self.reply("250 2.1.0 OK")
            elif verb == "RCPT":
                answer = state.rcpt_replies.popleft() if state.rcpt_replies else "250 2.1.5 OK"
                if answer.startswith("250"):
                    recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply(answer)
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                for data_line in self.rfile:
                    if data_line in (b".\r\n", b".\n"):
                        break
                    lines.append(data_line[1:] if data_line.startswith(b"..") else data_line)
                # Stored with local line endings, as a mail server's queue file would be.
                raw_message = b"".join(lines).replace(b"\r\n", b"\n")
                state.messages.append(BytesParser(policy=policy.default).parsebytes(raw_message))
                state.envelopes.append((sender, recipients))
                self.reply("250 2.0.0 Queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not recognised")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    state = SmtpServer(*server.server_address[:2])
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


# -- a stand-in GOV.UK Notify API on loopback ----------------------------------------------------

SERVICE_ID = "4b6b0d87-3b4c-4a0e-9a43-0a4d1c1b2c3d"
NOTIFY_SECRET = "2f1c6a0e-5d7b-4f34-8c1e-9e7a6b5c4d3e"
NOTIFY_API_KEY = f"secure_access_test-{SERVICE_ID}-{NOTIFY_SECRET}"
TEMPLATE_IDS = {name: str(uuid.uuid4()) for name in email_templates.MESSAGE_NAMES}


@dataclass
class FakeNotify:
    url: str
    received: list[dict[str, object]] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)


def _fake_notify_app(state: FakeNotify) -> Flask:
    app = Flask("fake_notify")

    @app.post("/v2/notifications/email")
    def send_email():  # the shape of Notify's answers, from its API documentation
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if get_token_issuer(token) != SERVICE_ID or not decode_jwt_token(token, NOTIFY_SECRET):
            return jsonify(status_code=403, errors=[{"error": "AuthError"}]), 403
        state.received.append(request.get_json())
        status = state.statuses.popleft() if state.statuses else 201
        if status == 400:
            error = {"error": "ValidationError", "message": "email_address Not a valid email"}
            return jsonify(status_code=400, errors=[error]), 400
        if status != 201:
            return jsonify(
                status_code=status, errors=[{"error": "Error", "message": "Down"}]
            ), status
        body = request.get_json()
        return jsonify(
            id=str(uuid.uuid4()),
            reference=body.get("reference"),
            content={"subject": "subject", "body": "body", "from_email": "x@notify"},
            uri="/v2/notifications/1",
            template={"id": body["template_id"], "version": 1, "uri": "/v2/template/1"},
        ), 201

    return app


@pytest.fixture
def fake_notify() -> Iterator[FakeNotify]:
    state = FakeNotify(url="")
    server = make_server("127.0.0.1", 0, _fake_notify_app(state), threaded=True)
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    thread.join()


def closed_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def use_mailer(app, monkeypatch):
    """Make ``mailer`` the app's mailer for this test (the worker finds it with get_mailer)."""

    def use(mailer):
        monkeypatch.setitem(app.extensions, "mailer", mailer)
        return mailer

    return use


@pytest.fixture
def dev_outbox(tmp_path, settings, use_mailer) -> DevOutboxMailer:
    return use_mailer(DevOutboxMailer(tmp_path / "outbox", settings.mail_from))


@pytest.fixture
def with_settings(app, monkeypatch):
    """Run this test with some settings changed (restored afterwards)."""

    def change(**values):
        changed = app.extensions["settings"].model_copy(update=values)
        monkeypatch.setitem(app.extensions, "settings", changed)
        return changed

    return change


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@contextmanager
def backchannel_handler(deliver) -> Iterator[None]:
    """Register ``deliver`` for back-channel logout rows for a block (none with None)."""
    previous = outbox.unregister_handler(OutboxKind.BACKCHANNEL_LOGOUT)
    if deliver is not None:
        outbox.register_handler(OutboxKind.BACKCHANNEL_LOGOUT, deliver)
    try:
        yield
    finally:
        outbox.unregister_handler(OutboxKind.BACKCHANNEL_LOGOUT)
        if previous is not None:
            outbox.register_handler(
                OutboxKind.BACKCHANNEL_LOGOUT,
                previous.deliver,
                audit_prefix=previous.audit_prefix,
                audit_target=previous.audit_target,
            )


def queue_reset_email(to: str = ADDRESS) -> int:
    with transaction():
        row = outbox.enqueue_email(
            to, "password_reset", link=RESET_LINK, expires_at=START + timedelta(minutes=30)
        )
    return row.id


def outbox_row(row_id: int) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, row_id)


def audit_events(event: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == event)))


# -- queueing with the action --------------------------------------------------------------------


def test_a_rolled_back_action_queues_no_email(dev_outbox):
    def reset_that_fails() -> None:
        with transaction():
            outbox.enqueue_email(ADDRESS, "password_reset", link=RESET_LINK, expires_at=START)
            raise RuntimeError("the reset itself failed")

    with pytest.raises(RuntimeError):
        reset_that_fails()

    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert outbox.deliver_due().handled == 0
    assert list_messages(dev_outbox.directory) == []


def test_a_committed_email_is_sent_by_the_worker_through_the_dev_outbox(dev_outbox, clock):
    row_id = queue_reset_email()

    report = outbox.deliver_due()

    assert (report.sent, report.retried, report.dead) == (1, 0, 0)
    [message] = list_messages(dev_outbox.directory)
    assert message.to == ADDRESS
    assert message.subject == "Reset your Secure Access password"
    assert message.template == "password_reset"
    assert RESET_LINK in message.body
    assert "It stops working at 4pm on 5 December 2026." in message.body
    assert "If you did not ask to reset your password, ignore this email." in message.body
    assert (dev_outbox.directory / message.name).is_file()
    row = outbox_row(row_id)
    assert row.status == OutboxStatus.SENT
    assert row.sent_at == START
    assert row.attempts == 1
    [event] = audit_events("email.sent")
    assert event.outcome == "success"
    assert event.target_id == "j***@hill-school.sch.uk"
    assert event.details == {"outbox_id": row_id, "template": "password_reset", "attempts": 1}


def test_the_payload_is_encrypted_at_rest(dev_outbox):
    row_id = queue_reset_email()

    stored = db.session.execute(
        text("SELECT payload_ciphertext FROM outbox_messages WHERE id = :id"), {"id": row_id}
    ).scalar_one()
    assert "secret-token" not in stored
    assert "reset-password" not in stored
    assert outbox.payload_of(outbox_row(row_id))["link"] == RESET_LINK


def test_wrong_personalisation_fails_the_action_not_the_send(app):
    with pytest.raises(email_templates.InvalidPersonalisation), transaction():
        outbox.enqueue_email(ADDRESS, "password_reset", expires_at=START)  # no link
    with pytest.raises(email_templates.InvalidPersonalisation), transaction():
        outbox.enqueue_email(ADDRESS, "password_reset", link=RESET_LINK, expires_at=START, x="1")
    with pytest.raises(email_templates.InvalidPersonalisation), transaction():
        outbox.enqueue_email(
            ADDRESS, "password_reset", link=RESET_LINK, expires_at=datetime(2026, 1, 1)
        )  # a naive time is ambiguous
    with pytest.raises(email_templates.UnknownMessage), transaction():
        outbox.enqueue_email(ADDRESS, "no_such_message", link=RESET_LINK)

    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


# -- retries, giving up, and never sending twice --------------------------------------------------


def test_a_temporary_smtp_refusal_is_retried_later_and_then_sent(
    smtp_server, use_mailer, settings, clock
):
    use_mailer(SmtpMailer(smtp_server.host, smtp_server.port, sender=settings.mail_from))
    smtp_server.rcpt_replies.append("451 4.7.1 Greylisted, please try again later")
    row_id = queue_reset_email()

    first = outbox.deliver_due()

    assert (first.sent, first.retried) == (0, 1)
    row = outbox_row(row_id)
    assert row.status == OutboxStatus.PENDING
    assert row.attempts == 1
    assert row.next_attempt_at == START + timedelta(seconds=30)
    assert "451" in row.last_error
    assert RESET_LINK not in row.last_error
    assert smtp_server.messages == []
    assert audit_events("email.sent") == audit_events("email.failed") == []

    clock.shift(timedelta(seconds=29))
    assert outbox.deliver_due().handled == 0  # not due yet

    clock.shift(timedelta(seconds=1))
    assert outbox.deliver_due().sent == 1

    [sent] = smtp_server.messages
    assert RESET_LINK in sent.get_body(("plain",)).get_content()
    row = outbox_row(row_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 2, None)
    assert len(audit_events("email.sent")) == 1


def test_a_permanent_refusal_gives_up_at_once_and_is_audited(
    smtp_server, use_mailer, settings, clock
):
    use_mailer(SmtpMailer(smtp_server.host, smtp_server.port, sender=settings.mail_from))
    smtp_server.rcpt_replies.append("550 5.1.1 No such user here")
    row_id = queue_reset_email()

    report = outbox.deliver_due()

    assert (report.sent, report.retried, report.dead) == (0, 0, 1)
    row = outbox_row(row_id)
    assert row.status == OutboxStatus.DEAD
    assert row.attempts == 1
    assert "550" in row.last_error
    [event] = audit_events("email.failed")
    assert event.outcome == "failure"
    assert event.target_id == "j***@hill-school.sch.uk"
    assert "550" in event.reason
    assert RESET_LINK not in str(event.details) + event.reason
    clock.shift(timedelta(days=2))
    assert outbox.deliver_due().handled == 0  # given up for good


def test_retries_back_off_and_give_up_after_the_last_attempt(
    smtp_server, use_mailer, with_settings, clock
):
    settings = with_settings(outbox_max_attempts=3, outbox_retry_delays_seconds=[30, 120])
    use_mailer(SmtpMailer(smtp_server.host, smtp_server.port, sender=settings.mail_from))
    smtp_server.rcpt_replies.extend(["421 4.3.0 Service not available"] * 3)
    row_id = queue_reset_email()

    assert outbox.deliver_due().retried == 1
    assert outbox_row(row_id).next_attempt_at == START + timedelta(seconds=30)
    clock.shift(timedelta(seconds=30))
    assert outbox.deliver_due().retried == 1
    assert outbox_row(row_id).next_attempt_at == START + timedelta(seconds=30 + 120)
    clock.shift(timedelta(seconds=120))
    assert outbox.deliver_due().dead == 1

    row = outbox_row(row_id)
    assert (row.status, row.attempts) == (OutboxStatus.DEAD, 3)
    assert len(audit_events("email.failed")) == 1
    assert smtp_server.messages == []


def test_repeated_deliveries_never_send_a_message_twice(dev_outbox):
    for number in range(3):
        queue_reset_email(f"person{number}@hill-school.sch.uk")

    assert outbox.deliver_due(limit=2).sent == 2
    assert outbox.deliver_due().sent == 1
    assert outbox.deliver_due().handled == 0

    recipients = sorted(m.to for m in list_messages(dev_outbox.directory))
    assert recipients == [f"person{n}@hill-school.sch.uk" for n in range(3)]
    assert len(audit_events("email.sent")) == 3


@pytest.mark.postgres_only
@pytest.mark.skipif(BACKEND != "server", reason="row locks need PostgreSQL")
def test_two_workers_at_once_skip_each_others_messages(app):
    """While one worker is sending a row, a second worker skips it and takes the next."""
    with transaction():
        first = outbox.enqueue(OutboxKind.BACKCHANNEL_LOGOUT, "service-a", "logout", {"n": 1})
        second = outbox.enqueue(OutboxKind.BACKCHANNEL_LOGOUT, "service-b", "logout", {"n": 2})
    first_id, second_id = first.id, second.id
    delivered: list[int] = []
    other_worker: list[outbox.DeliveryReport] = []

    def run_other_worker() -> None:
        with app.app_context():
            other_worker.append(outbox.deliver_due())

    def deliver(row: OutboxMessage) -> None:
        delivered.append(row.id)
        if len(delivered) == 1:  # the first worker is mid-send, holding its row
            thread = threading.Thread(target=run_other_worker)
            thread.start()
            thread.join()

    with backchannel_handler(deliver):
        report = outbox.deliver_due()

    assert sorted(delivered) == [first_id, second_id]  # each exactly once
    assert report.sent_ids == [first_id]
    assert other_worker[0].sent_ids == [second_id]


def test_a_kind_with_no_handler_waits_rather_than_being_lost(app):
    with backchannel_handler(None):
        with transaction():
            row = outbox.enqueue(OutboxKind.BACKCHANNEL_LOGOUT, "service-a", "logout", {})
        report = outbox.deliver_due()
    assert report.retried == 1
    stored = outbox_row(row.id)
    assert stored.status == OutboxStatus.PENDING
    assert stored.last_error == "no handler registered for backchannel_logout"


def test_an_unexpected_error_in_a_handler_is_retried_without_quoting_it(app, caplog):
    def deliver(row: OutboxMessage) -> None:
        raise KeyError(outbox.payload_of(row)["link"])  # a bug that would leak the payload

    with backchannel_handler(deliver):
        with transaction():
            row = outbox.enqueue(
                OutboxKind.BACKCHANNEL_LOGOUT, "service-a", "logout", {"link": RESET_LINK}
            )
        assert outbox.deliver_due().retried == 1
    assert outbox_row(row.id).last_error == "KeyError"
    assert "unexpected KeyError" in caplog.text
    assert "deliver" in caplog.text  # the frame where it happened
    assert RESET_LINK not in caplog.text


# -- the mailers -------------------------------------------------------------------------------


def test_smtp_mailer_delivers_to_an_smtp_server(smtp_server, settings):
    mailer = SmtpMailer(smtp_server.host, smtp_server.port, sender=settings.mail_from)
    mailer.send(
        EmailMessage(
            to=ADDRESS,
            template="password_reset",
            subject="Reset your Secure Access password",
            body=f"Use this link: {RESET_LINK}\nSiân's school\n",
        )
    )

    [(sender, recipients)] = smtp_server.envelopes
    assert sender == "no-reply@secure-access.invalid"
    assert recipients == [ADDRESS]
    [message] = smtp_server.messages
    assert message["To"] == ADDRESS
    assert message["Subject"] == "Reset your Secure Access password"
    assert message["Auto-Submitted"] == "auto-generated"
    assert (
        message.get_body(("plain",)).get_content()
        == f"Use this link: {RESET_LINK}\nSiân's school\n"
    )


def test_smtp_mailer_reports_an_unreachable_server_as_retryable(settings):
    mailer = SmtpMailer("127.0.0.1", closed_port(), sender=settings.mail_from)
    message = EmailMessage(to=ADDRESS, template="password_reset", subject="s", body="b")
    with pytest.raises(MailDeliveryError) as raised:
        mailer.send(message)
    assert not isinstance(raised.value, PermanentMailError)


def test_settings_choose_the_smtp_mailer_and_the_worker_uses_it(
    app, smtp_server, settings, monkeypatch
):
    smtp_settings = settings.model_copy(
        update={
            "mail_backend": "smtp",
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
        }
    )
    monkeypatch.setitem(app.extensions, "mailer", None)
    mail.init_app(app, smtp_settings)
    assert isinstance(mail.get_mailer(), SmtpMailer)
    queue_reset_email()

    assert outbox.deliver_due().sent == 1
    assert len(smtp_server.messages) == 1


def test_notify_mailer_sends_the_template_id_and_personalisation(fake_notify, use_mailer, clock):
    use_mailer(NotifyMailer(NOTIFY_API_KEY, TEMPLATE_IDS, base_url=fake_notify.url))
    with transaction():
        row = outbox.enqueue_email(
            ADDRESS,
            "invitation",
            link="http://localhost/invitation/abc",
            expires_at=START + timedelta(days=7),
            organisation_name="Hill School",
        )

    assert outbox.deliver_due().sent == 1

    [sent] = fake_notify.received
    assert sent == {
        "email_address": ADDRESS,
        "template_id": TEMPLATE_IDS["invitation"],
        "personalisation": {
            "link": "http://localhost/invitation/abc",
            "expires_at": "3:30pm on 12 December 2026",
            "inviter_name": "",
            "organisation_name": "Hill School",
        },
        "reference": f"outbox-{row.id}",
    }


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (429, False), (500, False), (503, False)]
)
def test_notify_errors_are_classified(fake_notify, status, permanent):
    fake_notify.statuses.append(status)
    mailer = NotifyMailer(NOTIFY_API_KEY, TEMPLATE_IDS, base_url=fake_notify.url)
    message = EmailMessage(
        to=ADDRESS, template="password_reset", subject="s", body="b", personalisation={"a": "b"}
    )
    with pytest.raises(MailDeliveryError) as raised:
        mailer.send(message)
    assert isinstance(raised.value, PermanentMailError) is permanent
    assert str(status) in str(raised.value)


def test_notify_unreachable_or_unconfigured_is_retryable():
    unreachable = NotifyMailer(
        NOTIFY_API_KEY, TEMPLATE_IDS, base_url=f"http://127.0.0.1:{closed_port()}"
    )
    no_ids = NotifyMailer(NOTIFY_API_KEY, {}, base_url="http://notify.invalid")
    message = EmailMessage(to=ADDRESS, template="password_reset", subject="s", body="b")
    for mailer in (unreachable, no_ids):
        with pytest.raises(MailDeliveryError) as raised:
            mailer.send(message)
        assert not isinstance(raised.value, PermanentMailError)


def test_a_notify_400_through_the_outbox_is_dead_and_audited(fake_notify, use_mailer):
    use_mailer(NotifyMailer(NOTIFY_API_KEY, TEMPLATE_IDS, base_url=fake_notify.url))
    fake_notify.statuses.append(400)
    row_id = queue_reset_email()

    assert outbox.deliver_due().dead == 1
    assert outbox_row(row_id).status == OutboxStatus.DEAD
    [event] = audit_events("email.failed")
    assert "Notify 400" in event.reason


def test_dev_outbox_lists_newest_first(tmp_path, settings, clock):
    mailer = DevOutboxMailer(tmp_path, settings.mail_from)
    for subject in ("First", "Second", "Third"):
        mailer.send(EmailMessage(to=ADDRESS, template="invitation", subject=subject, body="b\n"))
        clock.shift(timedelta(seconds=1))

    assert [m.subject for m in list_messages(tmp_path)] == ["Third", "Second", "First"]
    assert [m.subject for m in list_messages(tmp_path, limit=1)] == ["Third"]
    assert list_messages(tmp_path)[0].sent_at == START + timedelta(seconds=2)


def test_the_default_mailer_is_the_dev_outbox_under_the_instance_folder(app, settings):
    mailer = mail.build_mailer(settings, app.instance_path)
    assert isinstance(mailer, DevOutboxMailer)
    assert mailer.directory == mail.outbox_directory(app.instance_path)


# -- templates and settings --------------------------------------------------------------------

SAMPLES = {
    "invitation": {"link": "http://localhost/i/1", "expires_at": START, "inviter_name": "Ann"},
    "access_requested": {
        "requester_name": "Ada Lovelace",
        "requester_email": "ada@hill.example",
        "service_name": "Collect",
        "organisation_name": "Hill School",
        "link": "http://localhost/organisations/o/requests/r",
        "reason": "I send the census",
    },
    "access_request_approved": {
        "service_name": "Collect",
        "organisation_name": "Hill School",
        "roles": "Data submitter",
        "link": "https://collect.example/",
        "approver_name": "Sam Patel",
    },
    "access_request_rejected": {
        "service_name": "Collect",
        "organisation_name": "Hill School",
        "reason": "Ask the office",
        "approver_name": "Sam Patel",
    },
    "access_request_escalated": {
        "why": "overdue",
        "requester_name": "Ada Lovelace",
        "requester_email": "ada@hill.example",
        "service_name": "Collect",
        "organisation_name": "Hill School",
        "requested_at": START,
        "days": "14",
    },
    "service_access_granted": {
        "service_name": "Get Information about Pupils",
        "organisation_name": "Hill School",
        "link": "https://pupils.example/start",
        "roles": "Data officer, Viewer",
    },
    "password_reset": {"link": "http://localhost/r/1", "expires_at": START},
    "password_changed": {"reset_link": "http://localhost/forgot", "changed_at": START},
    "email_change_confirm": {"link": "http://localhost/c/1", "expires_at": START},
    "email_changed_notice": {"new_email": "new@hill-school.sch.uk"},
    "account_locked": {"reset_link": "http://localhost/forgot"},
    "mfa_changed": {
        "change": "removed",
        "method": "a security key",
        "reset_link": "http://localhost/forgot",
    },
    "staff_role_changed": {"change": "given", "role_name": "helpdesk admin"},
    "helpdesk_password_reset": {"link": "http://localhost/r/2", "expires_at": START},
    "helpdesk_action": {
        "action": "email_changed",
        "reset_link": "http://localhost/forgot",
        "new_email": "new@hill-school.sch.uk",
    },
    "mfa_reset": {"link": "http://localhost/m/1", "expires_at": START},
    "added_to_organisation": {
        "organisation_name": "Hill School",
        "services": "- Collect (Data submitter)",
        "link": "http://localhost/",
        "added_by": "Sam Patel",
        "approver": "yes",
    },
    "access_changed": {
        "organisation_name": "Hill School",
        "services": "- Collect (Data submitter)",
        "changed_by": "Sam Patel",
    },
    "approver_changed": {"organisation_name": "Hill School", "change": "made"},
    "removed_from_organisation": {"organisation_name": "Hill School", "deactivated": "yes"},
}


def test_every_message_has_a_template_and_a_sample():
    files = {p.stem for p in email_templates.TEMPLATE_DIR.glob("*.txt") if p.stem[0] != "_"}
    assert files == set(email_templates.MESSAGE_NAMES) == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_message_renders_in_plain_english(name):
    subject, body = email_templates.render(name, email_templates.normalise(name, SAMPLES[name]))
    assert subject
    assert "\n" not in subject
    assert "{" not in subject
    assert body.endswith("Department for Education\n")
    assert "{" not in body
    assert "\n\n\n" not in body
    for value in SAMPLES[name].values():
        if isinstance(value, str) and value.startswith("http"):
            assert value in body


def test_times_are_shown_in_uk_time_in_govuk_style():
    show = email_templates.format_time
    assert show(datetime(2026, 12, 5, 15, 30, tzinfo=UTC)) == "3:30pm on 5 December 2026"
    assert show(datetime(2026, 7, 1, 9, 0, tzinfo=UTC)) == "10am on 1 July 2026"  # BST
    assert show(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == "midday on 1 January 2026"
    assert show(datetime(2026, 1, 1, 0, 0, tzinfo=UTC)) == "midnight on 1 January 2026"


def test_notify_needs_a_template_id_for_every_message(settings):
    notify = {"mail_backend": "notify", "notify_api_key": NOTIFY_API_KEY}
    missing = settings.model_copy(update={**notify, "notify_template_ids": {"invitation": "x"}})
    complete = settings.model_copy(update={**notify, "notify_template_ids": TEMPLATE_IDS})

    [problem] = [p for p in missing.problems() if "IDP_NOTIFY_TEMPLATE_IDS" in p]
    assert "password_reset" in problem
    assert "invitation" not in problem
    assert not [p for p in complete.problems() if "NOTIFY" in p]


# -- the worker ----------------------------------------------------------------------------------


def test_worker_once_sends_what_is_due(app, dev_outbox):
    queue_reset_email()

    result = app.test_cli_runner().invoke(args=["worker", "--once"])

    assert result.exit_code == 0, result.output
    assert "sent=1 retried=0 dead=0" in result.output
    [message] = list_messages(dev_outbox.directory)
    assert RESET_LINK in message.body


def test_worker_stops_cleanly_on_sigterm(app, dev_outbox):
    """SIGTERM mid-batch: the batch is finished and recorded, then the worker exits."""

    def deliver(row: OutboxMessage) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with backchannel_handler(deliver):
        with transaction():
            row_id = outbox.enqueue(OutboxKind.BACKCHANNEL_LOGOUT, "service-a", "logout", {}).id
        queue_reset_email()
        result = app.test_cli_runner().invoke(args=["worker", "--interval", "0.1"])

    assert result.exit_code == 0, result.output
    assert outbox_row(row_id).status == OutboxStatus.SENT
    assert len(list_messages(dev_outbox.directory)) == 1  # the rest of the batch went too
    assert signal.getsignal(signal.SIGTERM) is before


def test_worker_survives_database_and_redis_outages(dev_outbox):
    """Real driver errors from unreachable servers are logged and waited out, not fatal."""
    queue_reset_email()
    stop = threading.Event()
    calls = []

    def deliver() -> outbox.DeliveryReport:
        calls.append(1)
        if len(calls) == 1:  # the database is down
            with create_engine("sqlite:////nonexistent-folder/idp.sqlite3").connect():
                pass
        if len(calls) == 2:  # Redis is down
            redis.Redis(port=closed_port(), retry=Retry(NoBackoff(), 0)).ping()
        stop.set()
        return outbox.deliver_due()

    summary = worker_cli.run(stop, interval=0.0, deliver=deliver)

    assert summary.failed_batches == 2
    assert summary.sent == 1
    assert len(list_messages(dev_outbox.directory)) == 1
