"""Issue 7 in headless Chromium, against the real provider and real demo services:

(a) signing in at the provider shows the person's services for each organisation, and a link
    signs them into one; (b) a person in two schools chooses one and the demo service shows that
    school and its roles; (c) a person without access sees the no-access page, requests access,
    an approver approves it (the emails read from the outbox), and the person gets in.

Each new page is checked with axe-core (no serious or critical violation).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from idp.models import MembershipRole
from idp.services import access
from provider_helpers import give_access, organisation, require_provider
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.mailbox import emails_to

pytestmark = pytest.mark.e2e

EMAIL = "alex.jones@hilltop-primary.example"
APPROVER = "sam.patel@hilltop-primary.example"


def assert_accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation (as tests/e2e/conftest.py does)."""
    from tests.e2e.conftest import AXE

    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document)")
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, json.dumps([{"id": v["id"], "help": v["help"]} for v in bad], indent=2)


def sign_in(page: Any, email: str) -> None:
    page.wait_for_url("**/sign-in**")
    page.fill("#email", email)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button:has-text('Sign in')")


def skip_mfa_offer(page: Any) -> None:
    """People without a second factor may be offered one after signing in: not today."""
    page.wait_for_load_state()
    if "/sign-in/mfa" in page.url or "/set-up" in page.url or "protect" in page.url:
        page.click("text=/not now|later|skip/i")


def test_a_your_services_lists_each_school_and_a_link_signs_in(
    provider, demo_services, browser_page
):
    require_provider(provider.app, "oidc.authorize", "oidc.token", "oidc.userinfo")
    collect = demo_services.start("collect")
    demo_services.start("school-to-school")
    person = make_user(email=EMAIL, given_name="Alex", family_name="Jones")
    give_access(person, organisation(), "collect", ["submitter"])
    give_access(
        person, organisation("Riverside Academy", "100001"), "school-to-school", ["s2s_user"]
    )

    def journey(page: Any) -> tuple[str, str]:
        page.goto(provider.url + "/sign-in")
        sign_in(page, EMAIL)
        skip_mfa_offer(page)
        page.wait_for_url(provider.url + "/services")
        assert_accessible(page)
        listing = page.inner_text("main")
        hilltop = page.locator("section", has=page.locator("h2:has-text('Hill Top Primary')"))
        hilltop.locator("a:has-text('Collect')").first.click()
        page.wait_for_url(collect.url + "/")
        page.click("text=Start now")
        page.wait_for_url(collect.url + "/service")  # no sign-in page on the way
        return listing, page.inner_text("main")

    listing, service_page = browser_page(journey)
    assert re.search(
        r"Hill Top Primary.*Collect.*Riverside Academy.*School-to-School", listing, re.S
    )
    assert "Request access to School-to-School" in listing
    assert "You are signed in to Collect" in service_page
    assert "Hill Top Primary" in service_page
    assert "Data submitter" in service_page


def test_b_a_person_in_two_schools_chooses_one(provider, demo_services, browser_page):
    require_provider(provider.app, "oidc.authorize", "oidc.token", "oidc.userinfo")
    collect = demo_services.start("collect")
    person = make_user(email=EMAIL, given_name="Alex", family_name="Jones")
    give_access(person, organisation(), "collect", ["submitter"])
    give_access(person, organisation("Riverside Academy", "100001"), "collect", ["approver"])

    def journey(page: Any) -> str:
        page.goto(collect.url + "/service")
        sign_in(page, EMAIL)
        skip_mfa_offer(page)
        page.wait_for_url(provider.url + "/authorize/organisation/**")
        assert_accessible(page)
        page.click("button:has-text('Continue')")  # nothing chosen: an error, not a guess
        page.wait_for_selector(".govuk-error-summary")
        assert_accessible(page)
        page.check("label:has-text('Riverside Academy')")
        page.click("button:has-text('Continue')")
        page.wait_for_url(collect.url + "/service")
        return page.inner_text("main")

    text = browser_page(journey)
    assert "Riverside Academy" in text
    assert "100001" in text
    assert "Return approver" in text
    assert "Data submitter" not in text


def test_c_no_access_request_approve_and_get_in(provider, demo_services, browser_page):
    require_provider(provider.app, "oidc.authorize", "oidc.token", "oidc.userinfo")
    collect = demo_services.start("collect")
    person = make_user(email=EMAIL, given_name="Alex", family_name="Jones")
    approver = make_user(email=APPROVER, given_name="Sam", family_name="Patel")
    school = organisation()
    from idp.services.transaction import transaction

    with transaction():
        access.add_membership(person, school, actor="test")
        access.add_membership(approver, school, role=MembershipRole.APPROVER, actor="test")

    def ask(page: Any) -> tuple[str, str]:
        page.goto(collect.url + "/service")
        sign_in(page, EMAIL)
        skip_mfa_offer(page)
        page.wait_for_selector("h1:has-text('You do not have access to Collect')")
        assert_accessible(page)
        refused = page.inner_text("main")
        page.fill("#reason", "I send the school census")
        page.click("button:has-text('Request access')")
        page.wait_for_selector("text=Access requested")
        assert_accessible(page)
        return refused, page.inner_text("main")

    refused, sent = browser_page(ask)
    assert "Hill Top Primary" in refused
    assert "Sam Patel" in refused
    assert "your approver, Sam Patel" in sent
    [request_mail] = emails_to(APPROVER)
    link = re.search(r"https?://\S+", request_mail.body).group()
    assert "I send the school census" in request_mail.body

    browser_page.new_page()  # the approver, in a browser of their own

    def approve(page: Any) -> str:
        page.goto(link)
        sign_in(page, APPROVER)
        skip_mfa_offer(page)
        page.wait_for_url(link)
        assert_accessible(page)
        page.check("label:has-text('Data submitter')")
        page.click("button:has-text('Approve and give access')")
        page.wait_for_selector("text=Alex Jones can now use Collect")
        assert_accessible(page)
        return page.inner_text("main")

    assert "No requests are waiting" in browser_page(approve)
    approved = [m for m in emails_to(EMAIL) if m.template == "access_request_approved"]
    assert len(approved) == 1
    assert "Data submitter" in approved[0].body

    browser_page.new_page()  # Alex again

    def get_in(page: Any) -> str:
        page.goto(collect.url + "/service")
        sign_in(page, EMAIL)
        skip_mfa_offer(page)
        page.wait_for_url(collect.url + "/service")
        return page.inner_text("main")

    text = browser_page(get_in)
    assert "You are signed in to Collect" in text
    assert "Data submitter" in text
