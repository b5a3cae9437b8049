"""Import of schools' staff from Authentix (issue 8): accounts, memberships, access, invitations."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from idp.extensions import db
from idp.models import (
    AccessGrant,
    AccountToken,
    AuditEvent,
    Membership,
    Organisation,
    OutboxMessage,
    Service,
    TokenPurpose,
    User,
    UserStatus,
)
from idp.models.base import utcnow
from idp.services import access
from idp.services.authentix_import import ImportFileError, ImportResult, import_staff
from idp.services.transaction import transaction
from tests.authentix import GOOD, seed, staff_csv
from tests.factories import make_user
from tests.mailbox import latest_link

TABLES = (User, Membership, AccessGrant, AccountToken, OutboxMessage, Organisation)


def run(text: str, **kwargs: object) -> ImportResult:
    return import_staff(io.StringIO(text, newline=""), actor="test", **kwargs)  # type: ignore[arg-type]


def counts() -> dict[str, int]:
    """Rows in every table the import writes, to prove a run wrote nothing."""
    found = {
        t.__name__: db.session.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES
    }
    found["AuditEvent"] = db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return found


def user(email: str) -> User:
    found = db.session.scalar(select(User).where(User.email == email))
    assert found is not None, email
    return found


def org(urn: str) -> Organisation:
    found = db.session.scalar(select(Organisation).where(Organisation.urn == urn))
    assert found is not None, urn
    return found


def roles(email: str, urn: str, client_id: str) -> list[str]:
    service = db.session.scalar(select(Service).where(Service.client_id == client_id))
    grant = access.grant_for(user(email), org(urn), service)
    assert grant is not None, (email, urn, client_id)
    return sorted(r.code for r in grant.roles)


def invitations_to(email: str) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.recipient == email, OutboxMessage.template == "invitation")
        )
        or 0
    )


def test_import_creates_accounts_memberships_access_and_one_invitation_each(app):
    seed()
    result = run(GOOD)

    assert result.counts() == {
        "rows": 4, "changed_rows": 4, "unchanged_rows": 0, "rejected_rows": 0,
        "organisations_created": 0, "users_created": 3, "memberships_added": 4,
        "memberships_promoted": 0, "grants_created": 4, "grants_changed": 0,
        "invitations_sent": 3,
    }  # fmt: skip
    ada = user("ada.lovelace@hilltop.sch.uk")
    assert (ada.given_name, ada.family_name, ada.status) == ("Ada", "Lovelace", UserStatus.INVITED)
    assert ada.password_hash is None
    assert access.is_approver(ada, org("100001"))
    assert not access.is_approver(ada, org("100002"))
    assert roles("ada.lovelace@hilltop.sch.uk", "100001", "school-census") == ["submitter"]
    assert roles("alan.turing@hilltop.sch.uk", "100001", "pupil-data") == []
    assert roles("grace.hopper@riverside.sch.uk", "100002", "pupil-data") == ["editor", "viewer"]
    # Ada is at two schools but gets one invitation; everyone gets exactly one.
    for email in ("ada.lovelace@hilltop.sch.uk", "alan.turing@hilltop.sch.uk",
                  "grace.hopper@riverside.sch.uk"):  # fmt: skip
        assert invitations_to(email) == 1
    events = db.session.scalars(select(AuditEvent.event)).all()
    assert events.count("user.created") == 3
    assert events.count("membership.added") == 4
    assert events.count("access.granted") == 4
    assert events.count("invitation.sent") == 3
    summary = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "import.authentix"))
    assert summary is not None
    assert summary.details["users_created"] == 3


def test_the_invitation_link_lets_the_person_set_their_own_password(app, client):
    seed()
    run(GOOD)
    link = latest_link("grace.hopper@riverside.sch.uk", "invitation")
    page = client.get(link)
    assert page.status_code == 200
    assert "password" in page.get_data(as_text=True).lower()


def test_rerunning_the_same_file_sends_nothing_and_changes_nothing(app):
    seed()
    run(GOOD)
    before = counts()
    again = run(GOOD)
    after = counts()
    assert again.counts()["unchanged_rows"] == 4
    assert again.changed_rows == 0
    assert again.invitations_sent == 0
    assert again.summary() == ["Rows: 4 read, 0 imported, 4 unchanged"]
    # Only the run's own summary event is new.
    assert after == {**before, "AuditEvent": before["AuditEvent"] + 1}


def test_dry_run_writes_and_sends_nothing_but_says_what_would_change(app):
    seed()
    before = counts()
    dry = run(GOOD, dry_run=True)
    assert counts() == before
    assert dry.dry_run
    assert dry.summary()[0].startswith("Dry run: nothing was written")
    assert dry.users_created == 3
    assert dry.invitations_sent == 3
    first = dry.plans[0]
    assert (first.line, first.email, first.urn) == (2, "ada.lovelace@hilltop.sch.uk", "100001")
    assert first.changes == (
        "create account",
        "add as approver of Hill Top Primary",
        "give access to Pupil data (viewer)",
        "give access to School census (submitter)",
        "send invitation",
    )
    real = run(GOOD)
    assert real.counts() == dry.counts()


def test_each_bad_row_is_reported_with_its_line_and_column_and_the_rest_imported(app):
    seed()
    make_user(email="gone@hilltop.sch.uk", status=UserStatus.DEACTIVATED)
    text = staff_csv(
        "100001,not-an-email,Bad,Email,no,",  # line 2
        "100001,office@hilltop.sch.uk,Shared,Office,no,",
        "100001,a1@hilltop.sch.uk,Ann,One,no,timetabler",
        "100001,a2@hilltop.sch.uk,Ann,Two,no,pupil-data:owner",
        "100001,a3@hilltop.sch.uk,Ann,Three,no,pupil-data:la_admin",  # line 6
        "999999,a4@hilltop.sch.uk,Ann,Four,no,",
        "100001,a5@hilltop.sch.uk,Ann,Five,maybe,",
        "100001,a6@hilltop.sch.uk,,Six,no,",
        "100001,gone@hilltop.sch.uk,Gone,Away,no,",  # line 10
        "100001,good@hilltop.sch.uk,Good,Person,no,pupil-data:viewer",
        "100001,GOOD@hilltop.sch.uk,Good,Again,no,",
        "ABC,a7@hilltop.sch.uk,Ann,Seven,no,",
        "100001,a8@hilltop.sch.uk,Ann,Eight,no",  # line 14: a field short
    )
    result = run(text)
    errors = [(e.line, e.column, e.reason) for e in result.errors]
    assert errors[0][:2] == (2, "Email")
    assert "correct format" in errors[0][2]
    assert errors[1][:2] == (3, "Email")
    assert "shared mailbox" in errors[1][2]
    assert errors[2:] == [
        (4, "Services", "there is no service 'timetabler'"),
        (5, "Services", "Pupil data has no role called owner"),
        (6, "Services", "Hill Top Primary cannot hold the Pupil data role LA admin"),
        (7, "URN", "no establishment has URN 999999: import it from GIAS first, or give its "
                   "name in a School name column"),
        (8, "Approver", "Approver must be yes or no, not 'maybe'"),
        (9, "Given name", "the given name is missing"),
        (10, "Email", "the account for gone@hilltop.sch.uk is deactivated: reactivate it in "
                      "the helpdesk console, then import again"),
        (12, "Email", "good@hilltop.sch.uk at URN 100001 is already on line 11"),
        (13, "URN", "the URN 'ABC' is not a number of up to 16 digits"),
        (14, None, "the row has 5 fields but the header has 6: check for an unquoted comma"),
    ]  # fmt: skip
    assert result.rows == 13
    assert result.rejected == 12
    assert roles("good@hilltop.sch.uk", "100001", "pupil-data") == ["viewer"]
    assert db.session.scalar(select(func.count()).select_from(User)) == 2  # good + gone


def test_an_unknown_urn_with_a_school_name_creates_the_establishment(app):
    seed()
    header = "URN,Email,Given name,Family name,Approver,Services,School name"
    result = run(
        staff_csv(
            "123456,nia.head@newschool.sch.uk,Nia,Head,yes,,New School",
            "123456,teacher@newschool.sch.uk,Tom,Teacher,no,pupil-data:viewer,",
            header=header,
        )
    )
    assert result.rejected == 0
    assert result.organisations_created == 1
    school = org("123456")
    assert school.name == "New School"
    assert school.type == "establishment"
    assert access.is_approver(user("nia.head@newschool.sch.uk"), school)
    assert result.plans[0].changes[0] == "create establishment New School (URN 123456)"
    assert run(staff_csv("123456,nia.head@newschool.sch.uk,Nia,Head,yes,,New School",
                         header=header)).changed_rows == 0  # fmt: skip


def test_existing_people_are_promoted_and_given_roles_but_nothing_is_taken_away(app):
    seed()
    run(GOOD)
    active = make_user(email="active@hilltop.sch.uk")
    with transaction():
        access.add_membership(active, org("100001"), actor="test")
    outbox_before = db.session.scalar(select(func.count()).select_from(OutboxMessage))
    result = run(
        staff_csv(
            "100001,ada.lovelace@hilltop.sch.uk,Ada,Lovelace,no,",  # approver kept
            "100001,alan.turing@hilltop.sch.uk,Alan,Turing,yes,pupil-data:editor",
            "100001,active@hilltop.sch.uk,Act,Ive,no,school-census",
        )
    )
    assert result.counts()["unchanged_rows"] == 1
    assert result.memberships_promoted == 1
    assert result.grants_changed == 1
    assert result.grants_created == 1
    assert result.invitations_sent == 0
    assert access.is_approver(user("ada.lovelace@hilltop.sch.uk"), org("100001"))
    assert access.is_approver(user("alan.turing@hilltop.sch.uk"), org("100001"))
    assert roles("alan.turing@hilltop.sch.uk", "100001", "pupil-data") == ["editor"]
    assert roles("ada.lovelace@hilltop.sch.uk", "100001", "pupil-data") == ["viewer"]
    assert user("active@hilltop.sch.uk").given_name == "Ada"  # names are not overwritten
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == outbox_before
    changed = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "access.changed"))
    assert changed is not None
    assert (changed.details["roles"], changed.details["previous_roles"]) == (["editor"], [])


def test_an_invited_person_whose_link_expired_is_invited_again_once(app):
    seed()
    run(GOOD)
    db.session.execute(
        update(AccountToken)
        .where(AccountToken.purpose == TokenPurpose.INVITATION)
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    assert run(GOOD).invitations_sent == 3
    assert run(GOOD).invitations_sent == 0
    assert invitations_to("ada.lovelace@hilltop.sch.uk") == 2


def test_a_password_column_is_ignored_with_a_warning(app):
    seed()
    header = "URN,Email,Given name,Family name,Approver,Services,Password"
    result = run(staff_csv("100001,p@hilltop.sch.uk,Pat,Smith,no,,Sch00lPass!", header=header))
    assert result.rejected == 0
    assert any("password column was ignored" in w for w in result.warnings)
    assert result.summary()[-1].startswith("Warning: The password column was ignored")
    assert user("p@hilltop.sch.uk").password_hash is None
    for details in db.session.scalars(select(AuditEvent.details)):
        assert "Sch00lPass!" not in str(details)


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8-sig", "utf-8"])
def test_cp1252_and_utf8_files_with_loose_header_names(app, tmp_path: Path, encoding):
    seed()
    path = tmp_path / "staff.csv"
    header = " urn , EMAIL ADDRESS,given_name,Surname , approver,SERVICES"
    path.write_text(
        staff_csv("100001,zoe@hilltop.sch.uk,Zoë,O\u2019Brien-Côté,no,", header=header),
        encoding=encoding,
        newline="",
    )
    result = import_staff(path, actor="test")
    assert result.rejected == 0
    assert result.encoding == ("cp1252" if encoding == "cp1252" else "utf-8-sig")
    zoe = user("zoe@hilltop.sch.uk")
    assert (zoe.given_name, zoe.family_name) == ("Zoë", "O\u2019Brien-Côté")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("URN,Email,Given name\r\n", "missing column(s) 'Family name', 'Approver', 'Services'"),
    ],
)
def test_a_file_that_is_not_a_staff_file_is_refused_before_writing(app, content, message):
    seed()
    before = counts()
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(content)
    assert counts() == before


def test_small_batches_give_the_same_result_and_progress_ends_complete(app):
    seed()
    calls: list[tuple[int, int | None]] = []
    dry = run(GOOD, dry_run=True, batch_rows=1)
    result = run(GOOD, batch_rows=1, progress=lambda done, total: calls.append((done, total)))
    assert dry.counts() == result.counts()
    assert result.users_created == 3
    assert result.invitations_sent == 3
    assert calls[-1] == (4, 4)
    assert invitations_to("ada.lovelace@hilltop.sch.uk") == 1


def test_cli_prints_the_summary_and_the_rejected_rows(app, tmp_path: Path):
    seed()
    path = tmp_path / "staff.csv"
    path.write_text(GOOD + "100001,bad,B,C,no,\r\n", encoding="cp1252", newline="")
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["import-authentix", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run: nothing was written and no email was sent." in dry.output
    assert "line 2 ada.lovelace@hilltop.sch.uk at 100001: create account" in dry.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0
    result = runner.invoke(args=["import-authentix", str(path)])
    assert result.exit_code == 0, result.output
    assert "Rows: 5 read, 4 imported, 0 unchanged, 1 rejected" in result.output
    assert "Invitations: 3 sent" in result.output
    assert "  line 6 (Email): 'bad': Enter an email address in the correct format" in result.output
    again = runner.invoke(args=["import-authentix", str(path)])
    assert "Rows: 5 read, 0 imported, 4 unchanged, 1 rejected" in again.output
    missing = runner.invoke(args=["import-authentix", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1
    assert "cannot read" in missing.output
