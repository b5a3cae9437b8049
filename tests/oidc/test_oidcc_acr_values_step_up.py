"""``acr_values`` and per-service MFA (OIDC Core §3.1.2.1, §2 ``acr``/``amr``; DESIGN §4 MFA):
a session without a second factor is stepped up in place (same ``sid``) before a code is
issued; the ID token then reports ``acr`` = MFA and ``amr`` with ``mfa``."""

from __future__ import annotations

from idp.oidc.discovery import ACR_MFA, ACR_SINGLE_FACTOR
from tests.factories import page_text
from tests.mfa.journeys import MfaSignIn, add_totp, code_for
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, error_redirect


def test_acr_values_mfa_steps_up_the_session_and_keeps_its_sid(rp, user):
    first = rp.validate_id_token(rp.tokens(rp.login(EMAIL))["id_token"], nonce=rp.last.nonce)
    assert first["acr"] == ACR_SINGLE_FACTOR
    secret = add_totp(user)  # the person sets up an app later

    response = rp.follow(rp.authorize(acr_values=ACR_MFA))
    assert response.request.path.startswith("/sign-in/mfa"), response.request.path
    callback = rp.callback(rp.follow(MfaSignIn(rp.client).totp(code_for(secret))))
    assert callback.params["state"] == rp.last.state
    claims = rp.validate_id_token(rp.tokens(callback)["id_token"], nonce=rp.last.nonce)
    assert claims["acr"] == ACR_MFA
    assert "mfa" in claims["amr"]
    assert claims["sid"] == first["sid"]  # the same session, stepped up
    assert claims["sub"] == first["sub"]


def test_a_service_that_requires_mfa_asks_for_it_at_the_first_sign_in(client, user):
    secret = add_totp(user)
    rp = RP.register(client, require_mfa=True)
    request = rp.new_request()
    page = rp.follow(rp.send(request))
    assert "Sign in" in page_text(page)
    from tests.factories import SignIn

    mfa_page = rp.follow(SignIn(rp.client).with_password(EMAIL))
    assert mfa_page.request.path.startswith("/sign-in/mfa"), mfa_page.request.path
    callback = rp.callback(rp.follow(MfaSignIn(rp.client).totp(code_for(secret))))
    claims = rp.validate_id_token(rp.tokens(callback)["id_token"], nonce=request.nonce)
    assert claims["acr"] == ACR_MFA


def test_prompt_none_cannot_step_up(rp, user):
    rp.login(EMAIL)
    add_totp(user)
    params = error_redirect(rp.authorize(prompt="none", acr_values=ACR_MFA))
    assert params["error"] == "interaction_required"
