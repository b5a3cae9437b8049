"""Issue 8 in headless Chromium: helpdesk admins, signed in with a security key, unlock an
account, run a bulk action, and reset an approver's MFA after an identity check, which takes
effect only when a second admin approves it. axe-core checks every page on the way.

WebAuthn uses Chromium's virtual authenticator through the DevTools protocol, on
``http://localhost:<port>`` (browsers refuse WebAuthn on IP-address origins): the shared
``key_page`` / ``virtual_key_page`` in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from idp.models import StaffRole
from idp.services.mfa.factors import factors_of
from idp.services.throttle import account_key_for, get_throttle
from idp.store import get_store
from tests.console.action_helpers import audit_events, make_approver, reload
from tests.e2e.conftest import assert_accessible, sign_in_staff_with_new_key, virtual_key_page
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.mailbox import emails_to, latest_link
from tests.mfa.journeys import add_totp

pytestmark = pytest.mark.e2e

CHECK = "Called back on the school's number from GIAS"


def test_unlock_and_bulk(key_page: Any) -> None:
    agent = make_user(email="hana@helpdesk.example", staff_role=StaffRole.HELPDESK)
    locked = make_user(email="tom@hill-school.sch.uk", given_name="Tom", family_name="Teach")
    key = account_key_for(locked.email, sub=locked.sub)
    get_store().hset("thr:" + key, mapping={"password:lu": -1, "password:c": 100})
    page = key_page
    sign_in_staff_with_new_key(page, agent.email, DEFAULT_PASSWORD)

    page.goto(f"/helpdesk/users/{locked.sub}/actions/unlock")
    assert_accessible(page)
    page.click("button:has-text('Unlock account')")  # no reason yet
    page.locator(".govuk-error-summary a[href='#reason']").wait_for()
    assert_accessible(page)
    page.fill("#reason", "Ticket 77: locked out after the holidays")
    page.click("button:has-text('Unlock account')")
    page.wait_for_url(f"**/helpdesk/users/{locked.sub}")
    assert not get_throttle().is_locked(key)
    [event] = audit_events("helpdesk.unlocked", locked)
    assert event.reason == "Ticket 77: locked out after the holidays"

    page.goto("/helpdesk/bulk")
    assert_accessible(page)
    page.fill("#addresses", f"{locked.email}\nnobody@hill-school.sch.uk")
    page.check("input[value='sign_out']")
    page.fill("#reason", "Ticket 78: phishing incident")
    page.click("button:has-text('Continue')")
    page.locator("h1:has-text('Bulk action results')").wait_for()
    rows = page.inner_text("table")
    assert "Done" in rows
    assert "Not found" in rows
    assert_accessible(page)

    for action in ("change_email", "change_name", "deactivate"):
        page.goto(f"/helpdesk/users/{locked.sub}/actions/{action}")
        assert_accessible(page)
    page.goto("/set-up-security/not-a-live-link")
    assert_accessible(page)


def test_identity_checked_mfa_reset_with_four_eyes(browser: Any, live_server: Any) -> None:
    first = make_user(
        email="hana@helpdesk.example", given_name="Hana", staff_role=StaffRole.HELPDESK_ADMIN
    )
    second = make_user(
        email="kit@helpdesk.example", given_name="Kit", staff_role=StaffRole.HELPDESK_ADMIN
    )
    approver = make_user(email="amy@hill-school.sch.uk", given_name="Amy", family_name="Head")
    add_totp(approver)
    make_approver(approver)

    asker = virtual_key_page(browser, live_server)
    sign_in_staff_with_new_key(asker, first.email, DEFAULT_PASSWORD)
    asker.goto(f"/helpdesk/users/{approver.sub}/reset-mfa")
    assert "Another helpdesk admin must approve" in asker.inner_text("main")
    assert_accessible(asker)
    asker.fill("#reason", "Ticket 90: new phone")
    asker.click("button:has-text('Ask for approval')")  # no identity check yet
    asker.locator(".govuk-error-summary a[href='#identity_check']").wait_for()
    assert_accessible(asker)
    asker.fill("#identity_check", CHECK)
    asker.click("button:has-text('Ask for approval')")
    asker.locator("h1:has-text('MFA reset waiting for approval')").wait_for()
    assert_accessible(asker)
    assert factors_of(reload(approver)).totp  # nothing yet
    asker.click("a:has-text('See resets waiting for approval')")
    assert "Another helpdesk admin must decide" in asker.inner_text("table")
    assert_accessible(asker)

    checker = virtual_key_page(browser, live_server)
    sign_in_staff_with_new_key(checker, second.email, DEFAULT_PASSWORD)
    checker.goto("/helpdesk/mfa-resets")
    checker.click("a:has-text('Approve')")
    assert CHECK in checker.inner_text("main")
    assert_accessible(checker)
    checker.click("button:has-text('Approve reset')")
    checker.locator("h1:has-text('MFA reset approved')").wait_for()
    assert_accessible(checker)

    assert factors_of(reload(approver)).totp == []
    assert [m.template for m in emails_to(approver.email)] == ["mfa_reset"]
    [approved] = audit_events("helpdesk.mfa_reset_approved", approver)
    assert approved.actor_id == second.sub
    asker.context.close()
    checker.context.close()

    # The approver follows the emailed link: sign-in ends in setting up a new method.
    person = browser.new_context(base_url=live_server.url).new_page()
    person.goto(latest_link(approver.email, "mfa_reset"))
    assert_accessible(person)
    person.click("a:has-text('Sign in')")
    assert person.input_value("#email") == approver.email
    person.fill("#password", DEFAULT_PASSWORD)
    person.click("button:has-text('Sign in')")
    person.wait_for_url("**/sign-in/set-up")
    person.context.close()
