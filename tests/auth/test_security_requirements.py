"""Checklist items for the accounts issue, tested over HTTP, each named after its item id.

Items tested at the service level live beside their services (tests/services/test_passwords.py,
test_throttle.py, test_sso_sessions.py); these are the ones a person or attacker sees.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from idp.auth.sso_cookie import COOKIE_NAME
from idp.extensions import db
from idp.models import AccountToken, AuditEvent, User, UserStatus
from idp.models.base import utcnow
from idp.services import invitations
from idp.services.transaction import transaction
from tests.factories import DEFAULT_PASSWORD, SignIn, csrf_token, make_user, page_text
from tests.mailbox import emails_to, latest_link

NEW_PASSWORD = "purple elephants marching slowly home"
_RANDOM_PARTS = [
    (re.compile(r"nonce-[A-Za-z0-9_-]+"), "nonce-X"),
    (re.compile(r'nonce="[A-Za-z0-9_-]+"'), 'nonce="X"'),
    (re.compile(r'name="csrf_token" type="hidden" value="[^"]+"'), 'name="csrf_token" value="X"'),
    (re.compile(r'value="[^"]*@school\.example"'), 'value="EMAIL"'),
    (re.compile(r"[^\s<>]*@school\.example"), "EMAIL"),
]


def normalised(body: str) -> str:
    """The page with only the per-request random values and the echoed email replaced."""
    for pattern, replacement in _RANDOM_PARTS:
        body = pattern.sub(replacement, body)
    return body


def post_form(client, path: str, data: dict[str, str]):
    page = client.get(path)
    return client.post(path, data={**data, "csrf_token": csrf_token(page)})


# -- A: passwords --------------------------------------------------------------------------


def test_A05_no_expiry_after_400_days(client):
    make_user(email="ada@school.example")
    with time_machine.travel(utcnow() + timedelta(days=400)):
        finish = SignIn(client).completed("ada@school.example")
    assert finish.headers["Location"] == "/services"  # issue 7: "Your services"


def test_A05_compromised_flag_forces_a_change_at_next_sign_in(client):
    user = make_user(email="ada@school.example")
    user.password_compromised = True
    db.session.commit()
    response = SignIn(client).with_password("ada@school.example")
    assert response.headers["Location"] == "/sign-in/new-password"
    # Skipping the step is not possible (forced browsing).
    assert client.get("/sign-in/finish").headers["Location"].endswith("/sign-in/new-password")
    page = client.get("/sign-in/new-password")
    done = client.post(
        "/sign-in/new-password", data={"password": NEW_PASSWORD, "csrf_token": csrf_token(page)}
    )
    assert done.headers["Location"] == "/sign-in/finish"
    assert client.get("/sign-in/finish").headers["Location"] == "/services"
    db.session.refresh(user)
    assert user.password_compromised is False


def test_A05_a_breached_password_at_sign_in_is_flagged(client):
    make_user(email="ada@school.example", password="password123456789")
    response = SignIn(client).with_password("ada@school.example", "password123456789")
    assert response.headers["Location"] == "/sign-in/new-password"


def test_A05_no_hints_or_security_questions_anywhere(client):
    for path in ("/sign-in", "/forgot-password"):
        text = page_text(client.get(path)).lower()
        assert "hint" not in text
        assert "security question" not in text


def test_A06_password_fields_allow_paste_and_password_managers(client):
    body = client.get("/sign-in").get_data(as_text=True)
    assert 'type="password"' in body
    assert 'autocomplete="current-password"' in body
    assert "onpaste" not in body


def test_A07_changing_a_password_needs_the_current_one(client):
    make_user(email="ada@school.example")
    SignIn(client).completed("ada@school.example")
    response = post_form(client, "/account/password", {"new_password": NEW_PASSWORD})
    assert response.status_code == 400
    assert "Enter your current password" in page_text(response)
    wrong = post_form(
        client,
        "/account/password",
        {"current_password": "not it at all really", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 400
    assert "Your current password is not right" in page_text(wrong)


def test_A08_stored_hash_is_argon2id_and_rehashed_when_parameters_rise(app, client):
    user = make_user(email="ada@school.example")
    assert user.password_hash.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    passwords = app.extensions["passwords"]
    stronger = type(passwords)(
        app.extensions["settings"].model_copy(update={"argon2_time_cost": 2})
    )
    app.extensions["passwords"] = stronger
    try:
        SignIn(client).completed("ada@school.example")
    finally:
        app.extensions["passwords"] = passwords
    db.session.refresh(user)
    assert user.password_hash.startswith("$argon2id$v=19$m=64,t=2,p=1$")


def test_A09_an_invitation_link_works_once_and_expires(client):
    user = make_user(email="new@school.example", password=None, status=UserStatus.INVITED)
    with transaction():
        invitations.invite(user, actor="test")
    link = latest_link(user.email, "invitation")
    with time_machine.travel(utcnow() + timedelta(days=8)):
        assert client.get(link).status_code == 404
    assert post_form(client, link, {"password": NEW_PASSWORD}).status_code == 303
    assert client.get(link).status_code == 404


def test_A09_a_newer_invitation_replaces_the_older(client):
    user = make_user(email="new@school.example", password=None, status=UserStatus.INVITED)
    with transaction():
        invitations.invite(user, actor="test")
    first = latest_link(user.email, "invitation")
    with transaction():
        invitations.invite(user, actor="test")
    second = latest_link(user.email, "invitation")
    assert first != second
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200


# -- B: guessing and enumeration -------------------------------------------------------------


def test_B04_a_locked_account_is_refused_at_every_password_entry_point(app, client):
    user = make_user(email="ada@school.example")
    SignIn(client).completed("ada@school.example")
    throttle = app.extensions["throttle"]
    from idp.services.throttle import account_key_for

    key = account_key_for(user.email, sub=user.sub)
    for _ in range(app.extensions["settings"].login_max_failures):
        throttle.record_failure(key, "password")
    other = app.test_client()
    assert SignIn(other).with_password("ada@school.example").status_code == 429
    change = post_form(
        client,
        "/account/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert "too many times" in page_text(change)
    db.session.refresh(user)
    assert user.password_changed_at is not None
    confirm = post_form(client, "/account/confirm-password", {"password": DEFAULT_PASSWORD})
    assert "too many times" in page_text(confirm)


def test_B05_sign_in_answers_byte_for_byte_the_same_for_unknown_and_known(client):
    make_user(email="ada@school.example")
    known = SignIn(client).with_password("ada@school.example", "wrong password here")
    unknown = SignIn(client).with_password("zed@school.example", "wrong password here")
    assert known.status_code == unknown.status_code == 400
    assert sorted(k for k, _ in known.headers) == sorted(k for k, _ in unknown.headers)
    assert normalised(known.get_data(as_text=True)) == normalised(unknown.get_data(as_text=True))


def test_B05_forgot_password_answers_byte_for_byte_the_same(client):
    make_user(email="ada@school.example")
    known = post_form(client, "/forgot-password", {"email": "ada@school.example"})
    unknown = post_form(client, "/forgot-password", {"email": "zed@school.example"})
    assert known.status_code == unknown.status_code == 200
    assert normalised(known.get_data(as_text=True)) == normalised(unknown.get_data(as_text=True))
    assert emails_to("ada@school.example")
    assert not emails_to("zed@school.example")


def test_B06_spoofed_x_forwarded_for_does_not_escape_the_ip_limit(app, client):
    """With no trusted proxies, X-Forwarded-For is ignored: rotating it changes nothing."""
    from idp.services.authentication import IP_LIMIT

    limited = 0
    for i in range(IP_LIMIT + 5):
        page = client.get("/sign-in")
        response = client.post(
            "/sign-in",
            data={
                "email": f"user{i}@school.example",
                "password": "wrong guess here",
                "csrf_token": csrf_token(page),
            },
            headers={"X-Forwarded-For": "a" if i % 2 else f"203.0.113.{i % 250}"},
        )
        limited += response.status_code == 429
    assert limited >= 5


def test_B07_a_password_reset_unlocks_the_account(app, client):
    user = make_user(email="ada@school.example")
    from idp.services.throttle import account_key_for

    key = account_key_for(user.email, sub=user.sub)
    for _ in range(app.extensions["settings"].login_max_failures):
        app.extensions["throttle"].record_failure(key, "password")
    assert SignIn(client).with_password("ada@school.example").status_code == 429
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    link = latest_link("ada@school.example", "password_reset")
    assert post_form(client, link, {"password": NEW_PASSWORD}).status_code == 200
    assert SignIn(client).completed("ada@school.example", NEW_PASSWORD).status_code == 303


def test_B01_lock_is_audited_and_emailed_once(app, client):
    make_user(email="ada@school.example")
    start = utcnow()
    max_failures = app.extensions["settings"].login_max_failures
    for i in range(max_failures):
        # Space the attempts beyond the progressive delay, as a patient guesser would.
        with time_machine.travel(start + timedelta(minutes=i)):
            SignIn(client).with_password("ada@school.example", "a wrong guess here")
    with time_machine.travel(start + timedelta(minutes=max_failures)):
        assert SignIn(client).with_password("ada@school.example").status_code == 429
        sent = [m.template for m in emails_to("ada@school.example")]
    locks = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "account.locked"))
    assert len(list(locks)) == 1
    assert sent.count("account_locked") == 1


def test_B01_a_lock_from_the_signed_in_password_check_is_audited_and_emailed_too(app, client):
    """B04: the confirm-password page counts on the same counter; whichever check tips the
    account over, the person hears of it the same way (idp.services.account_lock)."""
    make_user(email="ada@school.example")
    SignIn(client).completed("ada@school.example")
    start = utcnow()
    for i in range(app.extensions["settings"].login_max_failures):
        with time_machine.travel(start + timedelta(minutes=i)):
            post_form(client, "/account/confirm-password", {"password": "a wrong guess here"})
    locks = list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == "account.locked")))
    assert [lock.reason for lock in locks] == ["too many failed password checks"]
    with time_machine.travel(start + timedelta(minutes=20)):  # the email was queued then
        sent = [m.template for m in emails_to("ada@school.example")]
    assert sent.count("account_locked") == 1


# -- C: forgot password ----------------------------------------------------------------------


def test_C01_the_sixth_request_in_15_minutes_sends_nothing(client):
    make_user(email="ada@school.example")
    for _ in range(6):
        response = post_form(client, "/forgot-password", {"email": "ada@school.example"})
        assert "Check your email" in page_text(response)
    assert len([m for m in emails_to("ada@school.example") if m.template == "password_reset"]) == 5


def test_C02_reset_link_is_single_use_expires_and_is_superseded(client):
    make_user(email="ada@school.example")
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    first = latest_link("ada@school.example", "password_reset")
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    second = latest_link("ada@school.example", "password_reset")
    assert client.get(first).status_code == 404
    with time_machine.travel(utcnow() + timedelta(minutes=31)):
        assert client.get(second).status_code == 404
    assert post_form(client, second, {"password": NEW_PASSWORD}).status_code == 200
    assert client.get(second).status_code == 404


def test_C02_only_the_sha256_of_a_token_is_stored(client):
    make_user(email="ada@school.example")
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    raw = latest_link("ada@school.example", "password_reset").rsplit("/", 1)[1]
    assert len(raw) >= 43  # 256 bits
    stored = db.session.scalars(select(AccountToken.token_hash)).all()
    assert raw not in stored
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)


def test_C02_reset_page_sends_no_referrer(client):
    make_user(email="ada@school.example")
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    response = client.get(latest_link("ada@school.example", "password_reset"))
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_C03_reset_link_uses_the_configured_origin_whatever_the_host_headers(client, settings):
    make_user(email="ada@school.example")
    assert client.post("/forgot-password", headers={"Host": "evil.example"}).status_code == 400
    page = client.get("/forgot-password")
    client.post(
        "/forgot-password",
        data={"email": "ada@school.example", "csrf_token": csrf_token(page)},
        headers={"X-Forwarded-Host": "evil.example"},
    )
    body = emails_to("ada@school.example")[0].body
    assert f"{settings.public_base_url}/reset-password/" in body
    assert "evil.example" not in body


def test_C05_the_final_step_checks_the_token_itself(client):
    user = make_user(email="ada@school.example")
    before = user.password_hash
    page = client.get("/forgot-password")
    response = client.post(
        "/reset-password/not-a-real-token",
        data={"password": NEW_PASSWORD, "csrf_token": csrf_token(page)},
    )
    assert response.status_code == 404
    db.session.refresh(user)
    assert user.password_hash == before


def test_C06_reset_ends_sessions_notifies_and_does_not_sign_in(client, app):
    make_user(email="ada@school.example")
    signed_in = app.test_client()
    SignIn(signed_in).completed("ada@school.example")
    assert signed_in.get("/account").status_code == 200
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    done = post_form(
        client, latest_link("ada@school.example", "password_reset"), {"password": NEW_PASSWORD}
    )
    assert COOKIE_NAME not in done.headers.get("Set-Cookie", "")
    assert signed_in.get("/account").status_code == 302
    assert client.get("/account").status_code == 302
    templates = [m.template for m in emails_to("ada@school.example")]
    assert templates.count("password_changed") == 1


# -- E: sessions -----------------------------------------------------------------------------


def test_E04_an_idle_session_ends_after_an_hour(client):
    make_user(email="ada@school.example")
    SignIn(client).completed("ada@school.example")
    with time_machine.travel(utcnow() + timedelta(minutes=61)):
        assert client.get("/account").status_code == 302


def test_E04_an_active_session_still_ends_after_12_hours(client):
    make_user(email="ada@school.example")
    start = utcnow()
    SignIn(client).completed("ada@school.example")
    for minutes in range(50, 12 * 60, 50):
        with time_machine.travel(start + timedelta(minutes=minutes)):
            assert client.get("/account").status_code == 200
    with time_machine.travel(start + timedelta(hours=12, minutes=1)):
        assert client.get("/account").status_code == 302


def test_E05_changing_email_from_a_stale_sign_in_asks_for_the_password(client):
    make_user(email="ada@school.example")
    start = utcnow()
    SignIn(client).completed("ada@school.example")
    with time_machine.travel(start + timedelta(minutes=30)):
        response = client.get("/account/email")
        assert response.status_code == 302
        assert "/account/confirm-password" in response.headers["Location"]
        confirm = post_form(
            client, "/account/confirm-password?next=/account/email", {"password": DEFAULT_PASSWORD}
        )
        assert confirm.headers["Location"] == "/account/email"
        assert client.get("/account/email").status_code == 200


def test_E06_users_can_end_another_of_their_sessions(app, client):
    make_user(email="ada@school.example")
    other = app.test_client()
    SignIn(other).completed("ada@school.example")
    SignIn(client).completed("ada@school.example")
    page = client.get("/account/sessions")
    sids = re.findall(r'name="sid" value="([^"]+)"', page.get_data(as_text=True))
    assert len(sids) == 1  # the other device; this one has no "sign out" button
    client.post("/account/sessions/end", data={"sid": sids[0], "csrf_token": csrf_token(page)})
    assert other.get("/account").status_code == 302
    assert client.get("/account").status_code == 200


def test_E06_ending_a_session_of_someone_else_does_nothing(app, client):
    make_user(email="ada@school.example")
    make_user(email="bob@school.example")
    victim = app.test_client()
    SignIn(victim).completed("bob@school.example")
    victim_sid = (
        app.extensions["sso_sessions"]
        .list_for_user(
            db.session.scalar(select(User.sub).where(User.email == "bob@school.example"))
        )[0]
        .sid
    )
    SignIn(client).completed("ada@school.example")
    page = client.get("/account/sessions")
    client.post("/account/sessions/end", data={"sid": victim_sid, "csrf_token": csrf_token(page)})
    assert victim.get("/account").status_code == 200


def post_routes(app) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or ())
        # The OIDC protocol endpoints are called by other sites and machines (idp.oidc.endpoints).
        and not rule.rule.startswith(
            ("/static", "/token", "/revoke", "/introspect", "/authorize", "/userinfo")
        )
        # The service-to-service API takes a bearer token, never a cookie (idp.api.auth), so a
        # cross-site form cannot ride on anyone's session: CSRF does not apply.
        and not rule.rule.startswith("/api/")
        # RP-Initiated Logout: relying services POST here without our token (RPIL §2); it
        # changes nothing without a valid id_token_hint, and its confirmation form posts to
        # /logout/confirm, which is checked here like every other form (I03, E07).
        and rule.rule != "/logout"
    )


def test_E07_every_form_post_without_a_csrf_token_is_refused(app, client):
    make_user(email="ada@school.example")
    SignIn(client).completed("ada@school.example")
    routes = post_routes(app)
    assert "/sign-in" in routes
    for rule in routes:
        path = re.sub(r"<[^>]+>", "x", rule)
        response = client.post(path, data={"email": "ada@school.example"})
        assert response.status_code in (400, 404), (rule, response.status_code)
        assert "Your form has expired" in page_text(response) or response.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/sign-in",
        "/forgot-password",
        "/sign-out",
        "/account",
        "/invitation/x",
        "/reset-password/x",
        "/nowhere",
    ],
)
def test_E08_no_page_can_be_framed(client, path):
    headers = client.get(path).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"


# -- C04 / C07: a reset never stands in for the second factor --------------------------------


def test_C04_after_a_reset_an_mfa_account_still_needs_its_second_factor(client):
    from tests.mfa.journeys import add_totp, code_for

    user = make_user(email="ada@school.example")
    secret = add_totp(user)
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    done = post_form(
        client, latest_link("ada@school.example", "password_reset"), {"password": NEW_PASSWORD}
    )
    assert COOKIE_NAME not in done.headers.get("Set-Cookie", "")
    response = SignIn(client).with_password("ada@school.example", NEW_PASSWORD)
    # The password step leads to the second factor, and nothing is signed in yet.
    assert response.headers["Location"].startswith("/sign-in/")
    assert response.headers["Location"] != "/sign-in/finish"
    assert client.get("/sign-in/finish").status_code in (302, 303)
    assert client.get("/account").status_code == 302
    assert code_for(secret)  # the factor is still enrolled and usable


def test_C07_an_emailed_link_never_counts_as_a_factor(client):
    """No journey accepts an emailed link in place of a password or second factor."""
    from tests.mfa.journeys import add_totp

    user = make_user(email="ada@school.example")
    add_totp(user)
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    link = latest_link("ada@school.example", "password_reset")
    assert client.get(link).status_code == 200
    assert client.get("/account").status_code == 302  # opening the link signs no one in


def test_C06_a_reset_without_a_live_session_still_revokes_refresh_tokens(client):
    from idp.models import RefreshToken, Service

    user = make_user(email="ada@school.example")
    service = Service(client_id="collect", name="Collect")
    db.session.add(service)
    db.session.flush()
    now = utcnow()
    db.session.add(
        RefreshToken(
            token_hash="0" * 64,
            family_id="f" * 36,
            service_id=service.id,
            user_id=user.id,
            scope="openid offline_access",
            offline_access=True,
            auth_time=0,
            family_expires_at=now + timedelta(days=1),
            expires_at=now + timedelta(days=1),
        )
    )
    db.session.commit()
    post_form(client, "/forgot-password", {"email": "ada@school.example"})
    post_form(
        client, latest_link("ada@school.example", "password_reset"), {"password": NEW_PASSWORD}
    )
    db.session.expire_all()
    assert db.session.scalar(select(RefreshToken.revoked_at)) is not None
