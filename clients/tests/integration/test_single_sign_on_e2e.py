"""Single sign-on and single sign-out across the demo services, in headless Chromium, against the
real provider (DESIGN §7; J01-J08 end to end; I04 from the relying side).

The story: sign in at Collect (A); open School-to-School (B) and see no sign-in page; open
Teacher Pensions (which needs MFA) and be asked only for the second factor; sign out at B;
then A and Teacher Pensions have both ended their sessions (by back-channel logout), and a
fresh visit asks for sign-in again.

The provider's worker delivers back-channel logouts from the outbox; here the test runs one
round of it (:func:`idp.services.outbox.deliver_due`) where the worker would.
"""

from __future__ import annotations

from typing import Any

import pytest
from provider_helpers import give_access, organisation, require_provider
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.e2e

EMAIL = "alex.jones@hilltop-primary.example"


def sign_in_at_provider(page: Any, provider_url: str) -> None:
    page.wait_for_url(provider_url + "/sign-in**")
    page.fill("#email", EMAIL)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button:has-text('Sign in')")


def skip_mfa_offer(page: Any, provider_url: str) -> None:
    """People without a second factor may be offered one after signing in: not today."""
    if "/sign-in/mfa" in page.url or "/set-up" in page.url:
        page.click("text=/not now|later|skip/i")


def test_sign_in_to_a_demo_service_with_the_real_provider(provider, demo_services, browser_page):
    require_provider(provider.app, "oidc.authorize", "oidc.token", "oidc.userinfo")
    collect = demo_services.start("collect")
    person = make_user(email=EMAIL, given_name="Alex", family_name="Jones")
    give_access(person, organisation(), "collect", ["submitter"])

    def journey(page: Any) -> str:
        page.goto(collect.url + "/service")
        sign_in_at_provider(page, provider.url)
        page.wait_for_url(collect.url + "/**")
        skip_mfa_offer(page, provider.url)
        page.wait_for_url(collect.url + "/service")
        return page.inner_text("main")

    text = browser_page(journey)
    assert "You are signed in to Collect with Secure Access." in text
    assert "Alex Jones" in text
    assert EMAIL in text
    assert "Hill Top Primary School" in text
    assert "Data submitter" in text


def test_sign_in_once_use_three_services_sign_out_of_all(provider, demo_services, browser_page):
    require_provider(provider.app)
    from idp.services import outbox
    from tests.mfa.journeys import add_totp, code_for

    collect = demo_services.start("collect")
    s2s = demo_services.start("school-to-school")
    pensions = demo_services.start("teacher-pensions")
    person = make_user(email=EMAIL, given_name="Alex", family_name="Jones")
    school = organisation()
    give_access(person, school, "collect", ["submitter"])
    give_access(person, school, "school-to-school", ["s2s_user"])
    give_access(person, school, "teacher-pensions", ["tp_admin"])

    # 1. Sign in at A (Collect) with a password.
    def sign_in_at_a(page: Any) -> str:
        page.goto(collect.url + "/service")
        sign_in_at_provider(page, provider.url)
        page.wait_for_url(collect.url + "/**")
        skip_mfa_offer(page, provider.url)
        page.wait_for_url(collect.url + "/service")
        return page.inner_text("main")

    assert "You are signed in to Collect" in browser_page(sign_in_at_a)

    # 2. Open B (School-to-School): no sign-in page is shown.
    def open_b(page: Any) -> tuple[list[str], str]:
        seen: list[str] = []

        def record(frame: Any) -> None:
            seen.append(frame.url)

        page.on("framenavigated", record)
        page.goto(s2s.url + "/service")
        page.wait_for_url(s2s.url + "/service")
        page.remove_listener("framenavigated", record)
        return seen, page.inner_text("main")

    visited, text = browser_page(open_b)
    assert "You are signed in to School-to-School" in text
    assert not [url for url in visited if "/sign-in" in url], visited

    # 3. She has since added an authenticator app (on another tab, say). Teacher Pensions
    #    needs a second factor: she is asked for the code, and for nothing else.
    secret = add_totp(person)

    def open_pensions(page: Any) -> tuple[str, bool, str]:
        page.goto(pensions.url + "/service")
        page.wait_for_url(provider.url + "/sign-in/mfa/**")
        heading = page.inner_text("h1, label.govuk-label--l")
        asked_password = page.locator("#password").count() > 0
        page.fill("#code", code_for(secret))
        page.click("button:has-text('Continue')")
        page.wait_for_url(pensions.url + "/service")
        return heading, asked_password, page.inner_text("main")

    heading, asked_password, text = browser_page(open_pensions)
    assert "Enter the code from your authenticator app" in heading
    assert not asked_password
    assert "You are signed in to Teacher Pensions" in text
    assert "Second factor\tYes" in text or "Second factor\nYes" in text

    # 4. Sign out at B.
    def sign_out_at_b(page: Any) -> str:
        page.goto(s2s.url + "/service")
        page.click("header button:has-text('Sign out')")
        page.wait_for_url(s2s.url + "/**")
        return page.inner_text("main")

    assert "You have signed out" in browser_page(sign_out_at_b)

    # The provider's worker tells every service in the session (back-channel logout).
    report = outbox.deliver_due()
    assert report.sent >= 3, report

    # 5. A and Teacher Pensions have ended their sessions; a fresh visit asks for sign-in.
    def visit_again(page: Any, url: str) -> tuple[bool, str]:
        page.goto(url + "/")
        signed_in_here = page.locator("header .who").count() > 0
        page.goto(url + "/service")
        page.wait_for_url(provider.url + "/sign-in**")
        return signed_in_here, page.inner_text("h1")

    for service in (collect, pensions):
        still_signed_in, heading = browser_page(lambda page, s=service: visit_again(page, s.url))
        assert not still_signed_in
        assert heading == "Sign in"
