"""``oidcc-userinfo-get``, ``-post-header``, ``-post-body`` and ``-rs256`` (OIDC Core §5.3;
RFC 6750 §2, §3; H05 Also, G06): the bearer token in the header (GET and POST) or the form
body, ``sub`` equal to the ID token's, errors with ``WWW-Authenticate``."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from idp.models import UserStatus
from idp.models.base import utcnow
from idp.services.transaction import transaction
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP


@pytest.fixture
def issued(rp, user) -> dict:
    body = rp.tokens(rp.login(EMAIL))
    body["sub"] = rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)["sub"]
    return body


def check(response, issued: dict) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"  # oidcc-userinfo-rs256: plain JSON
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body: dict = response.get_json()
    assert body["sub"] == issued["sub"]
    return body


def test_oidcc_userinfo_get(rp, issued):
    body = check(rp.userinfo(issued["access_token"]), issued)
    assert body["email"] == EMAIL
    assert body["email_verified"] is True
    assert body["name"] == "Ada Lovelace"


def test_oidcc_userinfo_post_header(rp, issued):
    check(rp.userinfo(issued["access_token"], method="POST"), issued)


def test_oidcc_userinfo_post_body(rp, issued):
    check(rp.userinfo(issued["access_token"], in_body=True), issued)


def test_lowercase_bearer_scheme_is_accepted(rp, issued):
    headers = {"Authorization": "bearer " + issued["access_token"]}
    check(rp.client.get("/userinfo", headers=headers), issued)


def test_no_token_is_401_with_a_bare_bearer_challenge(client):
    response = client.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"  # RFC 6750 §3.1: no error code


def test_token_in_the_query_string_is_not_accepted(client, issued):
    response = client.get("/userinfo?access_token=" + issued["access_token"])
    assert response.status_code == 401


def test_header_and_body_together_is_invalid_request(rp, issued):
    response = rp.client.post(
        "/userinfo",
        data={"access_token": issued["access_token"]},
        headers={"Authorization": "Bearer " + issued["access_token"]},
    )
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_an_invalid_token_is_401_invalid_token(client):
    response = client.get("/userinfo", headers={"Authorization": "Bearer abc.def.ghi"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_an_expired_token_is_401(rp, issued):
    with time_machine.travel(utcnow() + timedelta(seconds=601)):
        assert rp.userinfo(issued["access_token"]).status_code == 401


def test_a_deactivated_users_token_stops_working(rp, issued, user):
    with transaction():
        user.status = UserStatus.DEACTIVATED
    assert rp.userinfo(issued["access_token"]).status_code == 401


def test_an_id_token_is_not_an_access_token(rp, issued):
    """RFC 9068 §4: typ must be at+jwt, whatever the signature."""
    response = rp.userinfo(issued["id_token"])
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


def test_a_token_without_openid_is_insufficient_scope(client):
    rp = RP.register(
        client,
        client_id="machine",
        redirect_uris=(),
        grant_types=("client_credentials",),
        scopes=("openid",),
    )
    token = rp.post("/token", {"grant_type": "client_credentials"}).get_json()["access_token"]
    response = rp.userinfo(token)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="openid"' in response.headers["WWW-Authenticate"]


def test_L02_an_oversized_authorization_header_is_refused_before_parsing(client):
    response = client.get("/userinfo", headers={"Authorization": "Bearer " + "a" * 9000})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
