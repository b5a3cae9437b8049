"""K02, D07: the helpdesk's page about one person, and about one organisation."""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.extensions import db
from idp.models import (
    AuditEvent,
    MfaResetRequest,
    StaffRole,
    TotpCredential,
    WebAuthnCredential,
)
from idp.services import audit
from idp.services.sso_sessions import get_sso_sessions
from idp.services.throttle import Kind, account_key_for, get_throttle
from idp.services.transaction import transaction
from tests.console.helpers import sign_in_staff
from tests.console.people import join, make_organisation
from tests.factories import make_user, page_text
from tests.mfa.journeys import add_key, add_totp, issue_codes
from tests.mfa.softkey import SoftKey


def test_person_page_shows_status_organisations_factors_sessions_and_activity(
    client: FlaskClient, app
) -> None:
    person = make_user(email="mo.khan@oakwood.example", given_name="Mo", family_name="Khan")
    school = make_organisation("Oakwood Primary School", urn="123456")
    join(person, school, approver=True)
    add_totp(person)
    add_key(person, SoftKey(), name="Yellow key")
    issue_codes(person)
    get_sso_sessions().create(person.sub, amr=["pwd", "otp"], user_agent="Firefox/140 Linux")
    with transaction():
        audit.record("email.changed", actor="someone-else", target=person.sub, reason="INC-42")

    sign_in_staff(client, StaffRole.HELPDESK)
    response = client.get(f"/helpdesk/users/{person.sub}")
    assert response.status_code == 200
    text = page_text(response)
    assert "Mo Khan" in text
    assert "mo.khan@oakwood.example" in text
    assert "Active" in text
    assert "Oakwood Primary School" in text
    assert "URN 123456" in text
    assert "Approver" in text
    assert "Authenticator app" in text
    assert "Security key Yellow key" in text
    assert "Recovery codes left: 10" in text
    assert "Signed in now" in text
    assert "Not signed in anywhere" not in text
    assert "Firefox on Linux" in text
    assert "email.changed" in text  # the audit trail
    assert "INC-42" in text
    assert "Locked out No" in text


def test_person_page_never_shows_a_secret(client: FlaskClient, app) -> None:
    person = make_user()
    secret = add_totp(person)
    key = SoftKey()
    add_key(person, key)
    codes = issue_codes(person)
    stored = db.session.query(TotpCredential).one()
    credential = db.session.query(WebAuthnCredential).one()
    sign_in_staff(client, StaffRole.HELPDESK)
    html = client.get(f"/helpdesk/users/{person.sub}").get_data(as_text=True)
    assert secret not in html
    assert stored.secret_ciphertext not in html
    assert person.password_hash not in html
    assert credential.public_key.hex() not in html
    assert credential.credential_id.hex() not in html
    for code in codes:
        assert code not in html


def test_person_page_shows_a_lock(client: FlaskClient, app) -> None:
    person = make_user()
    throttle = get_throttle()
    account = account_key_for(person.email, sub=person.sub)
    for _ in range(throttle.max_failures):
        throttle.check(account, Kind.PASSWORD)
        throttle.record_failure(account, Kind.PASSWORD)
    sign_in_staff(client, StaffRole.HELPDESK)
    text = page_text(client.get(f"/helpdesk/users/{person.sub}"))
    assert "Locked Password: until" in text


def test_person_page_for_an_unknown_person_is_not_found(client: FlaskClient, app) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    assert client.get("/helpdesk/users/no-such-person").status_code == 404


def test_audit_trail_lists_the_newest_50_by_or_about_the_person(client: FlaskClient, app) -> None:
    person = make_user()
    with transaction():
        for n in range(30):
            audit.record("test.by", actor=person.sub, target="x", n=n)
        for n in range(30):
            audit.record("test.about", actor="agent", target=person.sub, reason=f"ticket-{n}")
        audit.record("test.unrelated", actor="agent", target="someone-else")
    sign_in_staff(client, StaffRole.HELPDESK)
    html = client.get(f"/helpdesk/users/{person.sub}").get_data(as_text=True)
    assert html.count("test.about") + html.count("test.by") == 50
    assert "ticket-29" in html  # the newest are kept
    assert "test.unrelated" not in html
    assert db.session.query(AuditEvent).count() > 50


