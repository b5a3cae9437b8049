"""``oidcc-ensure-client-assertion-with-iss-aud-succeeds`` (OIDC Core §9; RFC 7523 §3; G04):
``private_key_jwt`` with ``aud`` the issuer or the token endpoint, ``iss`` = ``sub`` = the
client; everything else about the assertion is refused with ``invalid_client``."""

from __future__ import annotations

import pytest

from idp.oidc.discovery import get_issuer
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, epoch

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def jwt_rp(client) -> RP:
    return RP.register(client, client_id="jwt-portal", auth_method="private_key_jwt")


def redeem_with(rp: RP, assertion: str, code: str) -> dict:
    response = rp.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp.redirect_uri,
            "code_verifier": rp.last.verifier,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    body: dict = response.get_json()
    body["status"] = response.status_code
    return body


@pytest.mark.parametrize("aud", ["issuer", "token_endpoint", "list"])
def test_oidcc_ensure_client_assertion_with_iss_aud_succeeds(jwt_rp, user, aud):
    issuer = get_issuer()
    audience = {
        "issuer": issuer,
        "token_endpoint": issuer + "/token",
        "list": [issuer + "/token", "https://elsewhere.example"],
    }[aud]
    code = jwt_rp.login(EMAIL).code
    body = redeem_with(jwt_rp, jwt_rp.assertion(aud=audience), code)
    assert body["status"] == 200, body
    jwt_rp.validate_id_token(body["id_token"], nonce=jwt_rp.last.nonce)


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://elsewhere.example/token"},
        {"iss": "someone-else"},
        {"sub": "someone-else"},
        {"exp": None},
        {"jti": None},
        {"exp": "expired"},
        {"exp": "far"},
    ],
    ids=["aud", "iss", "sub", "no-exp", "no-jti", "expired", "lives-too-long"],
)
def test_G04_bad_assertions_are_invalid_client(jwt_rp, user, overrides):
    now = epoch()
    values = {
        k: ({"expired": now - 120, "far": now + 86400}.get(v, v) if k == "exp" else v)
        for k, v in overrides.items()
    }
    claims = {k: v for k, v in values.items() if v is not None}
    assertion = jwt_rp.assertion(**claims)
    if None in values.values():
        from joserfc import jwt

        decoded = dict(jwt.decode(assertion, jwt_rp.private_key).claims)
        for name in [k for k, v in values.items() if v is None]:
            decoded.pop(name)
        header = {"alg": "ES256", "kid": jwt_rp.private_key.kid}
        assertion = jwt.encode(header, decoded, jwt_rp.private_key, algorithms=["ES256"])
    code = jwt_rp.login(EMAIL).code
    body = redeem_with(jwt_rp, assertion, code)
    assert body["error"] == "invalid_client", body
    assert body["status"] in (400, 401)


def test_G04_a_secret_client_cannot_use_an_assertion_and_vice_versa(client, jwt_rp, user):
    secret_rp = RP.register(client)
    code = jwt_rp.login(EMAIL).code
    basic = jwt_rp.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code},
        headers={"Authorization": "Basic am9lOnNlY3JldA=="},
    )
    assert basic.get_json()["error"] == "invalid_client"
    code = secret_rp.login(EMAIL).code
    secret_rp.auth_method = "client_secret_post"  # the wrong method for this client
    assert secret_rp.redeem(code).get_json()["error"] == "invalid_client"


def test_two_authentication_methods_at_once_is_invalid_request(jwt_rp, user):
    code = jwt_rp.login(EMAIL).code
    response = jwt_rp.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": jwt_rp.assertion(),
            "client_secret": "also-this",
            "client_id": jwt_rp.client_id,
        },
    )
    assert response.get_json()["error"] == "invalid_request"


def test_a_client_id_that_differs_from_the_assertion_is_invalid_client(jwt_rp, user):
    code = jwt_rp.login(EMAIL).code
    response = jwt_rp.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "school-portal",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": jwt_rp.assertion(),
        },
    )
    assert response.get_json()["error"] == "invalid_client"
