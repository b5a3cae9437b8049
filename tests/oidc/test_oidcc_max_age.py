"""``oidcc-max-age-1`` and ``oidcc-max-age-10000`` (F08)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from idp.models.base import utcnow
from tests.factories import page_text
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import error_redirect


def test_oidcc_max_age_1(rp, user):
    first = rp.validate_id_token(rp.tokens(rp.login(EMAIL))["id_token"], nonce=rp.last.nonce)
    with time_machine.travel(utcnow() + timedelta(seconds=2)):
        assert "Sign in" in page_text(rp.follow(rp.authorize(max_age="1")))
        body = rp.tokens(rp.login(EMAIL, max_age="1"))
        second = rp.validate_id_token(body["id_token"], nonce=rp.last.nonce, max_age=1)
    assert second["auth_time"] > first["auth_time"]  # CheckIdTokenAuthTimeClaimPresentDueToMaxAge


def test_oidcc_max_age_10000(rp, user):
    first = rp.validate_id_token(rp.tokens(rp.login(EMAIL))["id_token"], nonce=rp.last.nonce)
    with time_machine.travel(utcnow() + timedelta(seconds=2)):
        callback = rp.callback(rp.authorize(max_age="10000"))  # no sign-in page
        second = rp.validate_id_token(
            rp.tokens(callback)["id_token"], nonce=rp.last.nonce, max_age=10000
        )
    assert second["auth_time"] == first["auth_time"]


def test_F08_max_age_0_is_prompt_login(rp, user):
    rp.login(EMAIL)
    assert "Sign in" in page_text(rp.follow(rp.authorize(max_age="0")))
    assert "code" in rp.login(EMAIL, max_age="0").params


@pytest.mark.parametrize("value", ["-1", "1.5", "soon", "", "9" * 12])
def test_F08_max_age_must_be_whole_seconds(rp, user, value):
    assert error_redirect(rp.authorize(max_age=value))["error"] == "invalid_request"
