"""The approver rules in the service layer (idp.services.organisation_people; issue 7).

An approver sees and changes only their own organisation's people, whatever ids they pass;
the last approver is kept; a leaver is deactivated, signed out and their services told; the
affected person is emailed about every change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, text

from idp.auth.sso_cookie import COOKIE_NAME
from idp.extensions import db
from idp.models import (
    AccessPolicy,
    AuditEvent,
    Membership,
    Organisation,
    OrganisationType,
    StaffRole,
    User,
    UserStatus,
)
from idp.services import organisation_people as people
from idp.services import users
from idp.services.organisation_people import AccessError, NotPermitted
from idp.services.sso_sessions import get_sso_sessions
from idp.services.transaction import transaction
from tests.conftest import BACKEND
from tests.console.people_helpers import (
    add_person,
    make_org,
    make_service,
    queued_emails,
    queued_logouts,
    roles_of,
)
from tests.factories import SignIn, make_user
from tests.logout.conftest import register


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    """Two schools, each with an approver and a member; one granted service."""
    service = make_service()
    a, b = make_org("Hill Top Primary"), make_org("Riverside Academy")
    return {
        "service": service,
        "a": a,
        "b": b,
        "alice": add_person(a, approver=True, given_name="Alice", family_name="Archer"),
        "ann": add_person(a, given_name="Ann", family_name="Abbott", grants={service: ["viewer"]}),
        "bob": add_person(b, approver=True, given_name="Bob", family_name="Baker"),
        "ben": add_person(b, given_name="Ben", family_name="Brown", grants={service: ["viewer"]}),
    }


# -- who may act ---------------------------------------------------------------------------------


def _every_action(w: dict[str, Any], org: Organisation, target: User) -> list[Callable[[], Any]]:
    actor = w["alice"]
    return [
        lambda: people.organisation_for(actor, org.public_id),
        lambda: people.list_people(actor, org),
        lambda: people.person(actor, org, target.sub),
        lambda: people.grantable_services(actor, org),
        lambda: people.invite_person(
            actor, org, email="new.person@school.example", given_name="N", family_name="P"
        ),
        lambda: people.change_access(actor, org, target.sub, {}),
        lambda: people.set_approver(actor, org, target.sub, True),
        lambda: people.remove_person(actor, org, target.sub),
        lambda: people.resend_invitation(actor, org, target.sub),
    ]


def test_an_approver_of_school_a_can_do_nothing_at_school_b(world: dict[str, Any]) -> None:
    for action in _every_action(world, world["b"], world["ben"]):
        with pytest.raises(NotPermitted):
            action()
    # Nothing changed at school B, and nobody was emailed.
    assert roles_of(world["ben"], world["b"], world["service"]) == ["viewer"]
    assert users.find_by_email("new.person@school.example") is None
    assert queued_emails(world["ben"].email) == []


def test_school_b_people_cannot_be_reached_through_school_a(world: dict[str, Any]) -> None:
    # Alice is an approver of A; Ben belongs to B only: naming him under A is refused.
    a, ben, alice = world["a"], world["ben"], world["alice"]
    for call in (
        lambda: people.person(alice, a, ben.sub),
        lambda: people.change_access(alice, a, ben.sub, {}),
        lambda: people.set_approver(alice, a, ben.sub, True),
        lambda: people.remove_person(alice, a, ben.sub),
        lambda: people.resend_invitation(alice, a, ben.sub),
    ):
        with pytest.raises(NotPermitted):
            call()
    db.session.expire_all()
    assert roles_of(ben, world["b"], world["service"]) == ["viewer"]
    assert ben.status is UserStatus.ACTIVE


def test_a_member_who_is_not_an_approver_can_do_nothing(world: dict[str, Any]) -> None:
    ann, a, alice = world["ann"], world["a"], world["alice"]
    assert people.organisations_approved_by(ann) == []
    with pytest.raises(NotPermitted):
        people.list_people(ann, a)
    with pytest.raises(NotPermitted):
        people.set_approver(ann, a, ann.sub, True)
    with pytest.raises(NotPermitted):
        people.remove_person(ann, a, alice.sub)


def test_a_deactivated_approver_can_do_nothing(world: dict[str, Any]) -> None:
    alice = world["alice"]
    alice.status = UserStatus.DEACTIVATED
    db.session.commit()
    assert people.organisations_approved_by(alice) == []
    with pytest.raises(NotPermitted):
        people.list_people(alice, world["a"])


def test_forged_ids_are_not_found(world: dict[str, Any]) -> None:
    with pytest.raises(NotPermitted):
        people.organisation_for(world["alice"], "not-an-organisation")
    with pytest.raises(NotPermitted):
        people.person(world["alice"], world["a"], "00000000-0000-0000-0000-000000000000")


# -- reading -------------------------------------------------------------------------------------


def test_people_are_sorted_searchable_and_paginated_with_their_access(
    world: dict[str, Any],
) -> None:
    a, alice, service = world["a"], world["alice"], world["service"]
    for n in range(5):
        add_person(a, given_name=f"Zed{n}", family_name="Zulu", grants={service: ["editor"]})
    page = people.list_people(alice, a, per_page=3)
    assert (page.total, page.pages, page.page) == (7, 3, 1)
    assert [r.user.family_name for r in page.items] == ["Abbott", "Archer", "Zulu"]
    first = page.items[0]
    assert not first.is_approver
    assert page.items[1].is_approver
    assert [(g.service.name, [r.code for r in g.roles]) for g in first.grants] == [
        ("Pupil data", ["viewer"])
    ]
    last = people.list_people(alice, a, per_page=3, page=99)
    assert last.page == 3
    assert len(last.items) == 1
    found = people.list_people(alice, a, search="ALICE arch")
    assert [r.user.given_name for r in found.items] == ["Alice"]
    by_email = people.list_people(alice, a, search=world["ann"].email.upper())
    assert [r.user.given_name for r in by_email.items] == ["Ann"]
    # A search never reaches another school's people, nor treats % as a wildcard.
    assert people.list_people(alice, a, search="Ben").total == 0
    assert people.list_people(alice, a, search="%").total == 0


@pytest.fixture
def count_queries(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    yield statements
    event.remove(db.engine, "before_cursor_execute", before)


def test_the_list_loads_access_in_bulk_not_per_person(
    world: dict[str, Any], count_queries: list[str]
) -> None:
    a, alice, service = world["a"], world["alice"], world["service"]
    other = make_service("census", "School census")
    people.list_people(alice, a)
    few = len(count_queries)
    for n in range(30):
        add_person(a, given_name=f"P{n}", grants={service: ["viewer", "editor"], other: []})
    db.session.expire_all()
    count_queries.clear()
    page = people.list_people(alice, a)
    assert len(page.items) == 32
    assert all(len(r.grants) == 2 for r in page.items if r.user.given_name.startswith("P"))
    assert len(count_queries) <= few + 1  # the services query appears once there are grants


def test_only_granted_services_with_roles_allowed_for_the_org_type_are_offered(
    world: dict[str, Any],
) -> None:
    make_service("open-info", "Open information", AccessPolicy.OPEN)
    la = make_org("Shire Council", OrganisationType.LOCAL_AUTHORITY, la_code="999")
    add_person(la, user=world["alice"], approver=True)
    [school] = people.grantable_services(world["alice"], world["a"])
    assert school.service.client_id == "pupil-data"
    assert [r.code for r in school.roles] == ["editor", "viewer"]
    [council] = people.grantable_services(world["alice"], la)
    assert [r.code for r in council.roles] == ["editor", "la_admin", "viewer"]


# -- inviting ------------------------------------------------------------------------------------


def test_inviting_a_new_person_creates_an_invited_account_with_access(
    world: dict[str, Any],
) -> None:
    a, alice, service = world["a"], world["alice"], world["service"]
    with transaction():
        outcome = people.invite_person(
            alice,
            a,
            email=" New.Teacher@School.example ",
            given_name="Grace",
            family_name="Hopper",
            services={"pupil-data": ["editor"]},
        )
    assert outcome.new_account
    grace = users.find_by_email("new.teacher@school.example")
    assert grace is not None
    assert grace.status is UserStatus.INVITED
    assert roles_of(grace, a, service) == ["editor"]
    [(template, values)] = queued_emails(grace.email)
    assert template == "invitation"
    assert values["organisation_name"] == "Hill Top Primary"
    assert values["inviter_name"] == "Alice Archer"
    events = set(db.session.scalars(select(AuditEvent.event)))
    assert {"user.created", "membership.added", "access.granted", "invitation.sent"} <= events


def test_inviting_an_existing_account_adds_them_and_tells_them(world: dict[str, Any]) -> None:
    a, alice, ben, service = world["a"], world["alice"], world["ben"], world["service"]
    with transaction():
        outcome = people.invite_person(
            alice,
            a,
            email=ben.email,
            given_name="Benjamin",
            family_name="B",
            approver=True,
            services={"pupil-data": ["viewer"]},
        )
    assert not outcome.new_account
    assert roles_of(ben, a, service) == ["viewer"]
    assert roles_of(ben, world["b"], service) == ["viewer"]  # school B untouched
    db.session.expire_all()
    assert ben.given_name == "Ben"  # an existing account keeps its own name
    [(template, values)] = queued_emails(ben.email)
    assert template == "added_to_organisation"
    assert values["approver"] == "yes"
    assert "Pupil data (Viewer)" in values["services"]


def test_inviting_refuses_role_mailboxes_members_and_ungrantable_access(
    world: dict[str, Any],
) -> None:
    a, alice = world["a"], world["alice"]
    make_service("open-info", "Open information", AccessPolicy.OPEN)

    def invite(**kw: Any) -> None:
        values = {"email": "someone@school.example", "given_name": "S", "family_name": "O"}
        with transaction():
            people.invite_person(alice, a, **{**values, **kw})

    with pytest.raises(users.RoleMailboxRefused, match="shared mailbox"):
        invite(email="office@school.example")
    with pytest.raises(AccessError, match="already in Hill Top Primary"):
        invite(email=world["ann"].email)
    with pytest.raises(AccessError, match="Choose from the services"):
        invite(services={"open-info": []})
    with pytest.raises(AccessError, match="cannot hold"):
        invite(services={"pupil-data": ["la_admin"]})
    # Nothing half-written by any refusal.
    assert users.find_by_email("someone@school.example") is None
    assert users.find_by_email("office@school.example") is None


def test_resend_invitation_only_for_invited_people(world: dict[str, Any]) -> None:
    a, alice = world["a"], world["alice"]
    invited = add_person(a, email="pending@school.example", status=UserStatus.INVITED)
    with transaction():
        people.resend_invitation(alice, a, invited.sub)
    assert [t for t, _ in queued_emails(invited.email)] == ["invitation"]
    with pytest.raises(AccessError, match="already set up"):
        people.resend_invitation(alice, a, world["ann"].sub)


# -- changing ------------------------------------------------------------------------------------


def test_changing_access_replaces_grants_audits_and_emails(world: dict[str, Any]) -> None:
    a, alice, ann, service = world["a"], world["alice"], world["ann"], world["service"]
    census = make_service("census", "School census")
    with transaction():
        assert people.change_access(alice, a, ann.sub, {"census": [], "pupil-data": ["editor"]})
    assert roles_of(ann, a, service) == ["editor"]
    assert roles_of(ann, a, census) == []
    with transaction():
        assert people.change_access(alice, a, ann.sub, {"census": []})
    assert roles_of(ann, a, service) is None
    with transaction():
        assert not people.change_access(alice, a, ann.sub, {"census": []})  # nothing to do
    emails = queued_emails(ann.email)
    assert [t for t, _ in emails] == ["access_changed", "access_changed"]
    assert emails[-1][1]["services"] == "- School census"
    events = list(db.session.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))
    assert events.count("access.removed") == 1
    assert "access.changed" in events


def test_a_save_from_a_stale_page_is_refused_not_silently_undone(world: dict[str, Any]) -> None:
    a, alice, ann, service = world["a"], world["alice"], world["ann"], world["service"]
    opened = people.person(alice, a, ann.sub).access_version
    with transaction():  # another approver, or another tab, changes Ann's access meanwhile
        people.change_access(alice, a, ann.sub, {"pupil-data": ["editor"]})
    with pytest.raises(people.ChangedMeanwhile, match="changed by someone else"):
        people.change_access(alice, a, ann.sub, {}, expected_version=opened)
    assert roles_of(ann, a, service) == ["editor"]
    fresh = people.person(alice, a, ann.sub).access_version
    with transaction():
        people.change_access(alice, a, ann.sub, {}, expected_version=fresh)
    assert roles_of(ann, a, service) is None


def test_promote_and_demote_but_never_the_last_approver(world: dict[str, Any]) -> None:
    a, alice, ann = world["a"], world["alice"], world["ann"]
    with pytest.raises(AccessError, match="only approver"):
        people.set_approver(alice, a, alice.sub, False)
    with pytest.raises(AccessError, match="only approver"):
        people.remove_person(alice, a, alice.sub)
    with transaction():
        assert people.set_approver(alice, a, ann.sub, True)
    with transaction():
        assert people.set_approver(alice, a, alice.sub, False)
    assert [u.id for u in people.access.approvers_of(a)] == [ann.id]
    # Alice is no longer an approver, so she can no longer act.
    with pytest.raises(NotPermitted):
        people.set_approver(alice, a, alice.sub, True)
    assert [v["change"] for t, v in queued_emails(ann.email) if t == "approver_changed"] == ["made"]
    assert [v["change"] for t, v in queued_emails(alice.email)] == ["removed"]


@pytest.mark.skipif(BACKEND != "server", reason="row locks need PostgreSQL")
def test_two_approvers_demoting_each_other_at_once_leave_one(
    world: dict[str, Any], app: Flask
) -> None:
    """Each would count two approvers; the organisation lock makes the second count again."""
    a, alice = world["a"], world["alice"]
    ann = world["ann"]
    with transaction():
        people.set_approver(alice, a, ann.sub, True)
    ids = {"a": a.id, "ann": ann.id, "alice_sub": alice.sub}
    finished = threading.Event()
    outcome: list[str] = []

    def ann_demotes_alice() -> None:
        with app.app_context():
            try:
                with transaction():
                    people.set_approver(
                        db.session.get(User, ids["ann"]),
                        db.session.get(Organisation, ids["a"]),
                        ids["alice_sub"],
                        False,
                    )
                outcome.append("demoted")
            except (AccessError, NotPermitted) as refused:
                outcome.append(type(refused).__name__)
            finally:
                db.session.remove()
                finished.set()

    def other_is_waiting_for_a_lock() -> bool:
        with db.engine.connect() as conn:
            return bool(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                )
            )

    # Alice demotes Ann and has not committed yet when Ann demotes Alice.
    people.set_approver(alice, a, ann.sub, False)
    other = threading.Thread(target=ann_demotes_alice)
    other.start()
    for _ in range(200):  # bounded: until Ann's request waits for Alice's, or is done
        if finished.wait(0.05) or other_is_waiting_for_a_lock():
            break
    db.session.commit()
    other.join(timeout=10)
    assert outcome == ["NotPermitted"]  # by the time it runs, Ann is no longer an approver
    db.session.expire_all()
    assert [u.id for u in people.access.approvers_of(a)] == [alice.id]


# -- leavers -------------------------------------------------------------------------------------


def test_removing_someone_with_another_organisation_keeps_their_account(
    world: dict[str, Any],
) -> None:
    a, alice, ben = world["a"], world["alice"], world["ben"]
    add_person(a, user=ben)
    with transaction():
        removal = people.remove_person(alice, a, ben.sub)
    assert not removal.deactivated
    db.session.expire_all()
    assert ben.status is UserStatus.ACTIVE
    assert [m.organisation_id for m in ben.memberships] == [world["b"].id]
    [(template, values)] = queued_emails(ben.email)
    assert (template, values["deactivated"]) == ("removed_from_organisation", "no")


def test_a_leaver_is_deactivated_signed_out_and_their_services_told(
    world: dict[str, Any], app: Flask
) -> None:
    a, alice, ann = world["a"], world["alice"], world["ann"]
    register("pupil-records", backchannel="http://127.0.0.1:9/pupil-records/bc")
    register("no-backchannel")
    browser = app.test_client()
    SignIn(browser).completed(ann.email)
    # Ann signed in to two services; only one has a back-channel logout URI.
    sessions, value = get_sso_sessions(), _cookie_value(browser)
    sessions.add_service(value, "pupil-records")
    sessions.add_service(value, "no-backchannel")

    with transaction():
        removal = people.remove_person(alice, a, ann.sub)

    assert removal.deactivated
    assert removal.sessions_ended == 1
    db.session.expire_all()
    assert ann.status is UserStatus.DEACTIVATED
    assert get_sso_sessions().list_for_user(ann.sub) == []
    assert queued_logouts() == ["pupil-records"]
    assert db.session.scalar(select(Membership).where(Membership.user_id == ann.id)) is None
    [(template, values)] = queued_emails(ann.email)
    assert (template, values["deactivated"]) == ("removed_from_organisation", "yes")
    events = set(db.session.scalars(select(AuditEvent.event)))
    assert {"membership.removed", "user.deactivated", "sessions.ended"} <= events
    # Signed out for good: the old browser session no longer opens anything.
    assert browser.get("/account").status_code in (302, 303)


def test_helpdesk_staff_are_never_deactivated_by_a_school(world: dict[str, Any]) -> None:
    a, alice = world["a"], world["alice"]
    agent = add_person(a, user=make_user(staff_role=StaffRole.HELPDESK))
    with transaction():
        removal = people.remove_person(alice, a, agent.sub)
    assert not removal.deactivated
    db.session.expire_all()
    assert agent.status is UserStatus.ACTIVE


def _cookie_value(client: Any) -> str:
    cookie = client.get_cookie(COOKIE_NAME)
    assert cookie is not None
    return str(cookie.value)


# -- for the helpdesk ----------------------------------------------------------------------------


def test_organisations_without_an_approver(world: dict[str, Any]) -> None:
    orphan = make_org("Orphan School")
    add_person(orphan)
    gone = make_org("Gone Approver School")
    add_person(gone)
    left = add_person(gone, approver=True)
    left.status = UserStatus.DEACTIVATED
    make_org("Empty School")  # nobody there, nobody waiting
    db.session.commit()
    page = people.organisations_without_approver()
    assert [(o.organisation.name, o.members) for o in page.items] == [
        ("Gone Approver School", 1),
        ("Orphan School", 1),
    ]
    small = people.organisations_without_approver(per_page=1, page=2)
    assert (small.total, small.pages, [o.organisation.name for o in small.items]) == (
        2,
        2,
        ["Orphan School"],
    )


# -- the emails ----------------------------------------------------------------------------------

EMAIL_SAMPLES = {
    "added_to_organisation": {
        "organisation_name": "Hill Top Primary",
        "services": "- Pupil data (Viewer)",
        "link": "http://localhost/",
        "added_by": "Alice Archer",
        "approver": "yes",
    },
    "access_changed": {"organisation_name": "Hill Top Primary", "services": "- Pupil data"},
    "approver_changed": {"organisation_name": "Hill Top Primary", "change": "removed"},
    "removed_from_organisation": {"organisation_name": "Hill Top Primary", "deactivated": "yes"},
}


@pytest.mark.parametrize("name", sorted(EMAIL_SAMPLES))
def test_each_approver_email_renders_in_plain_english(name: str) -> None:
    from idp.services.mail import templates

    subject, body = templates.render(name, templates.normalise(name, EMAIL_SAMPLES[name]))
    assert "Hill Top Primary" in subject
    assert "{" not in subject + body
    assert "\n\n\n" not in body
    assert body.endswith("Department for Education\n")
    if name == "removed_from_organisation":
        assert "your Secure Access account has been closed" in body
    if name == "added_to_organisation":
        assert "as an approver" in body
        assert "- Pupil data (Viewer)" in body
