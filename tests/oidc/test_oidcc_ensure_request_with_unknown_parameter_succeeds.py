"""``oidcc-ensure-request-with-unknown-parameter-succeeds`` (F05): unknown parameters are
ignored, even repeated ones; known ones may appear only once (RFC 6749 §3.1)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.oidc.conftest import EMAIL
from tests.oidc.rp import error_redirect


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(rp, user):
    body = rp.tokens(rp.login(EMAIL, extra="foobar", claims='{"userinfo": {}}'))
    rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)


def test_a_repeated_unknown_parameter_is_ignored(rp, user):
    rp.login(EMAIL)
    request = rp.new_request()
    query = urlencode([*request.params.items(), ("extra", "1"), ("extra", "2")])
    assert "code" in rp.callback(rp.client.get("/authorize?" + query)).params


@pytest.mark.parametrize("name", ["scope", "state", "nonce", "code_challenge", "prompt"])
def test_a_repeated_known_parameter_is_invalid_request(rp, user, name):
    rp.login(EMAIL)
    request = rp.new_request(prompt="consent")
    query = urlencode([*request.params.items(), (name, request.params[name])])
    assert error_redirect(rp.client.get("/authorize?" + query))["error"] == "invalid_request"


@pytest.mark.parametrize("name", ["request", "request_uri", "registration"])
def test_unsupported_request_objects_get_their_own_error(rp, user, name):
    params = error_redirect(rp.authorize(**{name: "eyJhbGciOiJub25lIn0.e30."}))
    assert params["error"] == f"{name}_not_supported"


def test_only_the_query_response_mode(rp, user):
    assert error_redirect(rp.authorize(response_mode="fragment"))["error"] == "invalid_request"
    assert "code" in rp.login(EMAIL, response_mode="query").params


def test_unknown_parameters_are_not_kept_while_the_person_signs_in(rp, user):
    from idp.store import get_store

    response = rp.authorize(method="POST", extra="x" * 200_000)
    assert response.headers["Location"].startswith("/sign-in")
    (key,) = get_store().keys("oidc:authz-request:*")
    stored = get_store().get(key)
    assert b"extra" not in stored
    assert len(stored) < 2000
    assert "code" in rp.login(EMAIL, request=rp.last).params


def test_an_overlong_known_parameter_is_invalid_request(rp, user):
    params = error_redirect(rp.authorize(scope="openid " + "x" * 3000))
    assert params["error"] == "invalid_request"
