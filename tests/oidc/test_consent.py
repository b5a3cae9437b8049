"""F11: the consent step for services that are not first-party, and withdrawing consent.

A service registered with ``first_party = False`` shows the consent page (idp.oidc.consent) the
first time, and whenever it asks for a scope not allowed yet or sends ``prompt=consent``;
``prompt=none`` without consent is ``consent_required`` (OIDC Core §3.1.2.6); "Do not allow" is
``access_denied`` (RFC 6749 §4.1.2.1), both with ``state`` and ``iss`` (RFC 9207). People see
and withdraw what they allowed on "Services you have allowed" (idp.account.allowed_services),
and withdrawing kills the service's refresh tokens.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import AuditEvent, Consent, Organisation
from idp.models.base import utcnow
from tests.access_helpers import grant, school
from tests.factories import SignIn, csrf_token, make_user, page_text
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import CONSENT_QUESTION, RP, error_redirect

SCOPES = ("openid", "profile", "email", "offline_access")


@pytest.fixture
def rp(client) -> RP:
    """A service that is not first-party: it must ask before it learns anything."""
    return RP.register(client, client_id="reading-app", scopes=SCOPES, first_party=False)


def consent_page(rp: RP, email: str = EMAIL, **params: str) -> TestResponse:
    """Authorize, sign in when asked, and stop at the consent page."""
    response = rp.follow(rp.authorize(**params))
    if "Sign in" in page_text(response):
        response = rp.follow(SignIn(rp.client).with_password(email))
    assert response.status_code == 200, response.status_code
    assert CONSENT_QUESTION in page_text(response), page_text(response)[:400]
    return response


def events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def consent_row() -> Consent | None:
    db.session.expire_all()
    return db.session.scalar(select(Consent))


# -- the consent page --------------------------------------------------------------------------


def test_F11_the_consent_page_names_the_service_and_what_it_will_see(rp, user):
    page = consent_page(rp, scope="openid profile email")
    text = page_text(page)
    assert "Allow Service reading-app to use your Secure Access account?" in text
    assert "know it is you, from a reference number for your account" in text
    assert "see your name" in text
    assert "see your email address" in text
    assert "keep you signed in" not in text  # offline_access was not asked for
    assert "Allow" in text
    assert "Do not allow" in text
    assert csrf_token(page)
    assert consent_row() is None  # looking is not allowing


def test_F11_each_scope_is_explained_in_plain_english(client, user):
    rp = RP.register(
        client,
        client_id="reading-app",
        scopes=("openid", "profile", "email", "organisation", "roles", "offline_access"),
        first_party=False,
    )
    text = page_text(consent_page(rp, scope="openid organisation roles offline_access"))
    assert "see your organisation details" in text
    assert "see your roles in Service reading-app" in text
    assert "keep you signed in to Service reading-app when you are not using it" in text
    assert "see your email address" not in text


def test_E08_the_consent_page_cannot_be_framed(rp, user):
    headers = consent_page(rp).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in headers.get("Cache-Control", "")


def test_F11_a_first_party_service_never_shows_the_page(client, user):
    first = RP.register(client, client_id="school-portal")
    assert "code" in first.login(EMAIL).params  # no consent argument: never asked
    assert "code" in first.callback(first.authorize(prompt="consent")).params


def test_F11_only_people_who_may_use_the_service_are_asked(client, user):
    rp = RP.register(client, client_id="reading-app", first_party=False, access_policy="granted")
    response = rp.follow(rp.authorize())
    response = rp.follow(SignIn(client).with_password(EMAIL))
    assert response.status_code == 403
    assert CONSENT_QUESTION not in page_text(response)


# -- allowing ----------------------------------------------------------------------------------


def test_F11_allow_issues_a_code_and_a_valid_id_token(rp, user):
    callback = rp.login(EMAIL, consent="allow")  # state and iss checked by the RP
    body = rp.tokens(callback)
    claims = rp.validate_id_token(
        body["id_token"], nonce=rp.last.nonce, access_token=body["access_token"]
    )
    assert claims["sub"] == user.sub
    assert claims["email"] == EMAIL
    assert rp.userinfo(body["access_token"]).get_json()["name"] == "Ada Lovelace"
    row = consent_row()
    assert row is not None
    assert row.scopes == ["email", "openid", "profile"]
    (granted,) = events("consent.granted")
    assert granted.actor_id == user.sub
    assert granted.target_id == "reading-app"
    assert granted.details["scopes"] == ["email", "openid", "profile"]


def test_F11_the_same_scopes_again_ask_nothing(rp, user):
    rp.login(EMAIL, consent="allow")
    callback = rp.callback(rp.authorize())  # straight back to the service
    assert "code" in callback.params
    assert callback.params["state"] == rp.last.state
    rp.validate_id_token(rp.tokens(callback)["id_token"], nonce=rp.last.nonce)


def test_oidcc_prompt_none_logged_in_once_allowed(rp, user):
    first = rp.validate_id_token(
        rp.tokens(rp.login(EMAIL, consent="allow"))["id_token"], nonce=rp.last.nonce
    )
    callback = rp.callback(rp.authorize(prompt="none"))
    second = rp.validate_id_token(rp.tokens(callback)["id_token"], nonce=rp.last.nonce)
    assert second["sub"] == first["sub"]


def test_F11_a_new_scope_asks_again_and_adds_to_what_was_allowed(rp, user):
    rp.login(EMAIL, consent="allow", scope="openid email")
    page = consent_page(rp, scope="openid email profile")
    assert "see your name" in page_text(page)
    rp.login(request=rp.last, consent="allow")
    assert consent_row().scopes == ["email", "openid", "profile"]
    assert events("consent.granted")[-1].details["added"] == ["profile"]
    # Asking for less than was allowed asks nothing.
    assert "code" in rp.callback(rp.authorize(scope="openid email")).params


def test_F11_prompt_consent_asks_again_and_then_issues_the_code(rp, user):
    rp.login(EMAIL, consent="allow")
    page = consent_page(rp, prompt="consent")
    assert "You have allowed Service reading-app to use your account before" in page_text(page)
    response = rp.follow(rp.answer_consent(page, "allow"))  # no second page: no loop
    callback = rp.callback(response)
    assert "code" in callback.params
    assert callback.params["state"] == rp.last.state
    assert len(events("consent.granted")) == 2


def test_F11_prompt_none_without_consent_is_consent_required(rp, user):
    SignIn(rp.client).completed(EMAIL)  # signed in, but never asked
    params = error_redirect(rp.authorize(prompt="none"))  # checks iss
    assert params["error"] == "consent_required"
    assert params["state"] == rp.last.state
    assert "code" not in params


def test_F11_a_chosen_organisation_survives_the_consent_page(client, user):
    rp = RP.register(
        client,
        client_id="reading-app",
        scopes=("openid", "organisation"),
        first_party=False,
        access_policy="granted",
        roles=[{"code": "reader", "name": "Reader"}],
    )
    hilltop: Organisation = school("Hill Top Primary", "100001")
    riverside: Organisation = school("Riverside Academy", "100002")
    grant(user, hilltop, "reading-app", ["reader"])
    grant(user, riverside, "reading-app", ["reader"])
    callback = rp.login(
        EMAIL,
        scope="openid organisation",
        prompt="select_account",
        organisation=riverside.public_id,
        consent="allow",
    )
    claims = rp.validate_id_token(rp.tokens(callback)["id_token"], nonce=rp.last.nonce)
    assert claims["organisation"]["name"] == "Riverside Academy"


# -- refusing ----------------------------------------------------------------------------------


def test_F11_do_not_allow_sends_access_denied(rp, user):
    callback = rp.login(EMAIL, consent="refuse")  # state and iss checked by the RP
    assert callback.params["error"] == "access_denied"
    assert "code" not in callback.params
    assert consent_row() is None
    (refused,) = events("consent.refused")
    assert refused.actor_id == user.sub
    assert refused.target_id == "reading-app"
    assert refused.outcome == "denied"
    # Refusing is for this request only: the next one asks again.
    consent_page(rp)


def test_E07_allow_without_the_csrf_token_is_refused(rp, user):
    page = consent_page(rp)
    path = urlsplit(page.request.url).path
    response = rp.client.post(path, data={"decision": "allow"})
    assert response.status_code == 400
    assert consent_row() is None
    assert "Location" not in response.headers
    # The request still waits for a real answer.
    assert CONSENT_QUESTION in page_text(rp.client.get(path))


def test_F11_an_answer_that_is_neither_button_is_an_error(rp, user):
    page = consent_page(rp)
    path = urlsplit(page.request.url).path
    response = rp.client.post(path, data={"decision": "maybe", "csrf_token": csrf_token(page)})
    assert response.status_code == 400
    assert "There is a problem" in page_text(response)
    assert consent_row() is None


def test_F11_someone_else_signed_in_meanwhile_is_asked_afresh(rp, user):
    page = consent_page(rp)
    path = urlsplit(page.request.url).path
    other = make_user(email="bo@school.example", given_name="Bo")
    SignIn(rp.client).completed("bo@school.example")  # a new session in the same browser
    response = rp.client.post(path, data={"decision": "allow", "csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert consent_row() is None  # Ada's question is not answered by Bo's click
    again = rp.follow(response)
    assert "You are signed in as Bo Lovelace (bo@school.example)" in page_text(again)
    assert other.sub not in {e.actor_id for e in events("consent.granted")}


# -- withdrawing -------------------------------------------------------------------------------


def allowed_page(client) -> TestResponse:
    response = client.get("/account/allowed-services")
    assert response.status_code == 200
    return response


def test_F11_allowed_services_lists_what_each_may_see(rp, user):
    first = RP.register(rp.client, client_id="school-portal")
    first.login(EMAIL)  # first-party: nothing to list
    text = page_text(allowed_page(rp.client))
    assert "You have not allowed any services" in text
    rp.login(EMAIL, consent="allow", scope="openid email offline_access")
    text = page_text(allowed_page(rp.client))
    assert "Service reading-app" in text
    assert "see your email address" in text
    assert "keep you signed in to Service reading-app" in text
    assert "see your name" not in text
    assert "Service school-portal" not in text
    assert "You allowed it on" in text
    overview = page_text(rp.client.get("/account"))
    assert "Services you have allowed" in overview


def test_F11_withdraw_asks_again_and_kills_the_refresh_token(rp, user):
    body = rp.tokens(rp.login(EMAIL, consent="allow", scope="openid email offline_access"))
    refresh_token = body["refresh_token"]
    page = allowed_page(rp.client)
    response = rp.client.post(
        "/account/allowed-services/reading-app/withdraw", data={"csrf_token": csrf_token(page)}
    )
    assert response.status_code == 303
    after = rp.client.get(response.headers["Location"])
    text = page_text(after)
    assert "You have withdrawn Service reading-app's access to your account" in text
    assert "You have not allowed any services" in text
    assert consent_row() is None
    refreshed = rp.refresh(refresh_token)
    assert refreshed.status_code == 400
    assert refreshed.get_json()["error"] == "invalid_grant"
    (withdrawn,) = events("consent.withdrawn")
    assert withdrawn.actor_id == user.sub
    assert withdrawn.target_id == "reading-app"
    # The next sign-in to the service asks again.
    consent_page(rp)


def test_F11_withdrawing_ends_the_services_access_tokens_at_once(rp, user):
    """ASVS 10.7.3: the service cannot keep reading for the rest of an access token's life."""
    old = rp.tokens(rp.login(EMAIL, consent="allow", scope="openid email"))["access_token"]
    assert rp.userinfo(old).status_code == 200
    page = allowed_page(rp.client)
    rp.client.post(
        "/account/allowed-services/reading-app/withdraw", data={"csrf_token": csrf_token(page)}
    )
    refused = rp.userinfo(old)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert rp.post("/introspect", {"token": old}).get_json() == {"active": False}
    # Allowed again later: a token issued after that works.
    with time_machine.travel(utcnow() + timedelta(seconds=5)):
        new = rp.tokens(rp.login(EMAIL, consent="allow", scope="openid email"))["access_token"]
        assert rp.userinfo(new).status_code == 200
        assert rp.userinfo(old).status_code == 401


