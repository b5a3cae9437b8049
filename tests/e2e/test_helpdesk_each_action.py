"""Issue 8 "Browser tests for each action": the helpdesk actions not driven elsewhere.

A helpdesk admin, signed in with a security key (K01), takes each action from its
confirmation page with a reason (K02), and the person notices the result in their own
browser: a reset link that sets a new password, a resent invitation (the old link dies),
sign-out everywhere, deactivation (the vague sign-in refusal, B05) and reactivation, a changed
email address (both addresses told) and a corrected name. Every confirmation page passes
axe-core, and the person's page shows the action and its reason in their audit trail (K03).

Unlock, bulk and the identity-checked MFA reset are in ``test_helpdesk_actions.py``.

The agent signs in once per test worker (:func:`signed_in_agent`, module-scoped): every test
starts from empty tables and an empty store (``tests/conftest.py``'s autouse ``_clean``), so
:func:`agent` puts back, after that clean, exactly the rows and store keys the sign-in left
(the agent's account, security key and session). Each test thus starts from the same state,
whatever ran before it, without a security-key sign-in of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Table

from idp.extensions import db
from idp.models import Base, StaffRole, User, UserStatus
from idp.services import invitations
from idp.services.helpdesk_actions import EVENTS, Action
from idp.services.password_reset import send_reset_link
from idp.services.transaction import transaction
from idp.store import get_store
from tests.conftest import clean_state
from tests.e2e.conftest import assert_accessible, sign_in_staff_with_new_key, virtual_key_page
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.mailbox import emails_to, latest_link

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "seven quiet owls over the playground"
VAGUE_FAILURE = "Enter a correct email address and password"


@dataclass(frozen=True)
class Snapshot:
    """Every row and store key, as left by the agent's sign-in."""

    rows: list[tuple[Table, list[dict[str, Any]]]]
    keys: list[tuple[bytes, int, bytes]]  # key, milliseconds left (-1: none), DUMP value

    @classmethod
    def take(cls) -> Snapshot:
        with db.engine.connect() as conn:
            rows = [
                (table, [dict(row) for row in conn.execute(table.select()).mappings()])
                for table in Base.metadata.sorted_tables
            ]
        store = get_store()
        keys = [(key, store.pttl(key), store.dump(key)) for key in store.scan_iter()]
        return cls(rows, keys)

    def put_back(self) -> None:
        with db.engine.begin() as conn:
            for table, rows in self.rows:
                if rows:
                    conn.execute(table.insert(), rows)
        store = get_store()
        for key, pttl, value in self.keys:
            store.restore(key, max(pttl, 0), value, replace=True)


@pytest.fixture(scope="module")
def signed_in_agent(app: Flask, browser: Any, live_server: Any) -> Iterator[tuple[Any, Snapshot]]:
    """A helpdesk admin (who may take every action) signed in with a new security key, once."""
    clean_state(app)
    page = virtual_key_page(browser, live_server)
    with app.app_context():
        staff = make_user(
            email="hana@helpdesk.example", given_name="Hana", staff_role=StaffRole.HELPDESK_ADMIN
        )
        sign_in_staff_with_new_key(page, staff.email, DEFAULT_PASSWORD)
        snapshot = Snapshot.take()
        db.session.remove()
    yield page, snapshot
    page.context.close()


@pytest.fixture
def agent(signed_in_agent: tuple[Any, Snapshot]) -> Any:
    """The agent's browser, signed in, in a test that started from empty tables and store."""
    page, snapshot = signed_in_agent
    snapshot.put_back()
    page.goto("/helpdesk/")
    assert page.locator("h1").inner_text() == "Helpdesk console"
    return page


@pytest.fixture
def person_browser(browser: Any, live_server: Any) -> Iterator[Any]:
    """The person's own browser: a separate context, so nothing is shared with the agent's."""
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def sign_in(page: Any, email: str, password: str = DEFAULT_PASSWORD) -> None:
    page.goto("/sign-in?prompt=login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")


def emailed_reset_link(person: User) -> str:
    """A password reset link emailed to ``person`` (as if they had asked for one themselves)."""
    with transaction():
        send_reset_link(person)
    return latest_link(person.email, "password_reset")


