"""Issue 8 in headless Chromium: a helpdesk agent signs in with a security key, searches,
and opens a person's page; axe-core checks the console's home, search and person pages."""

from __future__ import annotations

from typing import Any

import pytest

from idp.models import StaffRole
from tests.console.people import join, make_organisation
from tests.e2e.conftest import assert_accessible, sign_in_staff_with_new_key
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.e2e


def test_agent_signs_in_with_a_key_searches_and_opens_a_person(key_page: Any) -> None:
    page = key_page
    make_user(email="agent@helpdesk.example", staff_role=StaffRole.HELPDESK)
    school = make_organisation("St Mary's C of E Primary School", urn="100123")
    join(
        make_user(email="s.obrien@stmarys.example", given_name="Siobhan", family_name="O'Brien"),
        school,
        approver=True,
    )
    join(make_user(email="ada@stmarys.example"), school)

    sign_in_staff_with_new_key(page, "agent@helpdesk.example", DEFAULT_PASSWORD)
    page.goto("/helpdesk/")
    assert page.locator("h1").inner_text() == "Helpdesk console"
    assert_accessible(page)

    page.fill("#q", "obrien")
    page.click("main button:has-text('Search')")
    page.wait_for_url("**/helpdesk/search?q=obrien")
    assert page.locator("h1").inner_text() == "Search results for \u2018obrien\u2019"
    assert "St Mary's C of E Primary School" in page.inner_text("main")
    assert "ada@stmarys.example" not in page.inner_text("main")
    assert_accessible(page)

    page.click('a:has-text("Siobhan O\'Brien")')
    page.wait_for_url("**/helpdesk/users/*")
    assert page.locator("h1").inner_text() == "Siobhan O'Brien"
    main = page.inner_text("main")
    assert "s.obrien@stmarys.example" in main
    assert "Approver" in main
    assert_accessible(page)

    page.click('a:has-text("St Mary\'s C of E Primary School")')
    page.wait_for_url("**/helpdesk/organisations/*")
    assert "ada@stmarys.example" in page.inner_text("main")
    assert_accessible(page)

    page.goto("/helpdesk/search?q=ab")  # too short: an error summary linking to the box
    assert "Enter at least 3 letters or numbers" in page.inner_text(".govuk-error-summary")
    assert_accessible(page)


def test_agent_without_a_key_never_reaches_the_console(page: Any) -> None:
    # K01: signing in stops at setting up a security key (this browser has none), and until
    # one is set up the console sends the agent back to sign in.
    agent = make_user(email="agent@helpdesk.example", staff_role=StaffRole.HELPDESK)
    page.goto("/helpdesk/")
    page.wait_for_url("**/sign-in**")
    page.fill("#email", agent.email)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/sign-in/set-up/security-key")
    assert "Helpdesk staff must use a security key or passkey" in page.inner_text("main")
    page.goto("/helpdesk/")
    assert "/sign-in" in page.url
    assert "Helpdesk console" not in page.inner_text("main")