def test_organisation_page_lists_people_and_flags_no_approver(client: FlaskClient, app) -> None:
    school = make_organisation("Beechwood Infant School", urn="654321")
    teacher = make_user(given_name="Tess", family_name="Teacher")
    join(teacher, school)
    sign_in_staff(client, StaffRole.HELPDESK)
    response = client.get(f"/helpdesk/organisations/{school.public_id}")
    assert response.status_code == 200
    text = page_text(response)
    assert "Beechwood Infant School" in text
    assert "654321" in text
    assert "Tess Teacher" in text
    assert "has no approver" in text
    join(make_user(given_name="Amy", family_name="Approver"), school, approver=True)
    text = page_text(client.get(f"/helpdesk/organisations/{school.public_id}"))
    assert "has no approver" not in text
    assert "Approvers Amy Approver" in text


def test_organisation_page_for_an_unknown_id_is_not_found(client: FlaskClient, app) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    assert client.get("/helpdesk/organisations/nothing").status_code == 404


def test_home_page_shows_the_search_box_and_navigation(client: FlaskClient, app) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    response = client.get("/helpdesk/")
    html = response.get_data(as_text=True)
    assert 'action="/helpdesk/search"' in html
    assert 'aria-label="Helpdesk console"' in html
    assert 'href="/helpdesk/search"' in html


def test_admin_only_areas_are_not_offered_to_helpdesk_agents(client: FlaskClient, app) -> None:
    from tests.console.test_console_permissions import admin_only_paths

    sign_in_staff(client, StaffRole.HELPDESK)
    html = client.get("/helpdesk/").get_data(as_text=True)
    for path in admin_only_paths(app):
        assert f'href="{path}"' not in html


def test_home_page_counts_mfa_resets_waiting_for_a_second_admin(client: FlaskClient, app) -> None:
    person = make_user()
    agent = sign_in_staff(client, StaffRole.HELPDESK)
    assert "waiting for a second" not in page_text(client.get("/helpdesk/"))
    for needs_approval in (True, True, False):
        db.session.add(
            MfaResetRequest(
                user_id=person.id,
                requested_by_id=agent.id,
                identity_check="Called back on the school's number",
                reason="INC-7",
                needs_approval=needs_approval,
            )
        )
    db.session.commit()
    text = page_text(client.get("/helpdesk/"))
    assert "2 MFA resets waiting for a second helpdesk admin to approve" in text


def test_only_helpdesk_admins_are_offered_to_edit_an_organisation(client: FlaskClient, app) -> None:
    school = make_organisation("Elm Tree Nursery School")
    sign_in_staff(client, StaffRole.HELPDESK)
    assert "Edit this organisation" not in page_text(
        client.get(f"/helpdesk/organisations/{school.public_id}")
    )
    admin = app.test_client()
    sign_in_staff(admin, StaffRole.HELPDESK_ADMIN)
    html = admin.get(f"/helpdesk/organisations/{school.public_id}").get_data(as_text=True)
    assert f'href="/helpdesk/admin/organisations/{school.public_id}/edit"' in html


def test_activity_names_the_staff_member_who_acted(client: FlaskClient, app) -> None:
    person = make_user(email="mo.khan@oakwood.example", given_name="Mo", family_name="Khan")
    agent = sign_in_staff(client, StaffRole.HELPDESK, email="grace@helpdesk.example")
    with transaction():
        audit.record("helpdesk.unlock", actor=agent.sub, target=person.sub, reason="INC-7")
    text = page_text(client.get(f"/helpdesk/users/{person.sub}"))
    assert "Grace Hopper (grace@helpdesk.example)" in text
    assert agent.sub not in text
