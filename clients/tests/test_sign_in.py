"""Signing in: the happy path and what it must do along the way (J01, J05, J08).

Named after the RP conformance modules (security-requirements.md §2.2): ``oidcc-client-test``
(happy path), ``-client-secret-basic``, ``-userinfo-bearer-header``, ``-idtoken-sig-rs256``.
"""

from __future__ import annotations

import base64
import hashlib

from fake_op import CLIENT_ID
from rp_helpers import Journey, local, query, signed_in

from secure_access_client.sessions import digest


def test_oidcc_client_test_happy_path_signs_in_and_returns_to_the_page(browser, op):
    response = Journey(browser, op).sign_in("/private?tab=2")

    assert local(response.location) == "/private?tab=2"
    page = browser.get("/private")
    assert page.status_code == 200
    assert page.get_data(as_text=True) == (
        "hello Alex Jones of Hill Top Primary School (8d8ac610-566d-4ef0-9c22-186b2a5ed793)"
    )


def test_the_authorization_request_uses_the_code_flow_with_pkce_s256(browser, op):
    journey = Journey(browser, op).start()
    params = journey.params

    assert journey.authorize_url.startswith(op.issuer + "/authorize?")
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "http://localhost/auth/callback"
    assert params["scope"].split() == ["openid", "profile", "email", "organisation", "roles"]
    assert params["code_challenge_method"] == "S256"
    # J01: at least 128 bits each (token_urlsafe(32) is 43 characters, 256 bits).
    assert len(params["state"]) >= 43
    assert len(params["nonce"]) >= 43
    journey.callback()
    token_request = next(form for path, form, _ in op.requests if path == "/token")
    verifier = token_request["code_verifier"][0]
    assert 43 <= len(verifier) <= 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert challenge.rstrip(b"=").decode() == params["code_challenge"]


def test_every_sign_in_gets_fresh_state_nonce_and_verifier(browser, op):
    first = Journey(browser, op).start().params
    second = Journey(browser, op).start().params

    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


def test_oidcc_client_test_client_secret_basic_authenticates_at_the_token_endpoint(browser, op):
    Journey(browser, op).sign_in()

    _, form, headers = next(r for r in op.requests if r[0] == "/token")
    assert headers["Authorization"].startswith("Basic ")
    assert "client_secret" not in form


def test_oidcc_client_test_userinfo_bearer_header_is_how_userinfo_is_asked(browser, op):
    Journey(browser, op).sign_in()

    _, _, headers = next(r for r in op.requests if r[0] == "/userinfo")
    assert headers["Authorization"].startswith("Bearer ")


def test_current_user_has_the_claims_from_the_id_token_and_userinfo(browser, op):
    assert browser.get("/whoami").json["authenticated"] is False
    Journey(browser, op).sign_in(roles=("submitter", "approver"), sid="sid-42")

    assert browser.get("/whoami").json == {
        "authenticated": True,
        "iss": op.issuer,
        "sub": "8d8ac610-566d-4ef0-9c22-186b2a5ed793",
        "names": ["Alex Jones", "Alex", "Jones"],
        "email": "alex.jones@hilltop-primary.example",
        "organisation": ["Hill Top Primary School", "100000", "establishment"],
        "roles": ["submitter", "approver"],
        "amr": ["pwd"],
        "acr": "urn:secure-access:acr:pwd",
        "sid": "sid-42",
        "mfa": False,
    }


def test_the_session_is_a_new_one_at_sign_in_and_the_old_one_is_dead(rp, browser, op):
    """J08 / E01: a cookie planted before sign-in (session fixation) is worthless after it."""
    journey = Journey(browser, op).start()
    name = rp.extensions["secure_access"][1].settings.session_cookie_name
    before = browser.get_cookie(name).value
    journey.callback()
    after = browser.get_cookie(name).value

    assert before != after
    store = rp.extensions["secure_access"][1].store
    assert store.load(digest(before)) is None
    assert store.load(digest(after))["auth"]["sub"] == "8d8ac610-566d-4ef0-9c22-186b2a5ed793"
    attacker = rp.test_client()
    attacker.set_cookie(name, before)
    assert not signed_in(attacker)


def test_the_session_cookie_is_httponly_secure_and_samesite_lax(rp, browser, op):
    journey = Journey(browser, op).start()
    response = browser.get(journey.callback_url())

    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-sa_" + CLIENT_ID + "=")
    for flag in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/"):
        assert flag in cookie


def test_next_is_kept_to_this_site(browser, op):
    response = browser.get("/auth/sign-in?next=https://evil.example/")
    journey = Journey(browser, op)
    journey.authorize_url = response.location
    back = browser.get(journey.callback_url())

    assert local(back.location) == "/"
    for bad in ("//evil.example", "/\\evil.example", "javascript:alert(1)"):
        response = browser.get("/auth/sign-in", query_string={"next": bad})
        assert response.status_code == 302


def test_without_a_session_protected_pages_send_you_to_sign_in(browser):
    response = browser.get("/private?x=1")

    assert response.status_code == 302
    assert local(response.location) == "/auth/sign-in?next=%2Fprivate%3Fx%3D1"
    assert query(response.location) == {"next": "/private?x=1"}


def test_a_post_to_a_protected_page_without_a_session_is_refused_not_redirected(browser):
    response = browser.post("/private")

    assert response.status_code in (401, 405)
