"""``oidcc-ensure-post-request-succeeds`` (OIDC Core §3.1.2.1): the authorization request by
POST, answered with 303 (RFC 9700 §4.12, F10 Also), with or without a sign-in in between."""

from __future__ import annotations

from tests.oidc.conftest import EMAIL


def test_oidcc_ensure_post_request_succeeds(rp, user):
    callback = rp.login(EMAIL, method="POST")  # signs in through the hand-off
    body = rp.tokens(callback)
    rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)


def test_a_post_with_a_live_session_is_answered_with_303(rp, user):
    rp.login(EMAIL)
    response = rp.authorize(method="POST")
    assert response.status_code == 303
    assert "code" in rp.callback(response).params


def test_a_post_error_is_answered_with_303(rp, user):
    response = rp.authorize(method="POST", prompt="none")
    assert response.status_code == 303
    assert "error=login_required" in response.headers["Location"]


def test_a_post_needs_no_csrf_token_but_sign_in_still_does(rp, user):
    response = rp.authorize(method="POST")
    assert response.status_code == 303
    assert rp.client.post("/sign-in", data={"email": EMAIL}).status_code == 400
