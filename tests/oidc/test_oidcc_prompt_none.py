"""``oidcc-prompt-none-not-logged-in`` and ``oidcc-prompt-none-logged-in`` (F06): with
``prompt=none`` no page is ever shown; errors come back by redirect with state and iss."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from idp.models.base import utcnow
from idp.oidc.discovery import ACR_MFA
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, error_redirect


def test_oidcc_prompt_none_not_logged_in(rp, user):
    params = error_redirect(rp.authorize(prompt="none"))
    assert params["error"] == "login_required"
    assert params["state"] == rp.last.state


def test_oidcc_prompt_none_logged_in(rp, user):
    first = rp.validate_id_token(rp.tokens(rp.login(EMAIL))["id_token"], nonce=rp.last.nonce)
    callback = rp.callback(rp.authorize(prompt="none"))  # straight back: no page in between
    assert callback.params["state"] == rp.last.state
    second = rp.validate_id_token(rp.tokens(callback)["id_token"], nonce=rp.last.nonce)
    assert second["sub"] == first["sub"]
    assert second["sid"] == first["sid"]


def test_F06_prompt_none_with_another_value_is_invalid_request(rp, user):
    rp.login(EMAIL)
    for prompt in ("none login", "consent none", "none select_account"):
        assert error_redirect(rp.authorize(prompt=prompt))["error"] == "invalid_request"


def test_F06_unknown_prompt_value_is_invalid_request(rp, user):
    assert error_redirect(rp.authorize(prompt="sideways"))["error"] == "invalid_request"


def test_F06_prompt_none_with_a_session_too_old_for_max_age(rp, user):
    rp.login(EMAIL)
    with time_machine.travel(utcnow() + timedelta(seconds=120)):
        params = error_redirect(rp.authorize(prompt="none", max_age="60"))
    assert params["error"] == "login_required"


def test_F06_prompt_none_after_the_idle_timeout(rp, user):
    rp.login(EMAIL)
    with time_machine.travel(utcnow() + timedelta(minutes=61)):
        assert error_redirect(rp.authorize(prompt="none"))["error"] == "login_required"


def test_F06_prompt_none_when_mfa_is_asked_for_but_missing(rp, user):
    rp.login(EMAIL)
    params = error_redirect(rp.authorize(prompt="none", acr_values=ACR_MFA))
    assert params["error"] == "interaction_required"


def test_F06_prompt_none_when_the_service_requires_mfa(client, user):
    rp = RP.register(client, require_mfa=True)
    other = RP.register(client, client_id="other-portal")
    other.login(EMAIL)
    assert error_redirect(rp.authorize(prompt="none"))["error"] == "interaction_required"


def test_prompt_consent_is_satisfied_for_first_party_services(rp, user):
    rp.login(EMAIL)
    assert "code" in rp.callback(rp.authorize(prompt="consent")).params


# Services that are not first-party: prompt=consent and prompt=none without consent are in
# tests/oidc/test_consent.py (F11).
