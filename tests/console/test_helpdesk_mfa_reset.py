"""D07 / issue 8: an MFA reset after a recorded identity check, with four eyes for staff and
approvers, and the sign-in that follows it."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from idp.models import StaffRole
from idp.services.mfa.factors import factors_of
from idp.services.sso_sessions import get_sso_sessions
from tests.console.action_helpers import (
    audit_events,
    make_approver,
    reload,
    staff_client,
    submit,
)
from tests.console.helpers import sign_in_staff
from tests.factories import csrf_token, make_user, page_text
from tests.mailbox import emails_to, latest_link
from tests.mfa.journeys import MfaSignIn, add_key, add_totp, code_for, issue_codes
from tests.mfa.softkey import SoftKey

CHECK = "Called back on the school's number from GIAS; confirmed date of birth"
REASON = "Ticket 5120: lost phone"


def reset_path(user) -> str:
    return f"/helpdesk/users/{user.sub}/reset-mfa"


def request_id_for(user) -> str:
    [event] = audit_events("helpdesk.mfa_reset_requested", user)
    return str(event.details["request"])


def test_reset_for_a_plain_user_takes_effect_at_once(app: Flask, client: FlaskClient) -> None:
    staff = sign_in_staff(client)
    target = make_user(email="ada@hill-school.sch.uk")
    secret = add_totp(target)
    add_key(target, SoftKey())
    issue_codes(target)
    phone = app.test_client()
    journey = MfaSignIn(phone)
    journey.password(target.email)
    journey.totp(code_for(secret))
    assert journey.finish().status_code == 303
    assert get_sso_sessions().list_for_user(target.sub)

    response = submit(client, reset_path(target), {"identity_check": CHECK, "reason": REASON})

    assert response.status_code == 200
    assert "Security methods reset" in page_text(response)
    factors = factors_of(reload(target))
    assert (factors.totp, factors.webauthn, factors.recovery_codes_left) == ([], [], 0)
    assert get_sso_sessions().list_for_user(target.sub) == []
    [asked] = audit_events("helpdesk.mfa_reset_requested", target)
    assert (asked.actor_id, asked.reason) == (staff.sub, REASON)
    assert asked.details["identity_check"] == CHECK
    [done] = audit_events("helpdesk.mfa_reset_done", target)
    assert done.details["identity_check"] == CHECK
    assert done.details["removed"]["webauthn"] == 1
    [email] = emails_to(target.email)
    assert email.template == "mfa_reset"


def test_after_a_reset_the_link_leads_to_sign_in_and_set_up(
    app: Flask, client: FlaskClient
) -> None:
    """The sign-in the link starts ends in set-up, with no "not now", though no service
    requires MFA of this person; the link itself is no way in (C07)."""
    sign_in_staff(client)
    target = make_user()
    add_totp(target)
    submit(client, reset_path(target), {"identity_check": CHECK, "reason": REASON})
    browser = app.test_client()

    link = browser.get(latest_link(target.email, "mfa_reset"))
    assert link.status_code == 200
    assert "Sign in" in page_text(link)
    assert browser.get("/account").status_code == 302  # the link signs nobody in
    signed_in = MfaSignIn(browser).password(target.email)

    assert signed_in.headers["Location"].endswith("/sign-in/set-up")
    set_up = browser.get("/sign-in/set-up")
    assert set_up.status_code == 200
    assert "/sign-in/set-up/later" not in set_up.get_data(as_text=True)
    assert browser.get("/sign-in/finish").headers["Location"].endswith("/sign-in/set-up")


def test_a_used_up_or_forged_set_up_link_does_not_work(client: FlaskClient) -> None:
    response = client.get("/set-up-security/not-a-real-token")
    assert response.status_code == 404
    assert "does not work" in page_text(response)


def test_the_identity_check_is_required(client: FlaskClient) -> None:
    sign_in_staff(client)
    target = make_user()
    add_totp(target)

    response = submit(client, reset_path(target), {"identity_check": "", "reason": REASON})

    assert response.status_code == 400
    assert 'href="#identity_check"' in response.get_data(as_text=True)
    assert "Enter how you checked who the caller is" in page_text(response)
    assert factors_of(reload(target)).totp
    assert audit_events("helpdesk.mfa_reset_requested") == []


def test_staff_cannot_reset_their_own_security_methods(client: FlaskClient) -> None:
    staff = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)

    response = submit(client, reset_path(staff), {"identity_check": CHECK, "reason": REASON})

    assert response.status_code == 403
    assert factors_of(reload(staff)).webauthn


def test_an_approvers_reset_waits_for_a_different_helpdesk_admin(
    app: Flask, client: FlaskClient
) -> None:
    requester = sign_in_staff(client, StaffRole.HELPDESK_ADMIN)
    target = make_user()
    add_totp(target)
    make_approver(target)

    asked = submit(client, reset_path(target), {"identity_check": CHECK, "reason": REASON})

    assert asked.status_code == 200
    assert "waiting for approval" in page_text(asked)
    assert factors_of(reload(target)).totp  # nothing yet
    assert emails_to(target.email) == []
    request_id = request_id_for(target)
    listing = page_text(client.get("/helpdesk/mfa-resets"))
    assert target.email in listing
    assert CHECK in listing
    approve = f"/helpdesk/mfa-resets/{request_id}/approve"

    # The requester cannot be their own second pair of eyes.
    page = client.get(approve)
    assert "another helpdesk admin must decide it" in page_text(page)
    own = client.post(approve, data={"csrf_token": _token(client)})
    assert own.status_code == 403
    assert factors_of(reload(target)).totp

    # A helpdesk agent (not an admin) may not approve at all.
    agent, _ = staff_client(app, StaffRole.HELPDESK, given_name="Alan")
    assert agent.get(approve).status_code == 403

    # A different admin approves: the reset takes effect and the person is told.
    other, second = staff_client(app, StaffRole.HELPDESK_ADMIN, given_name="Katherine")
    done = submit(other, approve, {"note": "Checked the call-back record"})

    assert done.status_code == 200
    assert factors_of(reload(target)).totp == []
    [email] = emails_to(target.email)
    assert email.template == "mfa_reset"
    [approved] = audit_events("helpdesk.mfa_reset_approved", target)
    assert approved.actor_id == second.sub
    [applied] = audit_events("helpdesk.mfa_reset_done", target)
    assert applied.details["requested_by"] == requester.sub
    assert "no resets waiting" in page_text(client.get("/helpdesk/mfa-resets"))


def test_a_helpdesk_staff_reset_can_be_rejected(app: Flask, client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    _, colleague = staff_client(app, StaffRole.HELPDESK, given_name="Alan")

    asked = submit(client, reset_path(colleague), {"identity_check": CHECK, "reason": REASON})
    assert "waiting for approval" in page_text(asked)
    again = submit(client, reset_path(colleague), {"identity_check": CHECK, "reason": REASON})
    assert again.status_code == 409
    assert "already waiting" in page_text(again)

    admin, _ = staff_client(app, StaffRole.HELPDESK_ADMIN, given_name="Katherine")
    reject = f"/helpdesk/mfa-resets/{request_id_for(colleague)}/reject"
    empty = submit(admin, reject, {"note": ""})
    assert empty.status_code == 400
    rejected = submit(admin, reject, {"note": "Call-back number did not match"})

    assert rejected.status_code == 200
    assert "MFA reset rejected" in page_text(rejected)
    assert factors_of(reload(colleague)).webauthn
    assert len(audit_events("helpdesk.mfa_reset_rejected", colleague)) == 1
    assert emails_to(colleague.email) == []
    approve_later = admin.get(f"/helpdesk/mfa-resets/{request_id_for(colleague)}/approve")
    assert "already been decided" in page_text(approve_later)
    assert factors_of(reload(colleague)).webauthn


def _token(client: FlaskClient) -> str:
    """This browser's CSRF token (the approve page shows the requester no form)."""
    return csrf_token(client.get("/helpdesk/bulk"))
