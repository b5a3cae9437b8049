"""The accounts issue's journeys in headless Chromium, each page checked with axe-core."""

from __future__ import annotations

import pytest

from idp.models import UserStatus
from idp.services import invitations
from idp.services.transaction import transaction
from tests.e2e.conftest import assert_accessible
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.mailbox import emails_to, latest_link

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "purple elephants marching slowly home"


def sign_in(page, email: str, password: str = DEFAULT_PASSWORD) -> None:
    page.goto("/sign-in?prompt=login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")


def test_accept_invitation_set_password_and_signed_in(page):
    user = make_user(
        email="new.teacher@school.example",
        password=None,
        status=UserStatus.INVITED,
        given_name="Grace",
        family_name="Hopper",
    )
    with transaction():
        invitations.invite(user, actor="test", organisation_name="Hill Top Primary")
    page.goto(latest_link(user.email, "invitation"))
    assert page.locator("h1").inner_text() == "Create your password"
    assert page.locator("#password").get_attribute("autocomplete") == "new-password"
    assert_accessible(page)

    page.fill("#password", "grace")  # too short and it is her name
    page.click("button:has-text('Save password and continue')")
    assert page.locator(".govuk-error-summary").is_visible()
    assert page.title().startswith("Error:")
    assert_accessible(page)

    page.fill("#password", NEW_PASSWORD)
    page.click("button:has-text('Save password and continue')")
    page.wait_for_url("**/services")  # issue 7: "Your services"
    assert "Signed in as Grace Hopper" in page.inner_text("main")
    assert_accessible(page)

    # The link worked once only (A09).
    page.goto(latest_link(user.email, "invitation"))
    assert page.locator("h1").inner_text() == "This invitation link does not work"


def test_sign_in_wrong_password_then_right(page):
    make_user(email="ada@school.example")
    page.goto("/sign-in")
    assert page.locator("#password").get_attribute("type") == "password"
    assert page.locator("#password").get_attribute("autocomplete") == "current-password"
    assert_accessible(page)

    sign_in(page, "ada@school.example", "not my password at all")
    summary = page.locator(".govuk-error-summary")
    assert "Enter a correct email address and password" in summary.inner_text()
    assert summary.locator("a").first.get_attribute("href") == "#email"
    assert_accessible(page)

    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")  # issue 7: "Your services"
    assert page.locator("h1").inner_text() == "Your services"


def test_show_password_toggle_works(page):
    page.goto("/sign-in")
    page.fill("#password", "secret words")
    page.click("button:has-text('Show')")
    assert page.locator("#password").get_attribute("type") == "text"


def test_lockout_then_unlock_by_reset(page):
    make_user(email="ada@school.example")
    for _ in range(10):
        sign_in(page, "ada@school.example", "a wrong guess here")
    sign_in(page, "ada@school.example")  # the right password, but attempts are paused
    assert "tried to sign in too many times" in page.inner_text(".govuk-error-summary")
    assert_accessible(page)

    page.goto("/forgot-password")
    page.fill("#email", "ada@school.example")
    page.click("button:has-text('Send reset link')")
    page.goto(latest_link("ada@school.example", "password_reset"))
    page.fill("#password", NEW_PASSWORD)
    page.click("button:has-text('Save new password')")
    assert "Your password has been changed" in page.inner_text("main")

    sign_in(page, "ada@school.example", NEW_PASSWORD)
    page.wait_for_url("**/services")  # issue 7: "Your services"


def test_forgot_password_end_to_end(page):
    make_user(email="ada@school.example")
    page.goto("/sign-in")
    page.click("text=I have forgotten my password")
    assert_accessible(page)
    page.fill("#email", "ada@school.example")
    page.click("button:has-text('Send reset link')")
    assert page.locator("h1").inner_text() == "Check your email"
    assert_accessible(page)

    link = latest_link("ada@school.example", "password_reset")
    page.goto(link)
    assert page.locator("h1").inner_text() == "Create a new password"
    assert_accessible(page)
    page.fill("#password", NEW_PASSWORD)
    page.click("button:has-text('Save new password')")
    assert "Your password has been changed" in page.inner_text("main")
    assert_accessible(page)
    # Not signed in automatically (C06), and the link is spent (C02).
    page.goto("/account")
    assert "/sign-in" in page.url
    page.goto(link)
    assert page.locator("h1").inner_text() == "This password reset link does not work"
    assert_accessible(page)
    assert any(m.template == "password_changed" for m in emails_to("ada@school.example"))

    sign_in(page, "ada@school.example", NEW_PASSWORD)
    page.wait_for_url("**/account")  # back where the sign-in started (next=/account)


def test_change_password(page):
    make_user(email="ada@school.example")
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")  # issue 7: "Your services"
    page.goto("/account")
    page.click("a:has-text('Change'):has(span:has-text('password'))")
    assert page.locator("h1").inner_text() == "Change your password"
    assert_accessible(page)
    page.fill("#current_password", DEFAULT_PASSWORD)
    page.fill("#new_password", NEW_PASSWORD)
    page.click("button:has-text('Change password')")
    page.wait_for_url("**/sign-in")
    assert "Your password has been changed" in page.inner_text("main")
    sign_in(page, "ada@school.example", DEFAULT_PASSWORD)
    assert page.locator(".govuk-error-summary").is_visible()
    sign_in(page, "ada@school.example", NEW_PASSWORD)
    page.wait_for_url("**/services")  # issue 7: "Your services"


def test_change_email(page):
    make_user(email="ada@school.example")
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")  # issue 7: "Your services"
    page.goto("/account")
    page.click("a:has-text('Change'):has(span:has-text('email address'))")
    assert page.locator("h1").inner_text() == "Change your email address"
    assert_accessible(page)
    page.fill("#email", "ada.lovelace@school.example")
    page.click("button:has-text('Send confirmation link')")
    assert page.locator("h1").inner_text() == "Check your new email address"
    assert_accessible(page)

    page.goto(latest_link("ada.lovelace@school.example", "email_change_confirm"))
    assert "Your email address has been changed" in page.inner_text("main")
    assert_accessible(page)
    assert any(m.template == "email_changed_notice" for m in emails_to("ada@school.example"))
    sign_in(page, "ada.lovelace@school.example")
    page.wait_for_url("**/services")  # issue 7: "Your services"


def test_sign_out_everywhere(browser, live_server):
    make_user(email="ada@school.example")
    laptop = browser.new_context(base_url=live_server.url).new_page()
    phone = browser.new_context(base_url=live_server.url).new_page()
    for device in (laptop, phone):
        sign_in(device, "ada@school.example")
        device.wait_for_url("**/services")

    laptop.goto("/account/sessions")
    assert laptop.locator("tbody tr").count() >= 2
    assert_accessible(laptop)
    laptop.click("button:has-text('Sign out everywhere')")
    laptop.wait_for_url("**/sign-in")

    phone.goto("/account")
    assert "/sign-in" in phone.url
    laptop.context.close()
    phone.context.close()
