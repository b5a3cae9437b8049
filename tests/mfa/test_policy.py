"""Who must use MFA, forced enrolment, step-up, and the "Protect your account" offer (K01)."""

from __future__ import annotations

import re

from sqlalchemy import select

from idp.auth.sso_cookie import COOKIE_NAME
from idp.extensions import db
from idp.models import AuditEvent, Service, TotpCredential
from idp.oidc.discovery import ACR_MFA, ACR_SINGLE_FACTOR
from idp.services.mfa import factors, get_offer_schedule
from idp.services.sso_sessions import get_sso_sessions
from tests.factories import csrf_token, page_text
from tests.mfa.journeys import (
    MfaSignIn,
    add_key,
    add_totp,
    begin,
    begin_step_up,
    code_for,
    issue_codes,
)
from tests.mfa.softkey import SoftKey


def sso(client):
    cookie = client.get_cookie(COOKIE_NAME)
    assert cookie is not None, "not signed in"
    return get_sso_sessions().get(cookie.value)


def make_service(*, require_mfa: bool) -> Service:
    service = Service(
        client_id="pupil-records",
        name="Pupil records",
        redirect_uris=["https://pupils.example/callback"],
        allowed_scopes=["openid"],
        grant_types=["authorization_code"],
        require_mfa=require_mfa,
    )
    db.session.add(service)
    db.session.commit()
    return service


def finish_codes_page(client) -> None:
    page = client.get("/sign-in/set-up/recovery-codes")
    assert page.status_code == 200
    codes = re.findall(r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{2}\b", page_text(page))
    assert len(codes) == 10
    done = client.post("/sign-in/set-up/recovery-codes", data={"csrf_token": csrf_token(page)})
    assert done.status_code == 303


# -- helpdesk staff (K01) --------------------------------------------------------------------


def test_K01_helpdesk_without_a_key_must_register_one_before_going_on(client, helpdesk_user):
    s = MfaSignIn(client)
    assert s.password(helpdesk_user.email).headers["Location"] == "/sign-in/set-up"
    assert client.get("/sign-in/set-up").headers["Location"] == "/sign-in/set-up/security-key"
    # An authenticator app is not offered, nor accepted if asked for directly.
    assert client.get("/sign-in/set-up/app").headers["Location"] == "/sign-in/set-up"
    assert s.finish().headers["Location"] == "/sign-in/set-up"

    registered = s.register_key(SoftKey(), "Helpdesk key")
    assert registered.get_json() == {"redirect": "/sign-in/set-up/recovery-codes"}
    finish_codes_page(client)
    assert s.finish().headers["Location"] == "/services"  # issue 7: "Your services"
    session = sso(client)
    assert session.amr == ["pwd", "hwk", "mfa"]
    assert session.acr == ACR_MFA


def test_K01_helpdesk_with_a_key_may_use_only_the_key(client, helpdesk_user, softkey):
    add_key(helpdesk_user, softkey)
    add_totp(helpdesk_user)
    issue_codes(helpdesk_user)
    s = MfaSignIn(client)
    s.password(helpdesk_user.email)
    assert client.get("/sign-in/mfa").headers["Location"] == "/sign-in/mfa/security-key"
    assert client.get("/sign-in/mfa/app").headers["Location"] == "/sign-in/mfa"
    recovery_page = client.get("/sign-in/mfa/recovery-code")
    assert "You do not have any recovery codes you can use" in page_text(recovery_page)
    assert "contact a helpdesk administrator" in page_text(recovery_page)
    assert s.key(softkey).status_code == 200
    s.finish()
    assert sso(client).amr == ["pwd", "hwk", "mfa"]


def test_K01_helpdesk_with_only_an_app_proves_it_then_registers_a_key(client, helpdesk_user):
    secret = add_totp(helpdesk_user)
    s = MfaSignIn(client)
    s.password(helpdesk_user.email)
    assert s.totp(code_for(secret)).headers["Location"] == "/sign-in/set-up"
    registered = s.register_key(SoftKey(), "Helpdesk key")
    # They already had recovery codes? No: so they get their first set now.
    assert registered.get_json() == {"redirect": "/sign-in/set-up/recovery-codes"}
    finish_codes_page(client)
    s.finish()
    assert sso(client).amr == ["pwd", "otp", "mfa", "hwk"]


# -- services and acr_values that demand MFA -------------------------------------------------


def test_a_service_marked_require_mfa_forces_enrolment(client, user):
    make_service(require_mfa=True)
    begin(client, client_id="pupil-records", return_to="/account")
    s = MfaSignIn(client)
    assert s.password(user.email).headers["Location"] == "/sign-in/set-up"
    assert s.finish().headers["Location"] == "/sign-in/set-up"


def test_a_service_without_require_mfa_does_not(client, user):
    make_service(require_mfa=False)
    begin(client, client_id="pupil-records", return_to="/account")
    assert MfaSignIn(client).password(user.email).headers["Location"] == "/sign-in/finish"


def test_acr_values_demanding_mfa_force_enrolment_with_an_app(client, user):
    begin(client, require_mfa=True)
    s = MfaSignIn(client)
    assert s.password(user.email).headers["Location"] == "/sign-in/set-up"
    chosen = s.post_form("/sign-in/set-up", {"method": "app"})
    assert chosen.headers["Location"] == "/sign-in/set-up/app"
    page = client.get("/sign-in/set-up/app")
    secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.get_data(as_text=True)).group(1)
    done = client.post(
        "/sign-in/set-up/app",
        data={"code": code_for(secret.replace(" ", "")), "csrf_token": csrf_token(page)},
    )
    assert done.headers["Location"] == "/sign-in/set-up/recovery-codes"
    finish_codes_page(client)
    s.finish()
    assert sso(client).amr == ["pwd", "otp", "mfa"]
    assert sso(client).acr == ACR_MFA


