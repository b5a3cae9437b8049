"""``oidcc-id-token-hint`` (F06): ``prompt=none`` with the previous ID token as the hint
succeeds silently; a hint for someone else, or one we did not issue, does not (V6, V15)."""

from __future__ import annotations

from idp.oidc.discovery import get_issuer
from idp.oidc.keys import get_keyring
from tests.factories import make_user, page_text
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, epoch, error_redirect


def test_oidcc_id_token_hint(rp, user):
    id_token = rp.tokens(rp.login(EMAIL))["id_token"]
    callback = rp.callback(rp.authorize(prompt="none", id_token_hint=id_token))
    claims = rp.validate_id_token(rp.tokens(callback)["id_token"], nonce=rp.last.nonce)
    assert claims["sub"] == user.sub


def test_an_expired_hint_is_still_a_hint(rp, user):
    from datetime import timedelta

    import time_machine

    from idp.models.base import utcnow

    id_token = rp.tokens(rp.login(EMAIL))["id_token"]
    with time_machine.travel(utcnow() + timedelta(minutes=30)):
        rp.login(EMAIL, prompt="login")
        assert "code" in rp.callback(rp.authorize(prompt="none", id_token_hint=id_token)).params


def test_a_hint_for_someone_else_with_prompt_none_is_login_required(client, rp, user):
    make_user(email="grace@school.example")
    other = RP(client.application.test_client(), rp.client_id, rp.secret)
    grace_token = other.tokens(other.login("grace@school.example"))["id_token"]
    rp.login(EMAIL)
    params = error_redirect(rp.authorize(prompt="none", id_token_hint=grace_token))
    assert params["error"] == "login_required"
    # Without prompt=none, the person is asked to sign in (as the hinted person).
    assert "Sign in" in page_text(rp.follow(rp.authorize(id_token_hint=grace_token)))


def test_a_hint_issued_to_another_client_is_invalid(client, rp, user):
    other = RP.register(client, client_id="other-portal")
    hint = other.tokens(other.login(EMAIL))["id_token"]
    assert error_redirect(rp.authorize(id_token_hint=hint))["error"] == "invalid_request"


def test_V15_a_logout_token_is_not_an_id_token_hint(rp, user):
    rp.login(EMAIL)
    now = epoch()
    logout_token = get_keyring().sign(
        {
            "iss": get_issuer(),
            "aud": rp.client_id,
            "sub": user.sub,
            "iat": now,
            "exp": now + 120,
            "jti": "x",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        },
        typ="logout+jwt",
    )
    params = error_redirect(rp.authorize(prompt="none", id_token_hint=logout_token))
    assert params["error"] == "invalid_request"


def test_an_access_token_is_not_an_id_token_hint(rp, user):
    access_token = rp.tokens(rp.login(EMAIL))["access_token"]
    params = error_redirect(rp.authorize(prompt="none", id_token_hint=access_token))
    assert params["error"] == "invalid_request"


def test_a_forged_hint_is_invalid(rp, user):
    id_token = rp.tokens(rp.login(EMAIL))["id_token"]
    header, payload, signature = id_token.split(".")
    forged = ".".join([header, payload, signature[:-4] + "AAAA"])
    assert error_redirect(rp.authorize(id_token_hint=forged))["error"] == "invalid_request"
