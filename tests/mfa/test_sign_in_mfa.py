"""Signing in with a second factor, over HTTP: app, key or passkey, recovery code."""

from __future__ import annotations

import re

from sqlalchemy import select

from idp.auth.sso_cookie import COOKIE_NAME
from idp.extensions import db
from idp.models import AuditEvent, RecoveryCode, WebAuthnCredential
from idp.oidc.discovery import ACR_MFA
from idp.services.mfa import factors
from idp.services.sso_sessions import get_sso_sessions
from tests.factories import csrf_token, page_text
from tests.mailbox import emails_to
from tests.mfa.journeys import MfaSignIn, add_key, code_for, issue_codes
from tests.mfa.softkey import SoftKey

CODE = re.compile(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{2}\b")


def sso(client):
    return get_sso_sessions().get(client.get_cookie(COOKIE_NAME).value)


def audit_events() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))


def test_password_then_app_gives_an_mfa_session(client, totp_user):
    user, secret = totp_user
    s = MfaSignIn(client)
    assert s.password(user.email).headers["Location"] == "/sign-in/mfa"
    page = client.get("/sign-in/mfa/app")
    code_field = re.search(r"<input[^>]*name=\"code\"[^>]*>", page.get_data(as_text=True))[0]
    assert 'autocomplete="one-time-code"' in code_field
    assert 'inputmode="numeric"' in code_field
    assert s.totp(code_for(secret)).headers["Location"] == "/sign-in/finish"
    assert s.finish().headers["Location"] == "/services"  # issue 7: "Your services"
    assert sso(client).amr == ["pwd", "otp", "mfa"]
    assert sso(client).acr == ACR_MFA
    assert "mfa.verified" in audit_events()


def test_a_blank_code_is_a_form_error(client, totp_user):
    user, _secret = totp_user
    s = MfaSignIn(client)
    s.password(user.email)
    response = s.totp("")
    assert response.status_code == 400
    assert "Enter the 6-digit code from your authenticator app" in page_text(response)


def test_security_key_sign_in_records_hwk(client, user, softkey):
    add_key(user, softkey)
    s = MfaSignIn(client)
    s.password(user.email)
    assert client.get("/sign-in/mfa").headers["Location"] == "/sign-in/mfa/security-key"
    page = page_text(client.get("/sign-in/mfa/security-key"))
    assert "JavaScript" in page  # the <noscript> explanation
    assert s.key(softkey).get_json() == {"redirect": "/sign-in/finish"}
    s.finish()
    assert sso(client).amr == ["pwd", "hwk", "mfa"]
    credential = db.session.scalar(select(WebAuthnCredential))
    assert credential.sign_count == 1
    assert credential.last_used_at is not None


def test_a_platform_passkey_records_swk(client, user):
    passkey = SoftKey(attachment="platform")
    add_key(user, passkey)
    s = MfaSignIn(client)
    s.password(user.email)
    s.key(passkey)
    s.finish()
    assert sso(client).amr == ["pwd", "swk", "mfa"]


def test_the_key_page_without_javascript_says_what_to_do(client, user, softkey):
    add_key(user, softkey)
    s = MfaSignIn(client)
    s.password(user.email)
    response = s.post_form("/sign-in/mfa/security-key", {})
    assert response.status_code == 400
    assert "needs JavaScript turned on" in page_text(response)


def test_a_recovery_code_leads_to_re_enrolment_and_a_new_set_of_codes(client, totp_user):
    user, _secret = totp_user
    old_codes = issue_codes(user)
    s = MfaSignIn(client)
    s.password(user.email)
    assert s.recovery_code(old_codes[3]).headers["Location"] == "/sign-in/set-up"
    assert "You used a recovery code" in page_text(client.get("/sign-in/set-up"))
    # The lost app is replaced by the new one.
    s.post_form("/sign-in/set-up", {"method": "app"})
    page = client.get("/sign-in/set-up/app")
    secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.get_data(as_text=True))[1]
    done = client.post(
        "/sign-in/set-up/app",
        data={"code": code_for(secret.replace(" ", "")), "csrf_token": csrf_token(page)},
    )
    assert done.headers["Location"] == "/sign-in/set-up/recovery-codes"
    codes_page = client.get("/sign-in/set-up/recovery-codes")
    new_codes = CODE.findall(page_text(codes_page))
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    client.post("/sign-in/set-up/recovery-codes", data={"csrf_token": csrf_token(codes_page)})
    assert s.finish().headers["Location"] == "/services"  # issue 7: "Your services"
    assert sso(client).amr == ["pwd", "otp", "mfa"]
    # The codes were shown once: the page is gone, and the old set no longer works.
    assert client.get("/sign-in/set-up/recovery-codes").status_code == 302
    assert len(factors.totp_credentials(user)) == 1
    assert db.session.query(RecoveryCode).filter_by(used_at=None).count() == 10
    s.password(user.email)
    assert s.recovery_code(old_codes[4]).status_code == 400


def test_a_recovery_code_is_not_a_session_by_itself(client, totp_user):
    user, _secret = totp_user
    codes = issue_codes(user)
    s = MfaSignIn(client)
    s.password(user.email)
    s.recovery_code(codes[0])
    finish = s.finish()
    assert finish.headers["Location"] == "/sign-in/set-up"
    assert client.get_cookie(COOKIE_NAME) is None
    # Recovery is notified at once (NIST SP 800-63B-4 §4.2), finished or not.
    [email] = emails_to(user.email)
    assert email.body.startswith("A recovery code, which was used to sign in, was removed")


def test_keys_can_be_registered_during_sign_in_with_the_name_given(client, user):
    from tests.mfa.journeys import begin

    begin(client, require_mfa=True)
    s = MfaSignIn(client)
    s.password(user.email)
    # The name is checked before the browser asks for the key, and again with the answer.
    token = csrf_token(client.get("/sign-in/set-up/security-key"))
    for path in ("/sign-in/set-up/security-key/options", "/sign-in/set-up/security-key/verify"):
        blank = s.json(path, token, {"name": "   "})
        assert blank.status_code == 400
        assert blank.get_json()["error"] == "Enter a name for your security key or passkey"
    assert s.register_key(SoftKey(), name="  Work   laptop ").status_code == 200
    assert db.session.scalar(select(WebAuthnCredential.name)) == "Work laptop"
