"""Two people inviting the same new address at the same moment (idp.services.users.find_or_create).

The loser of the race must carry on as if the account had been there when it looked: added to
its organisation and told by email, or "already in" for the same organisation. Never a
database error (a 500 on the page), never a second account or a half-written invitation. The
approver's invitation is raced against another approver, the helpdesk's Authentix import and a
service's API invitation; on PostgreSQL also with two real concurrent transactions.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, text

from idp.extensions import db
from idp.models import AuditEvent, Membership, Organisation, User
from idp.services import organisation_people as people
from idp.services.authentix_import import import_staff
from idp.services.organisation_people import AccessError, InviteOutcome
from idp.services.transaction import transaction
from tests.api.conftest import ApiCaller, register_api_service
from tests.authentix import seed, staff_csv
from tests.conftest import BACKEND
from tests.console.people_helpers import add_person, make_org, make_service, queued_emails
from tests.factories import SignIn, csrf_token, page_text

NEW = "grace.hopper@school.example"


@pytest.fixture
def schools(app: Flask) -> dict[str, Any]:
    """Two schools; Alice and Amir approve at Hill Top, Bob at Riverside."""
    make_service()
    a, b = make_org("Hill Top Primary"), make_org("Riverside Academy")
    return {
        "a": a,
        "b": b,
        "alice": add_person(a, approver=True, given_name="Alice", family_name="Archer"),
        "amir": add_person(a, approver=True, given_name="Amir", family_name="Aziz"),
        "bob": add_person(b, approver=True, given_name="Bob", family_name="Baker"),
    }


def _invite(actor: User, organisation: Organisation) -> InviteOutcome:
    return people.invite_person(
        actor,
        organisation,
        email=NEW,
        given_name="Grace",
        family_name="Hopper",
        services={"pupil-data": ["viewer"]},
    )


def _invite_elsewhere(app: Flask, actor_id: int, organisation_id: int) -> InviteOutcome:
    """The other inviter: its own app context, so its own session and database connection."""
    with app.app_context():
        try:
            with transaction():
                return _invite(
                    db.session.get(User, actor_id), db.session.get(Organisation, organisation_id)
                )
        finally:
            db.session.remove()


def _accounts() -> int:
    return int(db.session.scalar(select(func.count()).select_from(User).where(User.email == NEW)))


def _organisations_of_new_person() -> list[str]:
    return sorted(
        db.session.scalars(
            select(Organisation.name)
            .join(Membership, Membership.organisation_id == Organisation.id)
            .join(User, User.id == Membership.user_id)
            .where(User.email == NEW)
        )
    )


@pytest.fixture
def someone_else_invites_first(app: Flask) -> Iterator[dict[str, Any]]:
    """Just before this session inserts the new account, another inviter creates and commits it.

    That is the losing side of the race, made certain: both looked and found no account. The
    other invitation goes through the real services and the real database on a second
    connection; nothing of ours is replaced.
    """
    plan: dict[str, Any] = {"by": None, "outcome": None}

    def before_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if plan["by"] is None or plan["outcome"] is not None:
            return
        if statement.lstrip().upper().startswith("INSERT INTO USERS"):
            plan["outcome"] = "running"
            plan["outcome"] = _invite_elsewhere(app, *plan["by"])

    event.listen(db.engine, "before_cursor_execute", before_insert)
    try:
        yield plan
    finally:
        event.remove(db.engine, "before_cursor_execute", before_insert)


def test_the_loser_of_the_race_adds_the_person_it_did_not_create(
    schools: dict[str, Any], someone_else_invites_first: dict[str, Any]
) -> None:
    alice, bob = schools["alice"], schools["bob"]
    someone_else_invites_first["by"] = (bob.id, schools["b"].id)
    with transaction():
        outcome = _invite(alice, schools["a"])

    assert someone_else_invites_first["outcome"].new_account  # Bob's invitation created it
    assert not outcome.new_account  # Alice's behaves as if it had been there
    db.session.expire_all()
    assert _accounts() == 1
    assert _organisations_of_new_person() == ["Hill Top Primary", "Riverside Academy"]
    # One invitation (from Bob, who created the account), and Alice's "you've been added".
    assert sorted(template for template, _ in queued_emails(NEW)) == [
        "added_to_organisation",
        "invitation",
    ]
    created = db.session.scalars(
        select(AuditEvent.actor_id).where(AuditEvent.event == "user.created")
    ).all()
    assert created == [bob.sub]


def test_the_loser_in_the_same_school_is_told_the_person_is_already_there(
    schools: dict[str, Any], someone_else_invites_first: dict[str, Any]
) -> None:
    someone_else_invites_first["by"] = (schools["amir"].id, schools["a"].id)
    already = "Grace Hopper is already in Hill Top Primary"
    with pytest.raises(AccessError, match=already), transaction():
        _invite(schools["alice"], schools["a"])

    db.session.expire_all()
    assert _accounts() == 1
    assert _organisations_of_new_person() == ["Hill Top Primary"]
    assert [template for template, _ in queued_emails(NEW)] == ["invitation"]  # Amir's only


def test_the_invite_page_gives_the_loser_its_normal_outcome(
    client: FlaskClient, schools: dict[str, Any], someone_else_invites_first: dict[str, Any]
) -> None:
    SignIn(client).completed(schools["alice"].email)
    url = f"/organisations/{schools['a'].public_id}/people/invite"
    token = csrf_token(client.get(url))
    someone_else_invites_first["by"] = (schools["bob"].id, schools["b"].id)
    response = client.post(
        url,
        data={
            "email": NEW,
            "given_name": "Grace",
            "family_name": "Hopper",
            "approver": "no",
            "roles": "pupil-data:viewer",
            "csrf_token": token,
        },
    )
    assert someone_else_invites_first["outcome"].new_account
    assert response.status_code == 302
    listed = page_text(client.get(response.headers["Location"]))
    assert "Grace Hopper has been added to Hill Top Primary and sent an email" in listed
    assert _accounts() == 1
    assert _organisations_of_new_person() == ["Hill Top Primary", "Riverside Academy"]


def test_a_helpdesk_import_that_loses_the_race_adds_the_approvers_new_person(
    app: Flask, someone_else_invites_first: dict[str, Any]
) -> None:
    """The helpdesk's way of adding people (the Authentix import) against an approver's invite."""
    seed()  # Hill Top Primary (URN 100001), Riverside Academy (URN 100002), pupil-data
    hill_top = db.session.scalar(select(Organisation).where(Organisation.urn == "100001"))
    alice = add_person(hill_top, approver=True, given_name="Alice", family_name="Archer")
    someone_else_invites_first["by"] = (alice.id, hill_top.id)
    rows = staff_csv(
        f"100002,{NEW},Grace,Hopper,no,pupil-data:editor",
        "100002,alan.turing@riverside.example,Alan,Turing,no,",
    )

    result = import_staff(io.StringIO(rows, newline=""), actor="helpdesk")

    assert someone_else_invites_first["outcome"].new_account  # Alice's invitation created her
    # Grace's account counts as existing: Alan is the only one the import created.
    assert result.users_created == 1
    assert result.memberships_added == 2
    assert result.invitations_sent == 1  # Alan's; Grace's invitation from Alice is still live
    assert result.errors == []
    db.session.expire_all()
    assert _accounts() == 1
    assert _organisations_of_new_person() == ["Hill Top Primary", "Riverside Academy"]
    assert [template for template, _ in queued_emails(NEW)] == ["invitation"]
    summary = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "import.authentix"))
    assert summary is not None
    assert summary.outcome == "success"
    assert summary.details["users_created"] == 1


def test_a_service_invitation_that_loses_the_race_gives_the_existing_account_access(
    client: FlaskClient, schools: dict[str, Any], someone_else_invites_first: dict[str, Any]
) -> None:
    """The API's invitation (POST /api/v1/invitations) against an approver's, at once."""
    caller = ApiCaller(client, *register_api_service("school-finance"))
    token = caller.token()
    someone_else_invites_first["by"] = (schools["alice"].id, schools["a"].id)
    response = caller.invite(
        {
            "email": NEW,
            "given_name": "Grace",
            "family_name": "Hopper",
            "organisation_id": schools["b"].public_id,
            "roles": ["viewer"],
        },
        token,
    )

    assert someone_else_invites_first["outcome"].new_account  # Alice's invitation created her
    assert response.status_code == 200, response.get_json()  # "an existing account", not 500
    assert _accounts() == 1
    assert _organisations_of_new_person() == ["Hill Top Primary", "Riverside Academy"]


@pytest.mark.skipif(BACKEND != "server", reason="concurrent writers need PostgreSQL")
def test_two_approvers_inviting_the_same_new_person_at_once_both_succeed(
    schools: dict[str, Any], app: Flask
) -> None:
    """Alice's account insert is not committed when Bob's arrives: Bob's waits, then joins it."""
    ids = (schools["bob"].id, schools["b"].id)
    finished = threading.Event()
    outcome: list[Any] = []

    def bob_invites() -> None:
        try:
            outcome.append(_invite_elsewhere(app, *ids))
        except Exception as error:  # reported by the assertion below
            outcome.append(error)
        finally:
            finished.set()

    def bob_is_waiting_for_alice() -> bool:
        with db.engine.connect() as conn:
            return bool(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                )
            )

    mine = _invite(schools["alice"], schools["a"])  # flushed, not yet committed
    other = threading.Thread(target=bob_invites)
    other.start()
    waited = False
    for _ in range(200):  # bounded: until Bob's insert waits for Alice's, or is done
        if finished.wait(0.05):
            break
        if bob_is_waiting_for_alice():
            waited = True
            break
    db.session.commit()
    other.join(timeout=10)

    assert waited  # the two really overlapped
    assert mine.new_account
    [theirs] = outcome
    assert isinstance(theirs, InviteOutcome)
    assert not theirs.new_account
    db.session.expire_all()
    assert _accounts() == 1
    assert _organisations_of_new_person() == ["Hill Top Primary", "Riverside Academy"]
    assert sorted(template for template, _ in queued_emails(NEW)) == [
        "added_to_organisation",
        "invitation",
    ]
