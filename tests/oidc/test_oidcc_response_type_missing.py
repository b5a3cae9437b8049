"""``oidcc-response-type-missing`` and F02: only ``response_type=code`` is enabled."""

from __future__ import annotations

import pytest

from tests.oidc.conftest import EMAIL
from tests.oidc.rp import error_redirect


def test_oidcc_response_type_missing(rp, user):
    response = rp.authorize(response_type=None)
    params = error_redirect(response)
    assert params["error"] in ("invalid_request", "unsupported_response_type")
    assert params["state"] == rp.last.state


@pytest.mark.parametrize(
    "response_type", ["token", "id_token", "id_token token", "code id_token", "code token", "x"]
)
def test_F02_only_the_code_response_type(rp, user, response_type):
    rp.login(EMAIL)  # even with a live session, nothing but code is issued
    params = error_redirect(rp.authorize(response_type=response_type))
    assert params["error"] == "unsupported_response_type"
    assert "code" not in params
    assert "access_token" not in params
    assert "id_token" not in params


def test_F02_a_service_not_registered_for_the_code_grant_is_unauthorized(client, user):
    from tests.oidc.rp import RP

    rp = RP.register(
        client,
        client_id="machine-only",
        redirect_uris=("https://machine.school.example/cb",),
        grant_types=("client_credentials",),
        scopes=("openid",),
    )
    params = error_redirect(rp.authorize(), "https://machine.school.example/cb")
    assert params["error"] == "unauthorized_client"


def test_F02_password_grant_is_unsupported(rp, user):
    response = rp.post("/token", {"grant_type": "password", "username": EMAIL, "password": "x"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_implicit_grant_type_is_unsupported_at_the_token_endpoint(rp):
    response = rp.post("/token", {"grant_type": "implicit"})
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(rp):
    response = rp.post("/token", {})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