def test_a_required_set_up_cannot_be_skipped(client, user):
    begin(client, require_mfa=True)
    s = MfaSignIn(client)
    s.password(user.email)
    assert "Do this later" not in page_text(client.get("/sign-in/set-up"))
    token = csrf_token(client.get("/sign-in/set-up"))
    client.post("/sign-in/set-up/later", data={"csrf_token": token})
    assert s.finish().headers["Location"] == "/sign-in/set-up"


# -- step-up ----------------------------------------------------------------------------------


def test_step_up_asks_a_password_only_session_for_the_second_factor(client, user):
    s = MfaSignIn(client)
    s.password(user.email)
    s.finish()
    before = sso(client)
    assert before.amr == ["pwd"]
    assert before.acr == ACR_SINGLE_FACTOR
    secret = add_totp(user)  # e.g. set up since, on another device

    begin_step_up(client, user.sub, before.amr, return_to="/account/security")
    assert client.get("/sign-in/mfa").headers["Location"] == "/sign-in/mfa/app"
    assert s.totp(code_for(secret)).headers["Location"] == "/sign-in/finish"
    finish = s.finish()
    assert finish.headers["Location"] == "/account/security"
    after = sso(client)
    assert after.sid == before.sid  # the same session, upgraded in place
    assert after.amr == ["pwd", "otp", "mfa"]
    assert after.acr == ACR_MFA
    assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.event == "sign_in.stepped_up"))


def test_step_up_for_someone_without_a_factor_enrols_one(client, user):
    s = MfaSignIn(client)
    s.password(user.email)
    s.finish()
    begin_step_up(client, user.sub, ["pwd"])
    assert client.get("/sign-in/mfa").headers["Location"] == "/sign-in/set-up"
    assert s.register_key(SoftKey(), "Laptop").status_code == 200
    finish_codes_page(client)
    s.finish()
    assert sso(client).amr == ["pwd", "hwk", "mfa"]


def test_step_up_that_does_not_ask_for_mfa_skips_the_mfa_step(client, totp_user):
    user, secret = totp_user
    s = MfaSignIn(client)
    s.password(user.email)
    s.totp(code_for(secret))
    s.finish()
    begin_step_up(client, user.sub, ["pwd"], require_mfa=False)
    assert client.get("/sign-in/mfa").headers["Location"] == "/sign-in/finish"


# -- optional MFA: used once set up, offered otherwise ----------------------------------------


def test_anyone_with_a_factor_is_asked_for_it(client, totp_user):
    user, _secret = totp_user
    assert MfaSignIn(client).password(user.email).headers["Location"] == "/sign-in/mfa"


def test_an_unconfirmed_app_is_not_a_factor(client, user):
    db.session.add(TotpCredential(user_id=user.id, secret_ciphertext="v1.x.y.z"))
    db.session.commit()
    assert not factors.factors_of(user).any
    assert MfaSignIn(client).password(user.email).headers["Location"] == "/sign-in/finish"


def test_the_offer_is_not_made_at_the_first_sign_in_then_not_now_postpones_it(client, user):
    s = MfaSignIn(client)
    assert s.password(user.email).headers["Location"] == "/sign-in/finish"  # first sign-in
    s.finish()
    get_offer_schedule().postpone(user.sub, until=0)  # the interval has passed
    assert s.password(user.email).headers["Location"] == "/sign-in/protect-your-account"
    page = client.get("/sign-in/protect-your-account")
    assert "Protect your account" in page_text(page)
    not_now = client.post(
        "/sign-in/protect-your-account",
        data={"choice": "not-now", "csrf_token": csrf_token(page)},
    )
    assert not_now.headers["Location"] == "/sign-in/finish"
    assert s.finish().headers["Location"] == "/services"  # issue 7: "Your services"
    assert sso(client).amr == ["pwd"]
    # Not shown again for a while.
    assert s.password(user.email).headers["Location"] == "/sign-in/finish"


def test_set_up_now_leads_to_set_up_which_can_be_left_for_later(client, user):
    s = MfaSignIn(client)
    s.password(user.email)
    s.finish()
    get_offer_schedule().postpone(user.sub, until=0)
    s.password(user.email)
    chosen = s.post_form("/sign-in/protect-your-account", {"choice": "set-up"})
    assert chosen.headers["Location"] == "/sign-in/set-up"
    later = s.post_form("/sign-in/set-up", {})
    assert later.status_code == 400  # nothing chosen
    page = client.get("/sign-in/set-up")
    assert "Do this later" in page_text(page)
    skipped = client.post("/sign-in/set-up/later", data={"csrf_token": csrf_token(page)})
    assert skipped.headers["Location"] == "/sign-in/finish"
    assert s.finish().headers["Location"] == "/services"  # issue 7: "Your services"
    assert not factors.factors_of(user).any


def test_no_offer_for_people_who_must_use_mfa_or_already_do(client, totp_user):
    user, secret = totp_user
    get_offer_schedule().postpone(user.sub, until=0)
    s = MfaSignIn(client)
    s.password(user.email)
    assert s.totp(code_for(secret)).headers["Location"] == "/sign-in/finish"
