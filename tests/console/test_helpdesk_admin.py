"""Issue 8 "Services and organisations" and helpdesk staff: the helpdesk_admin pages.

G04 (a client secret shown once, stored hashed), F01/E03 (redirect URIs the registry refuses
are explained), K01 (admin pages are for helpdesk admins only), K03 (every change audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import Membership, MembershipRole, Organisation, StaffRole, User, UserStatus
from idp.models.audit import AuditEvent
from idp.models.base import utcnow
from idp.models.organisation import OrganisationStatus, OrganisationType
from idp.models.service import Service, ServiceSecret
from idp.services import clients, helpdesk_staff
from idp.services.transaction import transaction
from tests.console.helpers import sign_in_staff
from tests.factories import csrf_token, make_user, page_text
from tests.mailbox import emails_to

GOOD = "https://data.example.gov.uk/auth/callback"


def post(client: FlaskClient, url: str, data: Mapping[str, object]) -> TestResponse:
    token = csrf_token(client.get(url))
    return client.post(url, data={**data, "csrf_token": token})


def shown_secret(response) -> str:
    field = BeautifulSoup(response.get_data(as_text=True), "html.parser").find(
        "input", id="client-secret"
    )
    assert field is not None, page_text(response)[:500]
    return str(field["value"])


def events(name: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.query(AuditEvent).filter_by(event=name).order_by(AuditEvent.id))


REGISTRATION = {
    "name": "Get school data",
    "client_id": "get-school-data",
    "redirect_uris": f"{GOOD}\n  https://data.example.gov.uk/other  \n",
    "post_logout_redirect_uris": "https://data.example.gov.uk/signed-out",
    "backchannel_logout_uri": "https://data.example.gov.uk/backchannel",
    "allowed_scopes": ["openid", "profile", "email", "organisation"],
    "grant_types": ["authorization_code", "refresh_token"],
    "token_endpoint_auth_method": "client_secret_basic",
    "require_mfa": "yes",
    "access_policy": "open",
}


def test_register_a_service_shows_its_secret_once(client: FlaskClient) -> None:
    admin = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    posted = post(client, "/helpdesk/admin/services/new", REGISTRATION)
    # Post/Redirect/Get: reloading the page that shows the secret never registers again.
    assert posted.status_code == 303
    response = client.get(posted.headers["Location"])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Get school data is registered" in page_text(response)
    assert "This is the only time you will see this secret" in page_text(response)
    secret = shown_secret(response)
    service = clients.authenticate_client_secret("get-school-data", secret)
    assert service is not None, "the secret shown is the one the service can use"
    assert service.redirect_uris == [GOOD, "https://data.example.gov.uk/other"]
    assert service.post_logout_redirect_uris == ["https://data.example.gov.uk/signed-out"]
    assert service.require_mfa is True
    assert service.access_policy.value == "open"

    # Never again: not on the service page, not in the list, not in the audit log.
    page = client.get("/helpdesk/admin/services/get-school-data")
    assert page.status_code == 200
    assert secret not in page.get_data(as_text=True)
    assert "Get school data" in page_text(client.get("/helpdesk/admin/services"))
    [registered] = events("service.registered")
    assert registered.actor_id == admin.sub
    assert all(secret not in str(e.details) for e in db.session.query(AuditEvent))
    reload = client.get(posted.headers["Location"])
    assert secret not in reload.get_data(as_text=True)
    assert "has already been shown" in page_text(reload)
    assert db.session.query(Service).count() == 1


def test_invalid_redirect_uris_are_refused_with_a_clear_message(client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    data = {
        **REGISTRATION,
        "redirect_uris": "https://*.example.gov.uk/cb\nhttp://data.example.gov.uk/cb",
        "post_logout_redirect_uris": "https://data.example.gov.uk/out#top",
    }
    response = post(client, "/helpdesk/admin/services/new", data)

    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text
    assert "Redirect URI 'https://*.example.gov.uk/cb' must not contain a wildcard" in text
    assert "Redirect URI 'http://data.example.gov.uk/cb' must use https" in text
    assert "Sign-out return address 'https://data.example.gov.uk/out#top'" in text
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    links = [a["href"] for a in soup.select(".govuk-error-summary a")]
    assert "#redirect_uris" in links
    assert "#post_logout_redirect_uris" in links
    assert db.session.query(Service).count() == 0
    assert events("service.registered") == []


def test_a_taken_client_id_is_refused(client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    assert post(client, "/helpdesk/admin/services/new", REGISTRATION).status_code == 303
    again = post(client, "/helpdesk/admin/services/new", REGISTRATION)
    assert again.status_code == 400
    assert "A service with this client ID already exists" in page_text(again)


def _service(admin: User) -> tuple[Service, str]:
    with transaction():
        service, secret = clients.register_service(
            "attendance",
            "Attendance",
            redirect_uris=[GOOD],
            allowed_scopes=["openid"],
            grant_types=["authorization_code"],
            actor=admin.sub,
        )
    assert secret is not None
    return service, secret


def test_rotation_shows_a_new_secret_once_and_the_old_one_expires(client: FlaskClient) -> None:
    admin = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    _, old = _service(admin)
    url = "/helpdesk/admin/services/attendance"
    token = csrf_token(client.get(url))
    rotated = client.post(f"{url}/rotate", data={"overlap_days": "7", "csrf_token": token})

    assert rotated.status_code == 303  # Post/Redirect/Get: a refresh must not rotate again
    assert rotated.headers["Location"] == f"{url}/new-secret"
    response = client.get(rotated.headers["Location"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    new = shown_secret(response)
    assert new != old
    assert "The old secret keeps working for 7 days" in page_text(response)
    assert clients.authenticate_client_secret("attendance", new) is not None
    # Both work during the overlap; after it, only the new one.
    assert clients.authenticate_client_secret("attendance", old) is not None
    later = utcnow() + timedelta(days=7, minutes=1)
    assert clients.authenticate_client_secret("attendance", old, now=later) is None
    assert clients.authenticate_client_secret("attendance", new, now=later) is not None
    assert new not in client.get(url).get_data(as_text=True)
    assert [e.actor_id for e in events("service.secret_expiry_set")] == [admin.sub]


def _secret_rows(service_id: int) -> int:
    db.session.expire_all()
    return db.session.query(ServiceSecret).filter_by(service_id=service_id).count()


def test_reloading_after_a_rotation_neither_rotates_nor_shows_the_secret_again(
    app: Flask, client: FlaskClient
) -> None:
    admin = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    service, _ = _service(admin)
    url = "/helpdesk/admin/services/attendance"
    token = csrf_token(client.get(url))
    rotated = client.post(f"{url}/rotate", data={"overlap_days": "1", "csrf_token": token})
    assert rotated.status_code == 303
    assert _secret_rows(service.id) == 2
    shown_at = rotated.headers["Location"]
    new = shown_secret(client.get(shown_at))
    assert new not in shown_at

    again = client.get(shown_at)  # the browser's refresh button
    assert again.status_code == 200
    assert again.headers["Cache-Control"] == "no-store"
    assert new not in again.get_data(as_text=True)
    text = page_text(again)
    assert "has already been shown" in text
    assert "rotate the secret again" in text
    assert _secret_rows(service.id) == 2  # exactly one new secret
    assert len(events("service.secret_added")) == 2  # the registration's and this rotation's
    assert clients.authenticate_client_secret("attendance", new) is not None

    # Held for this admin's browser session only: another admin never sees it.
    rotated = client.post(f"{url}/rotate", data={"overlap_days": "1", "csrf_token": token})
    other = app.test_client()
    sign_in_staff(other, StaffRole.HELPDESK_ADMIN)
    assert "has already been shown" in page_text(other.get(shown_at))
    assert shown_secret(client.get(shown_at)) != new


def test_edit_redirect_and_logout_uris(client: FlaskClient) -> None:
    admin = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    _service(admin)
    url = "/helpdesk/admin/services/attendance/uris"
    assert GOOD in page_text(client.get(url))

    bad = post(
        client,
        url,
        {
            "redirect_uris": "https://x.example/cb/../admin",
            "post_logout_redirect_uris": "",
            "backchannel_logout_uri": "",
        },
    )
    assert bad.status_code == 400
    assert "must not contain '.' or '..' path segments" in page_text(bad)

    fine = post(
        client,
        url,
        {
            "redirect_uris": "https://new.example.gov.uk/cb",
            "post_logout_redirect_uris": "https://new.example.gov.uk/bye",
            "backchannel_logout_uri": "https://new.example.gov.uk/bc",
        },
    )
    assert fine.status_code == 303
    db.session.expire_all()
    service = clients.get_service("attendance")
    assert service.redirect_uris == ["https://new.example.gov.uk/cb"]
    assert service.post_logout_redirect_uris == ["https://new.example.gov.uk/bye"]
    assert service.backchannel_logout_uri == "https://new.example.gov.uk/bc"
    [updated] = events("service.updated")
    assert updated.actor_id == admin.sub


def _organisations() -> tuple[Organisation, Organisation]:
    hill = Organisation(type=OrganisationType.ESTABLISHMENT, name="Hill School", urn="100001")
    dale = Organisation(type=OrganisationType.ESTABLISHMENT, name="Dale Academy", urn="100002")
    db.session.add_all([hill, dale])
    db.session.commit()
    return hill, dale


def test_organisations_are_searched_and_flagged_without_an_approver(client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    hill, dale = _organisations()
    teacher = make_user()
    head = make_user()
    db.session.add_all(
        [
            Membership(user=teacher, organisation=hill, role=MembershipRole.MEMBER),
            Membership(user=head, organisation=dale, role=MembershipRole.APPROVER),
        ]
    )
    db.session.commit()

    everything = page_text(client.get("/helpdesk/admin/organisations"))
    assert "Hill School" in everything
    assert "Dale Academy" in everything
    found = page_text(client.get("/helpdesk/admin/organisations?q=hill"))
    assert "Hill School" in found
    assert "Dale Academy" not in found
    assert "No approver" in found
    assert "Dale Academy" in page_text(client.get("/helpdesk/admin/organisations?q=100002"))
    flagged = page_text(client.get("/helpdesk/admin/organisations?no_approver=y"))
    assert "Hill School" in flagged
    assert "Dale Academy" not in flagged
    view = page_text(client.get(f"/helpdesk/admin/organisations/{hill.public_id}"))
    assert "has people but no approver" in view

    # A deactivated approver approves nothing (the rule of issue 7's list).
    db.session.add(Membership(user=make_user(), organisation=dale, role=MembershipRole.MEMBER))
    head.status = UserStatus.DEACTIVATED
    db.session.commit()
    assert "Dale Academy" in page_text(client.get("/helpdesk/admin/organisations?no_approver=y"))


def test_edit_an_organisation_and_see_a_clashing_urn(client: FlaskClient) -> None:
    admin = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    hill, _ = _organisations()
    url = f"/helpdesk/admin/organisations/{hill.public_id}/edit"
    assert 'value="100001"' in client.get(url).get_data(as_text=True)

    clash = post(client, url, {"name": "Hill School", "status": "open", "urn": "100002"})
    assert clash.status_code == 400
    assert "Another organisation (Dale Academy) already has this URN" in page_text(clash)
    soup = BeautifulSoup(clash.get_data(as_text=True), "html.parser")
    assert [a["href"] for a in soup.select(".govuk-error-summary a")] == ["#urn"]

    saved = post(
        client,
        url,
        {"name": "Hill Primary School", "status": "closed", "urn": "100003", "ukprn": "10012345"},
    )
    assert saved.status_code == 303
    db.session.expire_all()
    hill = db.session.get(Organisation, hill.id)
    assert (hill.name, hill.status, hill.urn, hill.ukprn) == (
        "Hill Primary School",
        OrganisationStatus.CLOSED,
        "100003",
        "10012345",
    )
    [event] = events("organisation.updated")
    assert event.actor_id == admin.sub
    assert event.details["changed"]["urn"] == {"from": "100001", "to": "100003"}


def test_give_change_and_remove_staff_roles(client: FlaskClient) -> None:
    admin = sign_in_staff(client, StaffRole.HELPDESK_ADMIN, email="admin@helpdesk.example")
    person = make_user(email="new.agent@helpdesk.example", given_name="Nia", family_name="New")

    unknown = post(
        client, "/helpdesk/admin/staff", {"email": "nobody@x.example", "role": "helpdesk"}
    )
    assert unknown.status_code == 400
    assert "No account uses this email address" in page_text(unknown)

    given = post(
        client, "/helpdesk/admin/staff", {"email": "New.Agent@helpdesk.example", "role": "helpdesk"}
    )
    assert given.status_code == 303
    db.session.expire_all()
    assert db.session.get(User, person.id).staff_role is StaffRole.HELPDESK
    [email] = emails_to(person.email)
    assert email.template == "staff_role_changed"
    assert "security key or passkey" in email.body
    assert "Nia New" in page_text(client.get("/helpdesk/admin/staff"))

    promoted = post(client, f"/helpdesk/admin/staff/{person.sub}", {"role": "helpdesk_admin"})
    assert promoted.status_code == 303
    removed = post(client, f"/helpdesk/admin/staff/{person.sub}", {"role": "none"})
    assert removed.status_code == 303
    db.session.expire_all()
    assert db.session.get(User, person.id).staff_role is None
    changes = [(e.details["from_role"], e.details["to_role"]) for e in events("staff.role_changed")]
    assert changes == [(None, "helpdesk"), ("helpdesk", "helpdesk_admin"), ("helpdesk_admin", None)]
    assert all(e.actor_id == admin.sub for e in events("staff.role_changed"))


def test_the_last_helpdesk_admin_cannot_be_removed_or_demoted(client: FlaskClient) -> None:
    admin = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    for role in ("helpdesk", "none"):
        response = post(client, f"/helpdesk/admin/staff/{admin.sub}", {"role": role})
        assert response.status_code == 400
        assert "is the last helpdesk admin" in page_text(response)
    db.session.expire_all()
    assert db.session.get(User, admin.id).staff_role is StaffRole.HELPDESK_ADMIN

    # A deactivated admin does not count: they cannot sign in to manage anything.
    make_user(staff_role=StaffRole.HELPDESK_ADMIN, status=UserStatus.DEACTIVATED)
    with pytest.raises(helpdesk_staff.LastHelpdeskAdmin):
        helpdesk_staff.set_role(admin, admin, StaffRole.HELPDESK)
    db.session.rollback()

    other = make_user(staff_role=StaffRole.HELPDESK_ADMIN)
    ok = post(client, f"/helpdesk/admin/staff/{admin.sub}", {"role": "helpdesk"})
    assert ok.status_code == 303
    with pytest.raises(helpdesk_staff.LastHelpdeskAdmin):
        helpdesk_staff.set_role(other, other, None)


def test_only_a_helpdesk_admin_may_change_roles_in_the_service_layer(app: Flask) -> None:
    agent = make_user(staff_role=StaffRole.HELPDESK)
    target = make_user()
    with pytest.raises(helpdesk_staff.NotAllowed):
        helpdesk_staff.set_role(agent, target, StaffRole.HELPDESK_ADMIN)
    assert target.staff_role is None


def _admin_urls() -> list[tuple[str, str]]:
    return [
        ("GET", "/helpdesk/admin/services"),
        ("GET", "/helpdesk/admin/services/new"),
        ("POST", "/helpdesk/admin/services/new"),
        ("GET", "/helpdesk/admin/services/attendance"),
        ("GET", "/helpdesk/admin/services/attendance/uris"),
        ("POST", "/helpdesk/admin/services/attendance/uris"),
        ("POST", "/helpdesk/admin/services/attendance/rotate"),
        ("GET", "/helpdesk/admin/services/attendance/new-secret"),
        ("GET", "/helpdesk/admin/organisations"),
        ("GET", "/helpdesk/admin/organisations/{org}"),
        ("GET", "/helpdesk/admin/organisations/{org}/edit"),
        ("POST", "/helpdesk/admin/organisations/{org}/edit"),
        ("GET", "/helpdesk/admin/staff"),
        ("POST", "/helpdesk/admin/staff"),
        ("GET", "/helpdesk/admin/staff/{sub}"),
        ("POST", "/helpdesk/admin/staff/{sub}"),
    ]


def test_a_helpdesk_agent_gets_403_on_every_admin_page(app: Flask, client: FlaskClient) -> None:
    agent = sign_in_staff(client, StaffRole.HELPDESK)
    admin = make_user(staff_role=StaffRole.HELPDESK_ADMIN)
    _service(admin)
    hill, _ = _organisations()
    urls = _admin_urls()
    admin_rules = {
        rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/helpdesk/admin")
    }
    tested = {
        u.replace("{org}", "<public_id>")
        .replace("{sub}", "<sub>")
        .replace("attendance", "<client_id>")
        for _, u in urls
    }
    assert admin_rules <= tested, f"untested admin pages: {admin_rules - tested}"
    # A valid CSRF token, so the refusal is the guard's and not the CSRF check's.
    token = csrf_token(client.get("/account/email"))
    for method, url in urls:
        url = url.format(org=hill.public_id, sub=agent.sub)
        response = client.open(url, method=method, data={"csrf_token": token})
        assert response.status_code == 403, (method, url)
    assert clients.get_service("attendance").redirect_uris == [GOOD]
