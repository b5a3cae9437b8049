"""The approver pages over HTTP (issue 7): what an approver sees and can do, and what a forged
URL gets (404, never another school's people; D06 forced browsing)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent, UserStatus
from idp.services import users
from tests.console.people_helpers import (
    add_person,
    make_org,
    make_service,
    queued_emails,
    roles_of,
)
from tests.factories import SignIn, csrf_token, page_text


@pytest.fixture
def school(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """Alice, approver of Hill Top Primary, signed in; Ann a member; Riverside next door."""
    service = make_service()
    a, b = make_org("Hill Top Primary"), make_org("Riverside Academy")
    alice = add_person(a, approver=True, given_name="Alice", family_name="Archer")
    ann = add_person(a, given_name="Ann", family_name="Abbott", grants={service: ["viewer"]})
    bob = add_person(b, approver=True, given_name="Bob", family_name="Baker")
    ben = add_person(b, given_name="Ben", family_name="Brown", grants={service: ["viewer"]})
    SignIn(client).completed(alice.email)
    return {"service": service, "a": a, "b": b, "alice": alice, "ann": ann, "bob": bob, "ben": ben}


def people_url(org: Any) -> str:
    return f"/organisations/{org.public_id}/people"


def person_url(org: Any, user: Any, action: str = "") -> str:
    return f"/organisations/{org.public_id}/people/{user.sub}" + (f"/{action}" if action else "")


def post_form(client: FlaskClient, url: str, data: dict[str, Any], page: str | None = None) -> Any:
    """POST ``data`` with the CSRF token from ``page`` (default: ``url`` itself)."""
    token = csrf_token(client.get(page or url))
    return client.post(url, data={**data, "csrf_token": token})


# -- finding your organisation -------------------------------------------------------------------


def test_one_organisation_goes_straight_to_its_people(
    client: FlaskClient, school: dict[str, Any]
) -> None:
    response = client.get("/organisations/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(people_url(school["a"]))


def test_several_organisations_are_listed(client: FlaskClient, school: dict[str, Any]) -> None:
    add_person(school["b"], user=school["alice"], approver=True)
    text = page_text(client.get("/organisations/"))
    assert "Hill Top Primary" in text
    assert "Riverside Academy" in text


def test_someone_who_approves_nowhere_is_told_who_approvers_are(
    app: Flask, school: dict[str, Any]
) -> None:
    member = app.test_client()
    SignIn(member).completed(school["ann"].email)
    response = member.get("/organisations/")
    assert response.status_code == 403
    assert "ask one of your organisation's approvers" in page_text(response)
    # and a member cannot open their own organisation's people page either
    assert member.get(people_url(school["a"])).status_code == 404


def test_signed_out_goes_to_sign_in(app: Flask, school: dict[str, Any]) -> None:
    response = app.test_client().get(people_url(school["a"]))
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


# -- the people page -----------------------------------------------------------------------------


def test_people_page_lists_people_with_status_permission_and_access(
    client: FlaskClient, school: dict[str, Any]
) -> None:
    add_person(school["a"], email="new@school.example", status=UserStatus.INVITED)
    response = client.get(people_url(school["a"]))
    assert response.status_code == 200
    text = page_text(response)
    assert "3 people" in text
    assert "Abbott, Ann" in text
    assert "Pupil data (Viewer)" in text
    assert "Invitation sent" in text
    assert "Approver" in text
    assert "Brown" not in text  # another school's member
    found = page_text(client.get(people_url(school["a"]) + "?q=abbott"))
    assert "1 person found" in found
    assert "Archer" not in found


def test_people_page_paginates_at_fifty(client: FlaskClient, school: dict[str, Any]) -> None:
    for n in range(50):
        add_person(school["a"], given_name=f"P{n:02d}", family_name="Zulu")
    first = page_text(client.get(people_url(school["a"])))
    assert "52 people, page 1 of 2" in first
    second = client.get(people_url(school["a"]) + "?page=2")
    assert "Zulu, P49" in page_text(second)
    assert "Abbott" not in page_text(second)
    assert client.get(people_url(school["a"]) + "?page=abc").status_code == 200


# -- forged and foreign ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "action", "data"),
    [
        ("get", "", {}),
        ("post", "", {"services": "pupil-data"}),
        ("post", "approver", {"approver": "yes"}),
        ("get", "remove", {}),
        ("post", "remove", {}),
        ("post", "resend-invitation", {}),
    ],
)
def test_another_schools_person_is_not_found_through_your_school(
    client: FlaskClient, school: dict[str, Any], method: str, action: str, data: dict[str, str]
) -> None:
    a, b, ben = school["a"], school["b"], school["ben"]
    token = csrf_token(client.get(f"/organisations/{a.public_id}/people/invite"))
    for url in (person_url(a, ben, action), person_url(b, ben, action)):
        if method == "get":
            response = client.get(url)
        else:
            response = client.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 404, url
        assert "Page not found" in page_text(response)
    db.session.expire_all()
    assert ben.status is UserStatus.ACTIVE
    assert roles_of(ben, b, school["service"]) == ["viewer"]
    refused = db.session.scalars(
        select(AuditEvent).where(AuditEvent.event == "approver.refused")
    ).all()
    assert len(refused) == 2
    assert {e.actor_id for e in refused} == {school["alice"].sub}


def test_forged_and_foreign_organisation_ids_are_not_found(
    client: FlaskClient, school: dict[str, Any]
) -> None:
    for org_id in (school["b"].public_id, "nonsense", "0" * 400):
        assert client.get(f"/organisations/{org_id}/people").status_code == 404
        assert client.get(f"/organisations/{org_id}/people/invite").status_code == 404
    assert client.get(person_url(school["a"], school["ann"])[:-4] + "zzzz").status_code == 404


# -- inviting ------------------------------------------------------------------------------------


def test_invite_a_new_person_with_a_service_and_role(
    client: FlaskClient, school: dict[str, Any]
) -> None:
    url = f"/organisations/{school['a'].public_id}/people/invite"
    page = client.get(url)
    text = page_text(page)
    assert "Pupil data" in text
    assert "LA admin" not in text  # not a role a school may hold
    response = post_form(
        client,
        url,
        {
            "email": "grace@school.example",
            "given_name": "Grace",
            "family_name": "Hopper",
            "approver": "no",
            "roles": "pupil-data:editor",
        },
    )
    assert response.status_code == 302
    grace = users.find_by_email("grace@school.example")
    assert grace is not None
    assert roles_of(grace, school["a"], school["service"]) == ["editor"]
    assert [t for t, _ in queued_emails(grace.email)] == ["invitation"]
    listed = page_text(client.get(response.headers["Location"]))
    assert "Grace Hopper has been added to Hill Top Primary" in listed


def test_invite_shows_errors_in_the_summary(client: FlaskClient, school: dict[str, Any]) -> None:
    url = f"/organisations/{school['a'].public_id}/people/invite"
    empty = post_form(client, url, {"approver": "no"})
    assert empty.status_code == 400
    text = page_text(empty)
    assert "Enter their email address" in text
    assert "Enter their first name" in text
    assert 'href="#email"' in empty.get_data(as_text=True)
    mailbox = post_form(
        client,
        url,
        {"email": "office@school.example", "given_name": "O", "family_name": "F", "approver": "no"},
    )
    assert mailbox.status_code == 400
    assert "not a shared mailbox like office@" in page_text(mailbox)
    forged = post_form(
        client,
        url,
        {
            "email": "x@school.example",
            "given_name": "X",
            "family_name": "Y",
            "approver": "no",
            "roles": "pupil-data:la_admin",
        },
    )
    assert forged.status_code == 400
    assert "Choose from the services and roles listed" in page_text(forged)
    assert users.find_by_email("x@school.example") is None


# -- a person's page -----------------------------------------------------------------------------


def test_change_a_persons_services_and_roles(client: FlaskClient, school: dict[str, Any]) -> None:
    a, ann, service = school["a"], school["ann"], school["service"]
    page = client.get(person_url(a, ann))
    assert page.status_code == 200
    assert 'value="pupil-data:viewer" checked' in page.get_data(as_text=True)
    response = post_form(
        client, person_url(a, ann), {"services": "pupil-data", "roles": ["pupil-data:editor"]}
    )
    assert response.status_code == 302
    assert roles_of(ann, a, service) == ["editor"]
    assert "services have been changed" in page_text(client.get(response.headers["Location"]))
    removed = post_form(client, person_url(a, ann), {})
    assert removed.status_code == 302
    assert roles_of(ann, a, service) is None
    assert [t for t, _ in queued_emails(ann.email)] == ["access_changed", "access_changed"]


def test_a_stale_tab_cannot_undo_another_approvers_change(
    client: FlaskClient, school: dict[str, Any]
) -> None:
    a, ann, service = school["a"], school["ann"], school["service"]
    stale = client.get(person_url(a, ann))  # tab 1 opens Ann's page
    fresh = post_form(client, person_url(a, ann), {"roles": "pupil-data:editor"})  # tab 2 saves
    assert fresh.status_code == 302
    soup_token = csrf_token(stale)
    version = re.search(r'name="version" type="hidden" value="(\w+)"', stale.get_data(as_text=True))
    assert version is not None
    response = client.post(
        person_url(a, ann), data={"csrf_token": soup_token, "version": version.group(1)}
    )
    assert response.status_code == 400
    assert "changed by someone else after you opened this page" in page_text(response)
    assert 'value="pupil-data:editor" checked' in response.get_data(as_text=True)
    assert roles_of(ann, a, service) == ["editor"]


def test_make_and_remove_approver_but_never_the_last(
    client: FlaskClient, school: dict[str, Any]
) -> None:
    a, alice, ann = school["a"], school["alice"], school["ann"]
    last = post_form(
        client, person_url(a, alice, "approver"), {"approver": "no"}, page=person_url(a, alice)
    )
    assert last.status_code == 400
    assert "Alice Archer is the only approver for Hill Top Primary" in page_text(last)
    made = post_form(
        client, person_url(a, ann, "approver"), {"approver": "yes"}, page=person_url(a, ann)
    )
    assert made.status_code == 302
    assert "Ann Abbott is now an approver" in page_text(client.get(made.headers["Location"]))
    # Alice steps down now that Ann approves: she is sent back to her (now empty) list.
    down = post_form(
        client, person_url(a, alice, "approver"), {"approver": "no"}, page=person_url(a, alice)
    )
    assert down.headers["Location"].endswith("/organisations/")
    assert client.get(people_url(a)).status_code == 404


def test_resend_an_invitation(client: FlaskClient, school: dict[str, Any]) -> None:
    a = school["a"]
    invited = add_person(a, email="pending@school.example", status=UserStatus.INVITED)
    response = post_form(
        client, person_url(a, invited, "resend-invitation"), {}, page=person_url(a, invited)
    )
    assert response.status_code == 302
    assert [t for t, _ in queued_emails(invited.email)] == ["invitation"]
    active = post_form(
        client,
        person_url(a, school["ann"], "resend-invitation"),
        {},
        page=person_url(a, school["ann"]),
    )
    assert active.status_code == 400
    assert "already set up their account" in page_text(active)


def test_remove_a_leaver_closes_their_account(client: FlaskClient, school: dict[str, Any]) -> None:
    a, ann = school["a"], school["ann"]
    confirm = client.get(person_url(a, ann, "remove"))
    assert "their account will be closed" in page_text(confirm)
    done = post_form(client, person_url(a, ann, "remove"), {})
    assert done.status_code == 200
    text = page_text(done)
    assert "Ann Abbott has been removed from Hill Top Primary" in text
    assert "their account has been closed" in text
    db.session.expire_all()
    assert ann.status is UserStatus.DEACTIVATED
    assert client.get(person_url(a, ann)).status_code == 404


def test_removing_the_last_approver_is_refused_with_a_clear_message(
    client: FlaskClient, school: dict[str, Any]
) -> None:
    a, alice = school["a"], school["alice"]
    response = post_form(client, person_url(a, alice, "remove"), {})
    assert response.status_code == 400
    assert "Make someone else an approver before removing them" in page_text(response)
    db.session.expire_all()
    assert alice.status is UserStatus.ACTIVE
