"""``oidcc-prompt-login`` (F07): a second authorization with ``prompt=login`` reauthenticates,
and the new ID token's ``auth_time`` is later. ``select_account`` behaves the same."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from idp.models.base import utcnow
from tests.factories import page_text
from tests.oidc.conftest import EMAIL


@pytest.mark.parametrize("prompt", ["login", "select_account", "login consent"])
def test_oidcc_prompt_login(rp, user, prompt):
    first = rp.validate_id_token(rp.tokens(rp.login(EMAIL))["id_token"], nonce=rp.last.nonce)
    with time_machine.travel(utcnow() + timedelta(seconds=2)):
        page = rp.follow(rp.authorize(prompt=prompt))
        assert "Sign in" in page_text(page)  # a live session is not enough
        body = rp.tokens(rp.login(EMAIL, prompt=prompt))
        second = rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)
    assert second["sub"] == first["sub"]
    assert second["auth_time"] > first["auth_time"]


def test_prompt_login_works_for_a_post_request_too(rp, user):
    rp.login(EMAIL)
    with time_machine.travel(utcnow() + timedelta(seconds=2)):
        response = rp.authorize(method="POST", prompt="login")
        assert response.status_code == 303  # RFC 9700 §4.12: never 302/307 after a POST
        callback = rp.login(EMAIL, method="POST", prompt="login")
    assert callback.response.status_code == 302  # the resume is a GET


def test_V15_prompt_login_does_not_end_the_live_session(rp, user):
    """Forced logout: visiting a prompt=login link does not sign anyone out by itself."""
    rp.login(EMAIL)
    rp.follow(rp.authorize(prompt="login"))  # shown the sign-in page, then walks away
    assert "code" in rp.callback(rp.authorize(prompt="none")).params