def confirm(page: Any, person: User, path: str, button: str, reason: str, **fields: str) -> None:
    """Open an action's confirmation page (axe-checked), fill it in, and land on their page."""
    page.goto(f"/helpdesk/users/{person.sub}/actions/{path}")
    assert_accessible(page)
    for field, value in fields.items():
        page.fill(f"#{field}", value)
    page.fill("#reason", reason)
    page.click(f"main button:has-text('{button}')")
    page.wait_for_url(f"**/helpdesk/users/{person.sub}")


def assert_in_audit_trail(page: Any, action: Action, reason: str) -> None:
    """The person's page lists the action's audit event with the agent's reason (K03)."""
    row = page.locator("main tbody tr", has_text=EVENTS[action])
    assert row.count() == 1, page.inner_text("main")
    text = row.inner_text()
    assert reason in text
    assert "success" in text.lower()


def test_send_reset_link_then_the_person_sets_a_new_password(
    agent: Any, person_browser: Any
) -> None:
    person = make_user(email="tom@hill-school.sch.uk", given_name="Tom", family_name="Teach")
    agent.goto(f"/helpdesk/users/{person.sub}")
    agent.click("a:has-text('Send a password reset link')")
    assert agent.locator("h1").inner_text() == "Send a password reset link"
    assert_accessible(agent)

    agent.click("main button:has-text('Send reset link')")  # no reason
    summary = agent.locator(".govuk-error-summary")
    assert "Enter a reason or a ticket reference" in summary.inner_text()
    assert summary.locator("a").first.get_attribute("href") == "#reason"
    assert agent.title().startswith("Error:")
    assert_accessible(agent)
    assert emails_to(person.email) == []  # nothing sent without a reason

    reason = "Ticket 101: forgot password, called from school office"
    confirm(agent, person, "send_reset", "Send reset link", reason)
    assert f"Password reset link sent to {person.email}" in agent.inner_text("main")
    assert_in_audit_trail(agent, Action.SEND_RESET, reason)

    me = person_browser
    link = latest_link(person.email, "helpdesk_password_reset")
    me.goto(link)
    assert me.locator("h1").inner_text() == "Create a new password"
    me.fill("#password", NEW_PASSWORD)
    me.click("button:has-text('Save new password')")
    assert "Your password has been changed" in me.inner_text("main")
    sign_in(me, person.email, NEW_PASSWORD)
    me.wait_for_url("**/services")
    me.goto(link)  # spent (C02)
    assert me.locator("h1").inner_text() == "This password reset link does not work"


def test_resend_invitation_the_new_link_works_and_the_old_does_not(
    agent: Any, person_browser: Any
) -> None:
    person = make_user(
        email="new.teacher@hill-school.sch.uk",
        password=None,
        status=UserStatus.INVITED,
        given_name="Grace",
        family_name="Hopper",
    )
    with transaction():
        invitations.invite(person, actor="test", organisation_name="Hill Top Primary")
    old_link = latest_link(person.email, "invitation")

    reason = "Ticket 102: invitation email expired in spam"
    confirm(agent, person, "resend_invitation", "Resend invitation", reason)
    assert f"Invitation sent again to {person.email}" in agent.inner_text("main")
    assert_in_audit_trail(agent, Action.RESEND_INVITATION, reason)
    new_link = latest_link(person.email, "invitation")
    assert new_link != old_link

    me = person_browser
    me.goto(old_link)
    assert me.locator("h1").inner_text() == "This invitation link does not work"
    me.goto(new_link)
    assert me.locator("h1").inner_text() == "Create your password"
    me.fill("#password", NEW_PASSWORD)
    me.click("button:has-text('Save password and continue')")
    me.wait_for_url("**/services")
    assert "Signed in as Grace Hopper" in me.inner_text("main")


def test_sign_out_everywhere_signs_the_persons_browser_out(agent: Any, person_browser: Any) -> None:
    person = make_user(email="tom@hill-school.sch.uk", given_name="Tom", family_name="Teach")
    me = person_browser
    sign_in(me, person.email)
    me.wait_for_url("**/services")
    me.goto("/account")
    assert "/sign-in" not in me.url

    agent.goto(f"/helpdesk/users/{person.sub}")
    assert "Not signed in anywhere" not in agent.inner_text("main")
    reason = "Ticket 103: laptop stolen from staff room"
    confirm(agent, person, "sign_out", "Sign out everywhere", reason)
    assert f"{person.email} has been signed out everywhere" in agent.inner_text("main")
    assert "Not signed in anywhere" in agent.inner_text("main")
    assert_in_audit_trail(agent, Action.SIGN_OUT, reason)
    assert "helpdesk_action" in [m.template for m in emails_to(person.email)]

    me.goto("/account")
    me.wait_for_url("**/sign-in**")
    assert me.locator("h1").inner_text() == "Sign in"


