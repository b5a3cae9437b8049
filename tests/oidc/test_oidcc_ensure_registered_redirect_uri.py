"""``oidcc-ensure-registered-redirect-uri`` and ``oidcc-ensure-redirect-uri-in-authorization-
request`` (F01): an unregistered or missing redirect URI gets our error page, never a redirect.
Also RFC 6749 §4.1.3 / OIDC Core §3.1.3.2 at the token endpoint (G03)."""

from __future__ import annotations

from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, assert_error_page

OTHER = "https://portal.school.example/other-callback"


def test_oidcc_ensure_registered_redirect_uri(rp, user):
    rp.login(EMAIL)
    assert_error_page(rp.authorize(redirect_uri="https://attacker.example/callback"))


def test_oidcc_ensure_redirect_uri_in_authorization_request(client, user):
    rp = RP.register(client, redirect_uris=(OTHER, "https://portal.school.example/callback"))
    assert_error_page(rp.authorize(redirect_uri=None))


def test_unknown_or_missing_client_gets_the_error_page(rp, user):
    assert_error_page(rp.authorize(client_id="nobody-here"))
    assert_error_page(rp.authorize(client_id=None))
    assert_error_page(rp.authorize(client_id="x" * 5000))


def test_one_registered_uri_may_be_left_out_and_then_at_the_token_endpoint_too(rp, user):
    """RFC 6749 §3.1.2.3 / §4.1.3; OIDC Core §3.1.3.2 allows proceeding without it."""
    callback = rp.login(EMAIL, redirect_uri=None)
    assert callback.uri.startswith(rp.redirect_uri + "?")
    assert rp.redeem(callback.code, redirect_uri=None).status_code == 200


def test_when_left_out_a_different_uri_at_the_token_endpoint_is_refused(rp, user):
    callback = rp.login(EMAIL, redirect_uri=None)
    response = rp.redeem(callback.code, redirect_uri="https://attacker.example/cb")
    assert response.get_json()["error"] == "invalid_grant"


def test_G03_token_request_must_repeat_the_same_redirect_uri(client, user):
    rp = RP.register(client, redirect_uris=("https://portal.school.example/callback", OTHER))
    callback = rp.login(EMAIL)
    response = rp.redeem(callback.code, redirect_uri=OTHER)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_G03_token_request_without_the_redirect_uri_it_sent_is_refused(rp, user):
    callback = rp.login(EMAIL)
    response = rp.redeem(callback.code, redirect_uri=None)
    assert response.get_json()["error"] == "invalid_grant"