def test_F11_allowing_and_withdrawing_show_in_the_persons_recent_activity(rp, user):
    rp.tokens(rp.login(EMAIL, consent="allow", scope="openid email"))
    page = allowed_page(rp.client)
    rp.client.post(
        "/account/allowed-services/reading-app/withdraw", data={"csrf_token": csrf_token(page)}
    )
    activity = page_text(rp.client.get("/account/sessions"))
    assert "You allowed a service to see your account details" in activity
    assert "You withdrew a service's permission to see your account details" in activity


def test_F11_withdrawing_leaves_other_services_tokens_alone(client, user):
    reading = RP.register(client, client_id="reading-app", scopes=SCOPES, first_party=False)
    maths = RP.register(client, client_id="maths-app", scopes=SCOPES, first_party=False)
    reading.login(EMAIL, consent="allow", scope="openid offline_access")
    kept = maths.tokens(maths.login(consent="allow", scope="openid offline_access"))
    page = allowed_page(client)
    client.post(
        "/account/allowed-services/reading-app/withdraw", data={"csrf_token": csrf_token(page)}
    )
    assert maths.refresh(kept["refresh_token"]).status_code == 200
    assert "Service maths-app" in page_text(allowed_page(client))


def test_E07_withdraw_without_the_csrf_token_is_refused(rp, user):
    rp.login(EMAIL, consent="allow")
    response = rp.client.post("/account/allowed-services/reading-app/withdraw")
    assert response.status_code == 400
    assert consent_row() is not None
    assert events("consent.withdrawn") == []


def test_F11_allowed_services_needs_a_signed_in_person(client):
    response = client.get("/account/allowed-services")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]