def test_deactivate_refuses_sign_in_and_reactivate_restores_it(
    agent: Any, person_browser: Any
) -> None:
    person = make_user(email="tom@hill-school.sch.uk", given_name="Tom", family_name="Teach")
    me = person_browser
    sign_in(me, person.email)
    me.wait_for_url("**/services")
    reset_link = emailed_reset_link(person)

    deactivated = "Ticket 104: left the school"
    confirm(agent, person, "deactivate", "Deactivate account", deactivated)
    assert f"Account deactivated for {person.email}" in agent.inner_text("main")
    assert "Deactivated" in agent.inner_text("main")
    assert_in_audit_trail(agent, Action.DEACTIVATE, deactivated)

    # As the confirmation page says: signed out everywhere, and emailed links stop working.
    me.goto("/account")
    me.wait_for_url("**/sign-in**")
    me.goto(reset_link)
    assert me.locator("h1").inner_text() == "This password reset link does not work"
    sign_in(me, person.email)  # the right password, but the account is deactivated
    assert VAGUE_FAILURE in me.inner_text(".govuk-error-summary")  # same as a wrong one (B05)
    assert "/sign-in" in me.url

    reactivated = "Ticket 105: came back after maternity leave"
    confirm(agent, person, "reactivate", "Reactivate account", reactivated)
    assert f"Account reactivated for {person.email}" in agent.inner_text("main")
    assert_in_audit_trail(agent, Action.REACTIVATE, reactivated)
    assert_in_audit_trail(agent, Action.DEACTIVATE, deactivated)

    sign_in(me, person.email)
    me.wait_for_url("**/account")  # back where the refused visit started (next=/account)
    assert "Tom Teach" in me.inner_text("main")
    me.goto(reset_link)  # reactivating does not bring voided links back
    assert me.locator("h1").inner_text() == "This password reset link does not work"


def test_change_email_tells_both_addresses_and_the_new_one_signs_in(
    agent: Any, person_browser: Any
) -> None:
    person = make_user(email="tom@hill-school.sch.uk", given_name="Tom", family_name="Teach")
    old, new = person.email, "tom.teach@hill-school.sch.uk"
    reset_link = emailed_reset_link(person)
    reason = "Ticket 106: school changed its address format"
    confirm(agent, person, "change_email", "Change email address", reason, email=new)
    main = agent.inner_text("main")
    assert f"Email address changed to {new}" in main
    assert new in agent.locator("main .govuk-summary-list").inner_text()
    assert_in_audit_trail(agent, Action.CHANGE_EMAIL, reason)

    assert [m.template for m in emails_to(old)] == ["email_changed_notice", "password_reset"]
    assert [m.template for m in emails_to(new)] == ["helpdesk_action"]
    assert new in emails_to(old)[0].body

    me = person_browser
    me.goto(reset_link)  # sent to the old address before the change: it stops working
    assert me.locator("h1").inner_text() == "This password reset link does not work"
    sign_in(me, old)
    assert VAGUE_FAILURE in me.inner_text(".govuk-error-summary")
    sign_in(me, new)
    me.wait_for_url("**/services")


def test_edit_name_shows_on_the_persons_page(agent: Any) -> None:
    person = make_user(email="siobhan@hill-school.sch.uk", given_name="Shiv", family_name="Obrian")
    reason = "Ticket 107: name misspelt in the Authentix import"
    agent.goto(f"/helpdesk/users/{person.sub}/actions/change_name")
    assert agent.input_value("#given_name") == "Shiv"  # starts from the current name
    confirm(
        agent,
        person,
        "change_name",
        "Change name",
        reason,
        given_name="Siobhan",
        family_name="O'Brien",
    )
    assert agent.locator("h1").inner_text() == "Siobhan O'Brien"
    assert "Name changed to Siobhan O'Brien" in agent.inner_text("main")
    assert_in_audit_trail(agent, Action.CHANGE_NAME, reason)
    assert [m.template for m in emails_to(person.email)] == ["helpdesk_action"]
