"""Issue 8 "Audit": the helpdesk browses, filters and exports the audit log (K02, K03), and
produces an organisation's monthly report of helpdesk actions for its data protection officer."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from idp.extensions import db
from idp.models import Membership, MembershipRole, Organisation, StaffRole
from idp.models.audit import AuditEvent
from idp.models.organisation import OrganisationType
from idp.services import audit_log
from tests.console.helpers import sign_in_staff
from tests.factories import SignIn, make_user, page_text

NOON = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def add_event(
    event: str,
    *,
    actor: str | None = None,
    target: str | None = None,
    at: datetime = NOON,
    outcome: str = "success",
    reason: str | None = None,
    **details: object,
) -> AuditEvent:
    row = AuditEvent(
        event=event,
        outcome=outcome,
        actor_id=actor,
        target_id=target,
        target_type="user" if target else None,
        reason=reason,
        occurred_at=at,
        ip="192.0.2.1",
        details=details,
    )
    db.session.add(row)
    db.session.commit()
    return row


def rows_of(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_filters_by_user_action_outcome_and_uk_dates(client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    ann = make_user(email="ann@school.example", given_name="Ann", family_name="Able")
    bob = make_user(email="bob@school.example", given_name="Bob", family_name="Baker")
    add_event("password.changed", actor=ann.sub, target=ann.sub, reason="ann-own")
    add_event("sign_in.failed", actor=None, target=bob.sub, outcome="failure", reason="bob-fail")
    add_event(
        "account.locked",
        actor="system",
        target=bob.sub,
        reason="bob-locked",
        at=NOON - timedelta(days=5),
    )
    # 00:30 on 1 July in the UK is 23:30 UTC on 30 June: a UK-day filter must include it.
    add_event(
        "sign_in.failed",
        target=ann.sub,
        outcome="failure",
        reason="ann-summer",
        at=datetime(2026, 6, 30, 23, 30, tzinfo=UTC),
    )

    by_email = page_text(client.get("/helpdesk/audit?user=BOB@school.example"))
    assert "bob-fail" in by_email
    assert "bob-locked" in by_email
    assert "ann-own" not in by_email
    assert "Sign-in failed" in by_email  # the event in plain words
    assert "Bob Baker (bob@school.example)" in by_email

    by_action = page_text(client.get("/helpdesk/audit?event=account.locked"))
    assert "bob-locked" in by_action
    assert "bob-fail" not in by_action

    failures = page_text(client.get(f"/helpdesk/audit?user={ann.sub}&outcome=failure"))
    assert "ann-summer" in failures
    assert "ann-own" not in failures

    july = page_text(client.get("/helpdesk/audit?date_from=2026-07-01&date_to=2026-07-01"))
    assert "ann-summer" in july
    assert "bob-fail" not in july
    assert "1 Jul 2026, 00:30:00 BST" in july

    unknown = page_text(client.get("/helpdesk/audit?user=nobody@school.example"))
    assert "No events match" in unknown


def test_the_action_list_is_the_distinct_events_and_bad_dates_are_explained(
    client: FlaskClient,
) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    add_event("account.locked", actor="system")
    add_event("account.locked", actor="system")
    assert "account.locked" in audit_log.event_names()
    assert audit_log.event_names() == sorted(set(audit_log.event_names()))

    response = client.get("/helpdesk/audit?date_from=31-02-2026&date_to=")
    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text
    assert "Enter a real date, like 2026-11-24" in text

    backwards = client.get("/helpdesk/audit?date_from=2026-11-02&date_to=2026-11-01")
    assert "The end date must be the same as or after the start date" in page_text(backwards)


def test_pages_of_fifty_newest_first_with_older_and_newer_links(client: FlaskClient) -> None:
    staff = sign_in_staff(client, StaffRole.HELPDESK)
    for n in range(120):
        db.session.add(
            AuditEvent(
                event="sign_in.failed",
                outcome="failure",
                target_id=staff.sub,
                reason=f"n{n:03d}",
                occurred_at=NOON + timedelta(minutes=n),
            )
        )
    db.session.commit()

    def reasons(response) -> list[str]:
        assert response.status_code == 200
        return [w for w in page_text(response).split() if w.startswith("n") and w[1:].isdigit()]

    first = client.get("/helpdesk/audit?event=sign_in.failed")
    assert reasons(first) == [f"n{n:03d}" for n in range(119, 69, -1)]
    assert "Newer events" not in page_text(first)
    older = audit_log.page(audit_log.AuditFilter(event="sign_in.failed")).older
    second = client.get(f"/helpdesk/audit?event=sign_in.failed&before={older}")
    assert reasons(second) == [f"n{n:03d}" for n in range(69, 19, -1)]
    page2 = audit_log.page(audit_log.AuditFilter(event="sign_in.failed"), before=older)
    third = client.get(f"/helpdesk/audit?event=sign_in.failed&before={page2.older}")
    assert reasons(third) == [f"n{n:03d}" for n in range(19, -1, -1)]
    assert "Older events" not in page_text(third)
    back = client.get(f"/helpdesk/audit?event=sign_in.failed&after={page2.newer}")
    assert reasons(back) == reasons(first)
    assert "Newer events" not in page_text(back)

    # The same pages when the person is named (events about or by them: two merged scans).
    mine = client.get(f"/helpdesk/audit?user={staff.email}&event=sign_in.failed&before={older}")
    assert reasons(mine) == reasons(second)

    tampered = client.get("/helpdesk/audit?before=not-a-cursor")
    assert tampered.status_code == 302


def test_csv_export_escapes_guards_formulas_and_is_audited(client: FlaskClient) -> None:
    staff = sign_in_staff(client, StaffRole.HELPDESK)
    target = make_user(email="carol@school.example")
    add_event(
        "user.deactivated",
        actor=staff.sub,
        target=target.sub,
        reason='=HYPERLINK("http://evil.example","click"), then "quoted"\nline two',
    )
    add_event("user.deactivated", actor=staff.sub, target=target.sub, reason="+1-2")
    add_event("user.deactivated", actor=staff.sub, target=target.sub, reason="@SUM(A1)")
    add_event("user.deactivated", actor=staff.sub, target=target.sub, reason="-3")
    add_event("sign_in.failed", target=target.sub, reason="not exported")

    rows = rows_of(client.get("/helpdesk/audit/export.csv?event=user.deactivated"))
    header, *body = rows
    assert header[:4] == ["Time (UK)", "Event", "Description", "Outcome"]
    reasons = [row[header.index("Reason")] for row in body]
    assert reasons == [
        "'-3",
        "'@SUM(A1)",
        "'+1-2",
        '\'=HYPERLINK("http://evil.example","click"), then "quoted"\nline two',
    ]
    assert all(row[1] == "user.deactivated" for row in body)
    assert body[0][header.index("Target name")] == "Ada Lovelace (carol@school.example)"

    [exported] = db.session.query(AuditEvent).filter_by(event="audit.exported").all()
    assert exported.actor_id == staff.sub
    assert exported.details["filter"] == {"event": "user.deactivated"}


def test_export_stops_at_the_cap(client: FlaskClient, monkeypatch) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    for n in range(7):
        add_event("account.locked", actor="system", at=NOON + timedelta(seconds=n))
    monkeypatch.setattr(audit_log, "EXPORT_CAP", 5)
    monkeypatch.setattr(audit_log, "_BATCH", 2)
    lines = list(audit_log.export_lines(audit_log.AuditFilter(), cap=5))
    assert len(lines) == 1 + 5


def _school() -> Organisation:
    school = Organisation(type=OrganisationType.ESTABLISHMENT, name="Hill School", urn="100001")
    db.session.add(school)
    db.session.commit()
    return school


def test_monthly_report_lists_helpdesk_actions_on_the_schools_people(client: FlaskClient) -> None:
    agent = sign_in_staff(
        client,
        StaffRole.HELPDESK,
        email="agent@helpdesk.example",
        given_name="Hal",
        family_name="Desk",
    )
    school = _school()
    teacher = make_user(email="teacher@hill.example", given_name="Tess", family_name="Teach")
    outsider = make_user(email="other@elsewhere.example")
    db.session.add(Membership(user=teacher, organisation=school, role=MembershipRole.MEMBER))
    db.session.commit()
    add_event(
        "helpdesk.mfa_reset_done",
        actor=agent.sub,
        target=teacher.sub,
        reason="TICKET-42",
        identity_check="Called back on the school's number from GIAS",
    )
    add_event(
        "password_reset.requested",
        actor=agent.sub,
        target=teacher.sub,
        reason="TICKET-43",
        at=NOON + timedelta(days=1),
    )
    add_event("password.changed", actor=teacher.sub, target=teacher.sub)  # not a helpdesk action
    add_event("user.deactivated", actor=agent.sub, target=outsider.sub)  # not their person
    add_event(
        "password_reset.requested",
        actor=agent.sub,
        target=teacher.sub,
        reason="OCTOBER",
        at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC),
    )  # 31 Oct, GMT

    response = client.get(f"/helpdesk/reports/{school.public_id}/2026-11")
    text = page_text(response)
    assert response.status_code == 200
    assert "Helpdesk actions for Hill School, November 2026" in text
    assert "Hal Desk (agent@helpdesk.example)" in text
    assert "Tess Teach (teacher@hill.example)" in text
    assert "Called back on the school's number from GIAS" in text
    assert "TICKET-42" in text
    assert "TICKET-43" in text
    assert "Password reset link sent" in text
    assert "Security methods reset by the helpdesk" in text
    assert "OCTOBER" not in text
    assert "other@elsewhere.example" not in text

    rows = rows_of(client.get(f"/helpdesk/reports/{school.public_id}/2026-11.csv"))
    assert rows[0][0] == "When (UK time)"
    assert [r[6] for r in rows[1:]] == ["TICKET-42", "TICKET-43"]
    assert rows[1][5] == "Called back on the school's number from GIAS"
    exported = db.session.query(AuditEvent).filter_by(event="audit.exported").one()
    assert exported.target_id == school.public_id
    assert exported.details["kind"] == "monthly_report"


def test_report_chooser_finds_the_school_by_urn_and_refuses_a_bad_month(
    client: FlaskClient,
) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    school = _school()
    found = client.get("/helpdesk/reports?organisation=100001&month=2026-11")
    assert found.status_code == 302
    assert found.headers["Location"].endswith(f"/helpdesk/reports/{school.public_id}/2026-11")

    bad = client.get("/helpdesk/reports?organisation=100001&month=November")
    assert bad.status_code == 400
    assert "Enter the month as a year and month, like 2026-11" in page_text(bad)
    missing = client.get("/helpdesk/reports?organisation=999999&month=2026-11")
    assert "No organisation has this URN or ID" in page_text(missing)
    assert client.get(f"/helpdesk/reports/{school.public_id}/2026-13").status_code == 404


def test_audit_pages_are_for_helpdesk_staff_only(client: FlaskClient) -> None:
    school = _school()
    user = make_user()
    SignIn(client).completed(user.email)
    for url in (
        "/helpdesk/audit",
        "/helpdesk/audit/export.csv",
        "/helpdesk/reports",
        f"/helpdesk/reports/{school.public_id}/2026-11",
        f"/helpdesk/reports/{school.public_id}/2026-11.csv",
    ):
        assert client.get(url).status_code == 403, url
    assert db.session.query(AuditEvent).filter_by(event="audit.exported").count() == 0
