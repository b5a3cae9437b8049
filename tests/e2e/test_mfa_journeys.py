"""The MFA issue's journeys in headless Chromium, every MFA page checked with axe-core.

TOTP codes are computed with pyotp from the key the page shows, as a person's app would.
Codes for the next 30-second step are used where a step has just been spent (the server
accepts ±1 step, each step once: D03), so no test waits for the clock.

WebAuthn uses Chromium's virtual authenticator through the DevTools protocol. Browsers refuse
WebAuthn on IP-address origins, so those tests browse the live server as
``http://localhost:<port>``; outside production the server accepts any loopback port as an
origin (``idp.services.mfa.webauthn``), and the RP ID is ``localhost`` (the test settings'
public_base_url host).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import select

from idp.extensions import db
from idp.models import AccessPolicy, AuditEvent, Service
from idp.services.mfa import get_offer_schedule
from tests.e2e.conftest import assert_accessible
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.mfa.journeys import add_totp, code_for, issue_codes

pytestmark = pytest.mark.e2e

CODE = re.compile(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{2}\b")


def sign_in(page: Any, email: str, password: str = DEFAULT_PASSWORD) -> None:
    page.goto("/sign-in?prompt=login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")


def sign_out(page: Any) -> None:
    page.goto("/sign-out")
    page.click("main button:has-text('Sign out')")
    page.locator("h1:has-text('You have signed out')").wait_for()


def key_on_page(page: Any) -> str:
    return page.inner_text("#totp-key").replace(" ", "")


def save_codes(page: Any, expected_url: str) -> list[str]:
    assert page.locator("h1").inner_text().startswith("Save your")
    codes = CODE.findall(page.inner_text("#recovery-codes"))
    assert len(codes) == 10
    assert_accessible(page)
    page.click("button:has-text('I have saved my recovery codes')")
    page.wait_for_url(expected_url)
    return codes


def test_enrol_an_app_then_sign_in_with_password_and_code_and_a_replay_is_refused(page):
    make_user(email="ada@school.example")
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")  # issue 7: signing in lands on "Your services"
    page.goto("/account")
    assert "None set up" in page.inner_text("main")
    page.click("a:has-text('Manage'):has(span:has-text('security methods'))")
    page.wait_for_url("**/account/security")
    assert page.locator("h1").inner_text() == "Your security methods"
    assert_accessible(page)

    page.click("a:has-text('Set up an authenticator app')")
    page.wait_for_url("**/account/security/app")
    assert page.locator("h1").inner_text() == "Set up an authenticator app"
    assert page.locator("img[alt^='QR code']").get_attribute("src").startswith("data:image/svg+xml")
    assert page.locator("#code").get_attribute("autocomplete") == "one-time-code"
    assert_accessible(page)
    secret = key_on_page(page)
    page.fill("#code", "000000" if code_for(secret) != "000000" else "111111")
    page.click("button:has-text('Continue')")
    assert page.locator(".govuk-error-summary").is_visible()
    assert page.title().startswith("Error:")
    assert_accessible(page)
    page.fill("#code", code_for(secret))
    page.click("button:has-text('Continue')")
    page.wait_for_url("**/account/security/recovery-codes")
    save_codes(page, "**/account/security")
    assert "You have 10 unused recovery codes" in page.inner_text("main")

    sign_out(page)
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/sign-in/mfa/app")
    assert page.locator("h1").inner_text() == "Enter the code from your authenticator app"
    assert_accessible(page)
    next_code = code_for(secret, steps=1)  # the current step was spent confirming the app
    page.fill("#code", next_code)
    page.click("button:has-text('Continue')")
    page.wait_for_url("**/services")

    # The same code again, in a new sign-in, is refused (D03).
    sign_out(page)
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/sign-in/mfa/app")
    page.fill("#code", next_code)
    page.click("button:has-text('Continue')")
    assert "Enter the correct 6-digit code" in page.inner_text(".govuk-error-summary")
    assert_accessible(page)
    page.goto("/account")
    assert "/sign-in" in page.url


def test_a_recovery_code_signs_in_and_forces_re_enrolment(page):
    user = make_user(email="ada@school.example")
    add_totp(user)
    old_codes = issue_codes(user)
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/sign-in/mfa/app")
    page.click("text=Use a recovery code")
    page.wait_for_url("**/sign-in/mfa/recovery-code")
    assert page.locator("h1").inner_text() == "Enter a recovery code"
    assert_accessible(page)
    page.fill("#code", old_codes[0])
    page.click("button:has-text('Continue')")

    page.wait_for_url("**/sign-in/set-up")
    assert "You used a recovery code" in page.inner_text("main")
    assert_accessible(page)
    page.click("button:has-text('Continue')")  # nothing chosen
    assert page.locator(".govuk-error-summary").is_visible()
    assert_accessible(page)
    page.check("input[value='app']")
    page.click("button:has-text('Continue')")
    page.wait_for_url("**/sign-in/set-up/app")
    assert_accessible(page)
    page.fill("#code", code_for(key_on_page(page)))
    page.click("button:has-text('Continue')")
    page.wait_for_url("**/sign-in/set-up/recovery-codes")
    new_codes = save_codes(page, "**/services")
    assert not set(new_codes) & set(old_codes)

    # The used code, and the rest of the old set, no longer work.
    sign_out(page)
    sign_in(page, "ada@school.example")
    page.goto("/sign-in/mfa/recovery-code")
    page.fill("#code", old_codes[1])
    page.click("button:has-text('Continue')")
    assert "not used before" in page.inner_text(".govuk-error-summary")


def test_register_a_security_key_then_sign_in_with_it(key_page):
    make_user(email="ada@school.example")
    page = key_page
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")
    page.goto("/account/security")
    page.click("text=Add a security key or passkey")
    page.wait_for_url("**/account/security/keys/add")
    assert page.locator("h1").inner_text() == "Set up a security key or passkey"
    assert page.locator("[data-webauthn-unsupported]").is_hidden()  # this browser can
    assert_accessible(page)
    page.click("button:has-text('Set up security key or passkey')")  # no name yet
    page.locator("[data-webauthn-error-message]:has-text('Enter a name')").wait_for()
    assert page.locator("[data-webauthn-error]").is_visible()
    assert_accessible(page)
    page.fill("#name", "Blue key")
    page.click("button:has-text('Set up security key or passkey')")
    page.wait_for_url("**/account/security/recovery-codes")
    save_codes(page, "**/account/security")
    assert "Blue key" in page.inner_text("main")

    page.click("a:has-text('Rename')")
    page.wait_for_url("**/rename")
    assert_accessible(page)
    page.fill("#name", "Lanyard key")
    page.click("button:has-text('Save name')")
    page.wait_for_url("**/account/security")
    assert "Lanyard key" in page.inner_text("main")
    page.click("a:has-text('Remove'):has(span:has-text('Lanyard key'))")
    page.wait_for_url("**/remove")
    assert_accessible(page)
    page.goto("/account/security/recovery-codes/new")
    assert_accessible(page)

    sign_out(page)
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/sign-in/mfa/security-key")
    assert page.locator("h1").inner_text() == "Use your security key or passkey"
    assert_accessible(page)
    page.click("button:has-text('Use security key or passkey')")
    page.wait_for_url("**/services")
    verified = db.session.scalars(
        select(AuditEvent).where(AuditEvent.event == "mfa.verified")
    ).all()
    assert [e.details["method"] for e in verified] == ["webauthn"]


def test_a_helpdesk_user_without_a_key_is_made_to_register_one(key_page):
    from idp.models import StaffRole

    make_user(email="grace@helpdesk.example", staff_role=StaffRole.HELPDESK)
    page = key_page
    sign_in(page, "grace@helpdesk.example")
    page.wait_for_url("**/sign-in/set-up/security-key")
    assert "Helpdesk staff must use a security key or passkey" in page.inner_text("main")
    assert page.locator("text=Choose another way").count() == 0
    assert_accessible(page)
    page.goto("/account")  # no way round it
    assert "/sign-in" in page.url
    sign_in(page, "grace@helpdesk.example")
    page.wait_for_url("**/sign-in/set-up/security-key")
    page.fill("#name", "Helpdesk key")
    page.click("button:has-text('Set up security key or passkey')")
    page.wait_for_url("**/sign-in/set-up/recovery-codes")
    save_codes(page, "**/account")  # back where the sign-in started (next=/account)


def test_a_browser_without_webauthn_is_told_what_to_do(browser, live_server):
    make_user(email="ada@school.example")
    context = browser.new_context(base_url=live_server.url)
    context.add_init_script("delete window.PublicKeyCredential")
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")
    page.goto("/account/security/keys/add")
    note = page.locator("[data-webauthn-unsupported]")
    assert note.is_visible()
    assert "This browser cannot use security keys or passkeys" in note.inner_text()
    assert page.locator("button:has-text('Set up security key or passkey')").is_disabled()
    assert_accessible(page)
    context.close()


def test_protect_your_account_is_offered_and_not_now_goes_on(page):
    user = make_user(email="ada@school.example")
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")  # the first sign-in is not interrupted
    get_offer_schedule().postpone(user.sub, until=0)
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/sign-in/protect-your-account")
    assert page.locator("h1").inner_text() == "Protect your account"
    assert_accessible(page)
    page.click("button:has-text('Set up now')")
    page.wait_for_url("**/sign-in/set-up")
    page.click("button:has-text('Do this later')")
    page.wait_for_url("**/services")

    get_offer_schedule().postpone(user.sub, until=0)
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/sign-in/protect-your-account")
    page.click("button:has-text('Not now')")
    page.wait_for_url("**/services")
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")  # not asked again for a while


def test_removing_the_app_asks_for_confirmation(page):
    user = make_user(email="ada@school.example")
    secret = add_totp(user)
    issue_codes(user)
    sign_in(page, "ada@school.example")
    page.fill("#code", code_for(secret))
    page.click("button:has-text('Continue')")
    page.wait_for_url("**/services")
    page.goto("/account/security")
    page.click("a:has-text('Remove'):has(span:has-text('authenticator app'))")
    page.wait_for_url("**/account/security/app/remove")
    assert (
        page.locator("h1").inner_text() == "Are you sure you want to remove your authenticator app?"
    )
    assert_accessible(page)
    page.click("button:has-text('Remove')")
    page.wait_for_url("**/account/security")
    assert "Your authenticator app has been removed" in page.inner_text("main")


def test_step_up_through_authorize_for_a_service_that_requires_mfa(page, live_server):
    """A password-only session reaching a require_mfa service is asked for the second factor."""
    if "oidc.authorize" not in current_app.view_functions:
        pytest.skip(
            "the OIDC /authorize endpoint (oidc.authorize) does not exist yet; the step-up is "
            "tested through flow.start_step_up in tests/mfa/test_policy.py"
        )
    user = make_user(email="ada@school.example")
    sign_in(page, "ada@school.example")
    page.wait_for_url("**/services")
    secret = add_totp(user)  # set up since this session began: the session is password-only
    db.session.add(
        Service(
            client_id="pupil-records",
            name="Pupil records",
            redirect_uris=["http://127.0.0.1:9/callback"],
            allowed_scopes=["openid"],
            grant_types=["authorization_code"],
            token_endpoint_auth_method="none",
            require_mfa=True,
            access_policy=AccessPolicy.OPEN,  # access is not the point here (issue 7)
        )
    )
    db.session.commit()
    redirected: list[str] = []
    page.route(
        "http://127.0.0.1:9/**",
        lambda route: (redirected.append(route.request.url), route.fulfill(body="ok")),
    )
    page.goto(
        "/authorize?response_type=code&client_id=pupil-records&scope=openid"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&state=abc&nonce=n"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    )
    page.wait_for_url("**/sign-in/mfa/app")
    page.fill("#code", code_for(secret))
    page.click("button:has-text('Continue')")
    page.wait_for_url("http://127.0.0.1:9/callback*")
    assert "code=" in redirected[-1]
