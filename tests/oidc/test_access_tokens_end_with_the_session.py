"""Access tokens end with the SSO session they were issued in (issue 4; I04 Also, RFC 7009).

Signing out (or any other end of the session: logout, "sign out everywhere", expiry) makes
every access token issued in that session fail at UserInfo and show inactive at
introspection, although the JWT has not expired. Tokens of the person's other sessions, and
tokens about a client itself (client credentials), are not affected.
"""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.factories import csrf_token
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, unverified

SCOPE = "openid profile"


def sign_out(client: FlaskClient) -> None:
    page = client.get("/sign-out")
    response = client.post("/sign-out", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 200


def introspected(rp: RP, token: str) -> bool:
    body = rp.post("/introspect", {"token": token}).get_json()
    return bool(body["active"])


def test_signing_out_ends_the_access_tokens_of_that_session(rp, user):
    issued = rp.tokens(rp.login(EMAIL, scope=SCOPE))
    token = issued["access_token"]
    assert unverified(token)[1]["sid"]  # the session it belongs to travels with it
    assert rp.userinfo(token).status_code == 200
    assert introspected(rp, token)

    sign_out(rp.client)

    refused = rp.userinfo(token)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert not introspected(rp, token)


def test_tokens_of_another_session_keep_working(app, rp, user):
    mine = rp.tokens(rp.login(EMAIL, scope=SCOPE))["access_token"]
    other_browser = RP(app.test_client(), rp.client_id, rp.secret)
    theirs = other_browser.tokens(other_browser.login(EMAIL, scope=SCOPE))["access_token"]
    assert unverified(mine)[1]["sid"] != unverified(theirs)[1]["sid"]

    sign_out(rp.client)

    assert rp.userinfo(mine).status_code == 401
    assert rp.userinfo(theirs).status_code == 200
