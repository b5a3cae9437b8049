"""Issue 7's approver journeys in headless Chromium, each approver page checked with axe-core:
an approver invites a new member of staff who accepts and signs in; another school's people
URL is not found."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from idp.models import UserStatus
from idp.services import users
from tests.console.people_helpers import add_person, make_org, make_service, roles_of
from tests.e2e.conftest import assert_accessible
from tests.e2e.test_account_journeys import NEW_PASSWORD, sign_in
from tests.mailbox import emails_to, latest_link

pytestmark = pytest.mark.e2e


def signed_in(page) -> None:
    """Wait until the sign-in journey has finished, wherever it lands (account or services)."""
    page.wait_for_url(lambda url: not urlsplit(url).path.startswith(("/sign-in", "/invitation")))


def test_an_approver_invites_new_staff_who_accept_and_sign_in(page, browser, live_server):
    service = make_service()
    school = make_org("Hill Top Primary")
    add_person(school, approver=True, email="alice@hilltop.example", given_name="Alice")
    add_person(school, email="ann@hilltop.example", given_name="Ann", grants={service: ["viewer"]})

    sign_in(page, "alice@hilltop.example")
    signed_in(page)
    page.goto("/organisations/")
    page.wait_for_url(f"**/organisations/{school.public_id}/people")
    assert page.locator("h1").inner_text() == "People"
    assert "Pupil data (Viewer)" in page.inner_text("main")
    assert_accessible(page)

    page.click("text=Invite someone")
    assert page.locator("h1").inner_text() == "Invite someone"
    assert_accessible(page)
    page.click("button:has-text('Send invitation')")  # nothing filled in
    assert page.title().startswith("Error:")
    assert page.locator(".govuk-error-summary a").first.get_attribute("href") == "#email"
    assert_accessible(page)

    page.fill("#email", "grace.hopper@hilltop.example")
    page.fill("#given_name", "Grace")
    page.fill("#family_name", "Hopper")
    page.get_by_label("Pupil data").check()
    page.get_by_label("Editor").check()  # revealed once the service is ticked
    page.click("button:has-text('Send invitation')")
    page.wait_for_url(f"**/organisations/{school.public_id}/people")
    assert "Grace Hopper has been added to Hill Top Primary" in page.inner_text("main")
    assert "Invitation sent" in page.inner_text("main")

    page.click("text=Hopper, Grace")
    assert page.locator("h1").inner_text() == "Grace Hopper"
    assert page.get_by_label("Editor").is_checked()
    assert_accessible(page)
    # Grace, in her own browser, accepts the emailed invitation and signs in.
    [invitation] = emails_to("grace.hopper@hilltop.example")
    assert "Alice Lovelace from Hill Top Primary has invited you" in invitation.body
    grace_context = browser.new_context(base_url=live_server.url)
    grace_page = grace_context.new_page()
    try:
        grace_page.goto(latest_link("grace.hopper@hilltop.example", "invitation"))
        grace_page.fill("#password", NEW_PASSWORD)
        grace_page.click("button:has-text('Save password and continue')")
        signed_in(grace_page)
        grace_page.context.clear_cookies()
        sign_in(grace_page, "grace.hopper@hilltop.example", NEW_PASSWORD)
        signed_in(grace_page)
        grace_page.goto("/account")
        assert "grace.hopper@hilltop.example" in grace_page.inner_text("main")
        grace = users.find_by_email("grace.hopper@hilltop.example")
        assert grace is not None
        assert grace.status is UserStatus.ACTIVE
        assert roles_of(grace, school, service) == ["editor"]

        # Grace leaves: Alice removes her, and as it was her only organisation she is a leaver.
        page.reload()
        assert "Active" in page.inner_text("main")
        page.click("text=Remove Grace Hopper")
        assert page.locator("h1").inner_text() == "Remove Grace Hopper from Hill Top Primary?"
        assert "their account will be closed" in page.inner_text("main")
        assert_accessible(page)
        page.click("button:has-text('Yes, remove Grace Hopper')")
        assert "Grace Hopper has been removed from Hill Top Primary" in page.inner_text("main")
        assert "their account has been closed" in page.inner_text("main")
        # the session from accepting the invitation, and the one from signing in again
        assert "2 sessions ended" in page.inner_text("main")
        assert_accessible(page)
        grace_page.goto("/account")  # her session has ended
        assert urlsplit(grace_page.url).path.startswith("/sign-in")
    finally:
        grace_context.close()


def test_another_schools_people_page_is_not_found_and_members_are_told_why(page):
    mine, theirs = make_org("Hill Top Primary"), make_org("Riverside Academy")
    add_person(mine, approver=True, email="alice@hilltop.example")
    add_person(theirs, approver=True, email="bob@riverside.example", family_name="Baker")

    sign_in(page, "alice@hilltop.example")
    signed_in(page)
    response = page.goto(f"/organisations/{theirs.public_id}/people")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    assert "Baker" not in page.inner_text("body")
    assert_accessible(page)

    # A member who approves nowhere is told what approvers are, and who to ask.
    add_person(mine, email="carol@hilltop.example", given_name="Carol")
    page.context.clear_cookies()
    sign_in(page, "carol@hilltop.example")
    signed_in(page)
    response = page.goto("/organisations/")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "You are not an approver"
    assert_accessible(page)
