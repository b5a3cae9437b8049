"""Fuzzing the protocol endpoints with Hypothesis (DESIGN §9 "every endpoint survives fuzzing
with no 500"; G06): random, duplicated and oversized parameters and headers always get a
spec-shaped error, never a 500, and never a description with CR, LF or TAB."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idp.oidc.server import AUTHORIZATION_PARAMETERS, TOKEN_PARAMETERS
from tests.oidc.rp import REDIRECT_URI, basic, s256

TOKEN_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}
AUTHORIZATION_ERRORS = {
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "login_required",
    "interaction_required",
    "consent_required",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
}
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
values = st.one_of(
    text,
    st.sampled_from(
        [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password",
            "school-portal",
            REDIRECT_URI,
            "openid",
            "S256",
            "plain",
            "none",
            "a.b.c",
            "eyJhbGciOiJub25lIn0.e30.",
            "\r\n\t",
            '"\\',
        ]
    ),
    st.integers(0, 20000).map(lambda n: "x" * n),
)


def pairs(names: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, str]]]:
    name = st.one_of(st.sampled_from(names), text)
    return st.lists(st.tuples(name, values), max_size=12)


authorization_headers = st.one_of(
    st.none(),
    st.binary(max_size=64).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.sampled_from(["Basic", "Basic !!!", "Bearer x", "Basic " + "A" * 9000, "basic Og=="]),
    text.map(lambda t: "Basic " + base64.b64encode(t.encode()).decode()),
)


def check_json_error(response: Any, allowed: set[str]) -> None:
    assert response.status_code != 500
    assert response.headers["Cache-Control"] == "no-store"
    if response.status_code == 200:
        return
    assert response.status_code in (400, 401, 403, 413), response.status_code
    body = response.get_json()
    assert body["error"] in allowed, body
    assert DESCRIPTION.fullmatch(body.get("error_description", "")), body


@FUZZ
@given(params=pairs(TOKEN_PARAMETERS), authorization=authorization_headers)
def test_fuzz_token_endpoint(rp, params, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    if not all(0x20 <= ord(c) < 0x7F for c in authorization or ""):
        headers = {}  # not a header value HTTP can carry
    response = rp.client.post(
        "/token",
        data=urlencode(params),
        headers=headers,
        content_type="application/x-www-form-urlencoded",
    )
    check_json_error(response, TOKEN_ERRORS)


@FUZZ
@given(params=pairs(TOKEN_PARAMETERS), with_client=st.booleans())
def test_fuzz_token_endpoint_with_an_authenticated_client(rp, params, with_client):
    headers = basic(rp.client_id, rp.secret or "") if with_client else {}
    response = rp.client.post(
        "/token",
        data=urlencode(params),
        headers=headers,
        content_type="application/x-www-form-urlencoded",
    )
    check_json_error(response, TOKEN_ERRORS)


@FUZZ
@given(params=pairs(TOKEN_PARAMETERS), endpoint=st.sampled_from(["/revoke", "/introspect"]))
def test_fuzz_revocation_and_introspection(rp, params, endpoint):
    response = rp.client.post(
        endpoint,
        data=urlencode(params),
        headers=basic(rp.client_id, rp.secret or ""),
        content_type="application/x-www-form-urlencoded",
    )
    check_json_error(response, TOKEN_ERRORS)


@FUZZ
@given(
    token=st.one_of(text, st.sampled_from(["a.b.c", "e30.e30.e30", "x" * 5000])),
    method=st.sampled_from(["GET", "POST", "BODY"]),
)
def test_fuzz_userinfo(rp, token, method):
    if method == "BODY":
        response = rp.client.post("/userinfo", data={"access_token": token})
    elif all(0x20 <= ord(c) < 0x7F for c in token):
        response = rp.client.open(
            "/userinfo", method=method, headers={"Authorization": "Bearer " + token}
        )
    else:
        return
    assert response.status_code in (400, 401), response.status_code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@FUZZ
@given(
    extra=pairs(AUTHORIZATION_PARAMETERS),
    base=st.booleans(),
    method=st.sampled_from(["GET", "POST"]),
)
def test_fuzz_authorization_endpoint(rp, extra, base, method):
    """With or without a valid base request, anything added gives a spec answer."""
    verifier = "v" * 43
    params: list[tuple[str, str]] = []
    if base:
        params = [
            ("response_type", "code"),
            ("client_id", rp.client_id),
            ("redirect_uri", rp.redirect_uri),
            ("scope", "openid"),
            ("code_challenge", s256(verifier)),
            ("code_challenge_method", "S256"),
        ]
    params += extra
    if method == "GET":
        response = rp.client.get("/authorize?" + urlencode(params))
    else:
        response = rp.client.post(
            "/authorize", data=urlencode(params), content_type="application/x-www-form-urlencoded"
        )
    assert response.status_code in (302, 303, 400), response.status_code
    if response.status_code == 400:
        assert "Location" not in response.headers
        return
    location = response.headers["Location"]
    if location.startswith("/sign-in"):
        return  # a valid request waiting for the person to sign in
    assert location.startswith(rp.redirect_uri + "?"), location
    query = dict(p.split("=", 1) for p in location.split("?", 1)[1].split("&"))
    assert query["iss"] == "http%3A%2F%2Flocalhost"
    assert query.get("error") in AUTHORIZATION_ERRORS, query
