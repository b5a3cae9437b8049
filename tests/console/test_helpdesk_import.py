"""The console's Authentix import (issue 8): upload, check (dry run), then Import; audited."""

from __future__ import annotations

import io
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import AuditEvent, Membership, OutboxMessage, StaffRole, User
from idp.services import authentix_import
from tests.authentix import GOOD, seed, staff_csv
from tests.console.helpers import sign_in_staff
from tests.factories import SignIn, csrf_token, make_user, page_text

URL = "/helpdesk/import"


def upload(client: FlaskClient, content: bytes | None, name: str = "staff.csv") -> TestResponse:
    page = client.get(URL)
    assert page.status_code == 200
    data: dict[str, object] = {"csrf_token": csrf_token(page)}
    if content is not None:
        data["file"] = (io.BytesIO(content), name)
    return client.post(URL, data=data, content_type="multipart/form-data")


def apply(client: FlaskClient, checked: TestResponse) -> TestResponse:
    html = checked.get_data(as_text=True)
    match = re.search(r'name="upload_id"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="upload_id"', html
    )
    assert match, "no Import button on the page"
    return client.post(
        "/helpdesk/import/apply",
        data={"csrf_token": csrf_token(checked), "upload_id": match.group(1)},
    )


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_upload_shows_what_would_change_then_import_applies_it_and_is_audited(client):
    seed()
    staff = sign_in_staff(client, StaffRole.HELPDESK)
    people_before = count(User)
    content = (GOOD + "100001,office@hilltop.sch.uk,Shared,Office,no,\r\n").encode()

    checked = upload(client, content)
    text = page_text(checked)
    assert checked.status_code == 200
    assert "Check what the import will change" in text
    assert "Nothing has been saved and no email has been sent yet." in text
    assert "Accounts will be created 3" in text
    assert "Invitations to send 3" in text
    assert "Rows with a problem (skipped) 1" in text
    assert "6 Email office@hilltop.sch.uk" in text  # line, column, email, reason
    assert "shared mailbox" in text
    assert "2 ada.lovelace@hilltop.sch.uk 100001 create account, add as approver" in text
    assert count(User) == people_before  # a check writes nothing
    assert count(OutboxMessage) == 0

    done = apply(client, checked)
    text = page_text(done)
    assert done.status_code == 200
    assert "Import finished" in text
    assert "Accounts created 3" in text
    assert "Invitations sent 3" in text
    assert count(User) == people_before + 3
    assert count(Membership) == 4
    assert count(OutboxMessage) == 3
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "import.authentix"))
    assert event is not None
    assert event.actor_id == staff.sub
    assert event.details["users_created"] == 3
    assert event.details["rejected_rows"] == 1

    # The checked copy is used up: pressing Import again changes nothing.
    again = apply(client, checked)
    assert again.status_code == 400
    assert "Upload the file again" in page_text(again)
    assert count(OutboxMessage) == 3


def test_uploading_the_same_file_again_has_nothing_to_import(client):
    seed()
    sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    apply(client, upload(client, GOOD.encode()))
    checked = upload(client, GOOD.encode())
    text = page_text(checked)
    assert "Rows already up to date 4" in text
    assert "There is nothing to import" in text
    assert 'name="upload_id"' not in checked.get_data(as_text=True)


def test_a_cp1252_file_with_a_password_column_is_read_and_the_password_ignored(client):
    seed()
    sign_in_staff(client)
    header = "URN,Email,Given name,Family name,Approver,Services,Password"
    content = staff_csv("100001,zoe@hilltop.sch.uk,Zoë,Côté,no,,Hunter2!", header=header)
    checked = upload(client, content.encode("cp1252"))
    assert "The password column was ignored" in page_text(checked)
    apply(client, checked)
    zoe = db.session.scalar(select(User).where(User.email == "zoe@hilltop.sch.uk"))
    assert zoe is not None
    assert (zoe.given_name, zoe.family_name, zoe.password_hash) == ("Zoë", "Côté", None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Select a CSV file exported from Authentix"),
        (b"  \r\n", "The selected file is empty"),
        (b"Name,Address\r\nA,B\r\n", "not an Authentix staff file: missing column(s) 'URN'"),
    ],
)
def test_a_missing_or_wrong_file_is_explained_on_the_form(client, content, message):
    sign_in_staff(client)
    response = upload(client, content)
    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text
    assert message in text
    assert '<a href="#file">' in response.get_data(as_text=True)


def test_a_file_over_the_row_limit_is_sent_to_the_command_line(app, client, monkeypatch):
    seed()
    changed = app.extensions["settings"].model_copy(update={"authentix_console_max_rows": 3})
    monkeypatch.setitem(app.extensions, "settings", changed)
    sign_in_staff(client)
    response = upload(client, GOOD.encode())
    assert response.status_code == 400
    assert "the console imports up to 3 at a time" in page_text(response)
    assert count(OutboxMessage) == 0


def test_a_file_over_the_request_size_limit_is_refused_before_it_is_read(app, client):
    seed()
    sign_in_staff(client)
    limit = app.extensions["settings"].max_request_bytes
    response = upload(client, GOOD.encode() + b"," * limit)
    assert response.status_code == 413
    assert "What you sent is too large" in page_text(response)


def test_one_persons_checked_file_cannot_be_imported_by_another(app):
    seed()
    alice, bob = app.test_client(), app.test_client()
    sign_in_staff(alice, email="alice.helpdesk@example.gov.uk")
    sign_in_staff(bob, email="bob.helpdesk@example.gov.uk")
    checked = upload(alice, GOOD.encode())
    html = checked.get_data(as_text=True)
    upload_id = re.search(
        r'value="([^"]+)"[^>]*name="upload_id"|name="upload_id"[^>]*value="([^"]+)"', html
    )
    assert upload_id
    page = bob.get(URL)
    stolen = bob.post(
        "/helpdesk/import/apply",
        data={
            "csrf_token": csrf_token(page),
            "upload_id": upload_id.group(1) or upload_id.group(2),
        },
    )
    assert stolen.status_code == 400
    assert count(OutboxMessage) == 0
    assert apply(alice, checked).status_code == 200  # still Alice's to import


def test_people_who_are_not_helpdesk_staff_are_refused(client):
    user = make_user()
    SignIn(client).completed(user.email)
    assert client.get(URL).status_code == 403
    assert client.post("/helpdesk/import/apply").status_code in (400, 403)
    # The service checks too, whatever door it is called from.
    with pytest.raises(PermissionError):
        authentix_import.import_upload(GOOD.encode(), staff=user, dry_run=True, filename="x.csv")
