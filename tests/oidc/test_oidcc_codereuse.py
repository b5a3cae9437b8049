"""``oidcc-codereuse`` and ``oidcc-codereuse-30seconds`` (G01, G02, G03; RFC 6749 §4.1.2):
a code works once; a second redemption fails with invalid_grant and revokes what it issued."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
import time_machine
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent, RefreshToken
from idp.models.base import utcnow
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP


def assert_revoked(rp: RP, body: dict) -> None:
    response = rp.userinfo(body["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    if "refresh_token" in body:
        assert rp.refresh(body["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_oidcc_codereuse(rp, user):
    callback = rp.login(EMAIL)
    first = rp.redeem(callback.code)
    assert first.status_code == 200
    second = rp.redeem(callback.code)
    assert second.status_code == 400
    assert second.get_json()["error"] == "invalid_grant"
    assert_revoked(rp, first.get_json())
    events = [e.event for e in db.session.scalars(select(AuditEvent))]
    assert "oidc.code_reuse_detected" in events


def test_oidcc_codereuse_30seconds(rp, user):
    callback = rp.login(EMAIL, scope="openid offline_access")
    body = rp.tokens(callback)
    assert rp.userinfo(body["access_token"]).status_code == 200
    with time_machine.travel(utcnow() + timedelta(seconds=30)):
        again = rp.redeem(callback.code)
        assert again.get_json()["error"] == "invalid_grant"
        assert_revoked(rp, body)
    assert all(row.revoked_at is not None for row in db.session.scalars(select(RefreshToken)))


def test_G01_a_code_expires_after_60_seconds(rp, user):
    callback = rp.login(EMAIL)
    with time_machine.travel(utcnow() + timedelta(seconds=61)):
        response = rp.redeem(callback.code)
    assert response.get_json()["error"] == "invalid_grant"


def test_G03_a_code_is_bound_to_its_client(client, rp, user):
    other = RP.register(client, client_id="other-portal")
    callback = rp.login(EMAIL)
    response = other.redeem(callback.code, rp.last.verifier)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_an_unknown_code_is_invalid_grant(rp, user):
    rp.login(EMAIL)
    for code in ("nope", "x" * 43, "y" * 5000):
        assert rp.redeem(code).get_json()["error"] == "invalid_grant"


def test_G01_codes_are_stored_only_as_hashes(rp, user):
    from idp.store import get_store

    callback = rp.login(EMAIL)
    keys = [k.decode() for k in get_store().keys("oidc:code:*")]
    assert keys
    assert all(callback.code not in key for key in keys)
    assert all(callback.code.encode() not in (get_store().get(k) or b"") for k in keys)


@pytest.mark.parametrize("name", ["code", "redirect_uri", "code_verifier", "grant_type"])
def test_a_duplicated_token_parameter_is_invalid_request(rp, user, name):
    """RFC 6749 §3.2: parameters MUST NOT be included more than once; the code is not spent."""
    callback = rp.login(EMAIL)
    data = [
        ("grant_type", "authorization_code"),
        ("code", callback.code),
        ("redirect_uri", rp.redirect_uri),
        ("code_verifier", rp.last.verifier),
    ]
    data.append(next(pair for pair in data if pair[0] == name))
    response = rp.client.post(
        "/token",
        data=urlencode(data),
        headers=rp.client_auth({}),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
    assert rp.redeem(callback.code).status_code == 200
