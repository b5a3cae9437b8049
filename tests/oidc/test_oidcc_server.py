"""The code flow's happy paths, one test per conformance module (§2.1 "Core flow").

``oidcc-server`` checks the ID token (signature, nonce, at_hash, sub, kid), ``state``, ``iss``
in the response and the token response; the others vary one thing each. Also H01-H03, G06,
G07 and F09 as they show in a successful flow.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.auth.sso_cookie import COOKIE_NAME
from idp.extensions import db
from idp.models import AuditEvent
from idp.oidc.discovery import ACR_SINGLE_FACTOR
from idp.services.sso_sessions import get_sso_sessions
from tests.factories import page_text
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, epoch, unverified


def test_oidcc_server(rp, user):
    callback = rp.login(EMAIL)

    assert set(callback.params) == {"code", "state", "iss"}
    assert len(callback.code) >= 43  # G01: at least 128 bits, here 256
    body = rp.tokens(callback)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600  # G07: the default access token lifetime
    assert body["scope"] == "openid profile email"
    claims = rp.validate_id_token(
        body["id_token"], nonce=rp.last.nonce, access_token=body["access_token"]
    )
    assert claims["sub"] == user.sub  # CheckForSubjectInIdToken
    assert claims["exp"] - claims["iat"] == 600  # H02: short-lived
    assert claims["auth_time"] <= claims["iat"]
    assert claims["acr"] == ACR_SINGLE_FACTOR
    assert claims["amr"] == ["pwd"]
    assert "azp" not in claims  # one audience only


def test_oidcc_server_client_secret_post(client, user):
    rp = RP.register(client, auth_method="client_secret_post")
    body = rp.tokens(rp.login(EMAIL))
    rp.validate_id_token(body["id_token"], nonce=rp.last.nonce, access_token=body["access_token"])


def test_oidcc_server_private_key_jwt(client, user):
    rp = RP.register(client, auth_method="private_key_jwt")
    body = rp.tokens(rp.login(EMAIL))
    rp.validate_id_token(body["id_token"], nonce=rp.last.nonce, access_token=body["access_token"])


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(rp, user):
    body = rp.tokens(rp.login(EMAIL, nonce=None))
    claims = rp.validate_id_token(body["id_token"], nonce=None)
    assert "nonce" not in claims  # F09


def test_oidcc_alternate_happy_flow(rp, user):
    """Reordered scopes and a different parameter order (F05)."""
    request = rp.new_request(scope="email openid profile")
    request.params = dict(reversed(list(request.params.items())))
    callback = rp.login(EMAIL, request=request)
    body = rp.tokens(callback)
    assert set(body["scope"].split()) == {"openid", "profile", "email"}


def test_oidcc_ensure_request_with_valid_pkce_succeeds(rp, user):
    callback = rp.login(EMAIL)
    assert rp.redeem(callback.code, rp.last.verifier).status_code == 200


def test_oidcc_ensure_request_with_acr_values_succeeds(rp, user):
    """A voluntary acr the session already meets: no error, and acr is reported."""
    body = rp.tokens(rp.login(EMAIL, acr_values=ACR_SINGLE_FACTOR))
    claims = rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)
    assert claims["acr"] == ACR_SINGLE_FACTOR


@pytest.mark.parametrize("display", ["page", "popup"])
def test_oidcc_display(rp, user, display):
    assert rp.tokens(rp.login(EMAIL, display=display))["id_token"]


def test_oidcc_ui_locales(rp, user):
    assert rp.tokens(rp.login(EMAIL, ui_locales="en-GB cy"))["id_token"]


def test_oidcc_claims_locales(rp, user):
    assert rp.tokens(rp.login(EMAIL, claims_locales="en-GB"))["id_token"]


def test_oidcc_login_hint_prefills_the_email(rp, user):
    page = rp.follow(rp.authorize(login_hint=EMAIL))
    assert f'value="{EMAIL}"' in page.get_data(as_text=True)
    assert "Sign in" in page_text(page)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_oidcc_idtoken_signature_uses_the_registered_alg(client, user, alg):
    """H01, oidcc-idtoken-rs256 / -signature: RS256 by default, ES256 or EdDSA if registered."""
    rp = RP.register(client, id_token_signed_response_alg=alg)
    body = rp.tokens(rp.login(EMAIL))
    header, _ = unverified(body["id_token"])
    assert header["alg"] == alg
    assert header["kid"] in {k["kid"] for k in rp.jwks().as_dict()["keys"]}
    rp.validate_id_token(
        body["id_token"], nonce=rp.last.nonce, access_token=body["access_token"], algorithms=[alg]
    )


def test_H02_sid_is_the_sso_session_sid_and_the_service_is_recorded(rp, user):
    """Back-channel logout names the session by this sid; the session knows the service."""
    body = rp.tokens(rp.login(EMAIL))
    claims = rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)
    cookie = rp.client.get_cookie(COOKIE_NAME)
    session = get_sso_sessions().get(cookie.value)
    assert session is not None
    assert claims["sid"] == session.sid
    assert session.services == [rp.client_id]


def test_G07_access_token_is_an_rfc9068_jwt_for_the_client(rp, user):
    body = rp.tokens(rp.login(EMAIL))
    header, claims = unverified(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["aud"] == claims["client_id"] == rp.client_id
    assert claims["sub"] == user.sub
    assert claims["scope"] == "openid profile email"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["iat"] <= epoch() + 1
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16


def test_code_issued_and_token_issued_are_audited_without_secrets(rp, user):
    body = rp.tokens(rp.login(EMAIL))
    events = {e.event: e for e in db.session.scalars(select(AuditEvent))}
    assert {"oidc.code_issued", "oidc.token_issued"} <= set(events)
    text = repr([e.details for e in events.values()])
    for secret in (body["access_token"], body["id_token"], rp.secret):
        assert secret not in text


def test_a_disabled_service_gets_an_error_page_not_a_code(rp, user):
    from idp.models import ServiceStatus
    from idp.services.clients import get_service
    from idp.services.transaction import transaction

    rp.login(EMAIL)
    with transaction():
        get_service(rp.client_id).status = ServiceStatus.DISABLED
    response = rp.authorize()
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_a_deactivated_user_never_gets_a_code(rp, user):
    from idp.models import UserStatus
    from idp.services.transaction import transaction

    rp.login(EMAIL)
    with transaction():
        user.status = UserStatus.DEACTIVATED
    response = rp.follow(rp.authorize(prompt="none"))
    assert rp.callback(response).params["error"] == "login_required"
    assert "Sign in" in page_text(rp.follow(rp.authorize()))


def test_oidcc_idtoken_unsigned_is_not_offered(client):
    """H01: ``none`` is neither advertised nor registrable, so the module is skipped."""
    from idp.services.clients import ServiceValidationError

    config = client.get("/.well-known/openid-configuration").get_json()
    assert "none" not in config["id_token_signing_alg_values_supported"]
    with pytest.raises(ServiceValidationError):
        RP.register(client, client_id="unsigned", id_token_signed_response_alg="none")
