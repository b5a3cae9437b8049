"""``oidcc-refresh-token`` and ``oidcc-refresh-token-rp-key-rotation`` (G05; RFC 6749 §6;
RFC 9700 §4.14.2; OIDC Core §12): refresh works, rotates, is bound to the client, reuse revokes
the family, and the right error codes come back."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from joserfc.jwk import ECKey
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent, RefreshToken, UserStatus
from idp.models.base import utcnow
from idp.oidc import tokens
from idp.services import events
from idp.services.clients import get_service
from idp.services.transaction import transaction
from tests.oidc.conftest import EMAIL, token_requests_at_once
from tests.oidc.rp import RP, unverified

OFFLINE = "openid profile offline_access"


def login_tokens(rp: RP, scope: str = OFFLINE) -> dict:
    return rp.tokens(rp.login(EMAIL, scope=scope))


def test_oidcc_refresh_token(rp, user):
    body = login_tokens(rp)
    first = rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)
    response = rp.refresh(body["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    refreshed = response.get_json()
    assert refreshed["refresh_token"] != body["refresh_token"]  # rotated
    assert refreshed["scope"] == OFFLINE
    # OIDC Core §12.2: same iss, sub, aud, sid and auth_time; a new iat; no nonce.
    claims = rp.validate_id_token(
        refreshed["id_token"], nonce=None, access_token=refreshed["access_token"]
    )
    for name in ("iss", "sub", "aud", "sid", "auth_time"):
        assert claims[name] == first[name]
    assert rp.userinfo(refreshed["access_token"]).get_json()["sub"] == first["sub"]


def test_G05_reuse_revokes_the_whole_family(rp, user):
    body = login_tokens(rp)
    rt2 = rp.refresh(body["refresh_token"]).get_json()["refresh_token"]
    reuse = rp.refresh(body["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.get_json()["error"] == "invalid_grant"
    assert rp.refresh(rt2).get_json()["error"] == "invalid_grant"  # RT2 died with the family
    events_seen = [e.event for e in db.session.scalars(select(AuditEvent))]
    assert "token.refresh_reuse_detected" in events_seen


@pytest.mark.parametrize("attempt", range(3))
def test_G05_concurrent_uses_of_one_refresh_token_at_most_one_wins(app, rp, user, attempt):
    """The claim and what it issues commit together; a second use racing the first still
    finds the token used (the row is held until the first commits) and revokes the family."""
    tokens_ = rp.redeem(rp.login(EMAIL, scope="openid offline_access").code).get_json()
    data = {"grant_type": "refresh_token", "refresh_token": tokens_["refresh_token"]}
    results = token_requests_at_once(app, data, rp.client_auth({}))
    winners = [body for status, body in results if status == 200]
    assert len(winners) <= 1
    assert all(body["error"] == "invalid_grant" for status, body in results if status != 200)
    for body in winners:  # the reuse revoked the family, the winner's new token included
        assert rp.refresh(body["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_G05_bound_to_the_client(client, rp, user):
    other = RP.register(client, client_id="other-portal")
    body = login_tokens(rp)
    assert other.refresh(body["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert rp.refresh(body["refresh_token"]).status_code == 200  # still the owner's


def test_G05_error_codes(rp, user):
    body = login_tokens(rp)
    assert rp.refresh("not-a-token").get_json()["error"] == "invalid_grant"
    missing = rp.post("/token", {"grant_type": "refresh_token"})
    assert missing.get_json()["error"] == "invalid_request"
    wrong_secret = rp.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Authorization": "Basic " + "c2Nob29sLXBvcnRhbDp3cm9uZw=="},
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.get_json()["error"] == "invalid_client"
    assert wrong_secret.headers["WWW-Authenticate"].startswith("Basic ")
    widened = rp.refresh(body["refresh_token"], scope="openid profile email")
    assert widened.get_json()["error"] == "invalid_scope"


def test_narrower_scope_on_refresh_keeps_the_refresh_tokens_scope(rp, user):
    body = login_tokens(rp)
    narrow = rp.refresh(body["refresh_token"], scope="openid").get_json()
    assert narrow["scope"] == "openid"
    assert unverified(narrow["access_token"])[1]["scope"] == "openid"
    again = rp.refresh(narrow["refresh_token"]).get_json()
    assert again["scope"] == OFFLINE  # RFC 6749 §6: the refresh token's scope is unchanged


def test_G05_absolute_family_lifetime(client, user):
    rp = RP.register(client, refresh_token_lifetime=3600)
    body = login_tokens(rp)
    with time_machine.travel(utcnow() + timedelta(minutes=50)):
        rt = rp.refresh(body["refresh_token"]).get_json()["refresh_token"]
    with time_machine.travel(utcnow() + timedelta(minutes=61)):
        assert rp.refresh(rt).get_json()["error"] == "invalid_grant"


def test_session_bound_tokens_never_outlive_the_sso_session(app, client, user):
    """Without offline_access the family ends with the session's absolute lifetime (E04)."""
    rp = RP.register(client)
    body = login_tokens(rp, scope="openid profile")
    row = db.session.scalars(select(RefreshToken)).one()
    assert row.offline_access is False
    absolute = app.extensions["settings"].session_absolute_seconds
    assert row.family_expires_at.timestamp() <= row.auth_time + absolute
    assert rp.refresh(body["refresh_token"]).status_code == 200


def test_I04_revoke_for_session_keeps_offline_tokens(client, user):
    rp = RP.register(client)
    session_bound = login_tokens(rp, scope="openid profile")
    offline = login_tokens(rp, scope=OFFLINE)
    sid = unverified(session_bound["id_token"])[1]["sid"]
    with transaction():
        assert tokens.revoke_for_session(sid) == 1
    assert rp.refresh(session_bound["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert rp.refresh(offline["refresh_token"]).status_code == 200


@pytest.mark.parametrize("reason", ["password_changed", "user_ended_all"])
def test_C06_ending_every_session_revokes_every_refresh_token(rp, user, reason):
    offline = login_tokens(rp)
    with transaction():
        events.sessions_ended.send(user.sub, sessions=[], reason=reason)
    assert rp.refresh(offline["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_signing_out_of_one_device_keeps_offline_tokens(rp, user):
    offline = login_tokens(rp)
    with transaction():
        events.sessions_ended.send(user.sub, sessions=[], reason="sign_out")
    assert rp.refresh(offline["refresh_token"]).status_code == 200


def test_revoke_all_for_user(rp, user):
    body = login_tokens(rp)
    with transaction():
        assert tokens.revoke_all_for_user(user.id) == 1
    assert rp.refresh(body["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_E06_a_deactivated_user_cannot_refresh(rp, user):
    body = login_tokens(rp)
    with transaction():
        user.status = UserStatus.DEACTIVATED
    assert rp.refresh(body["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_refresh_tokens_are_stored_only_as_hashes(rp, user):
    body = login_tokens(rp)
    row = db.session.scalars(select(RefreshToken)).one()
    assert body["refresh_token"] not in (row.token_hash, str(row.claims))
    assert len(row.token_hash) == 64


def test_no_refresh_token_without_the_refresh_grant(client, user):
    rp = RP.register(client, grant_types=("authorization_code",), scopes=("openid", "profile"))
    assert "refresh_token" not in rp.tokens(rp.login(EMAIL, scope="openid profile"))


def test_oidcc_refresh_token_rp_key_rotation(client, user):
    """The RP rotates its private_key_jwt key: the new key works, the removed one does not."""
    rp = RP.register(client, auth_method="private_key_jwt", scopes=("openid", "offline_access"))
    body = login_tokens(rp, scope="openid offline_access")
    old_key = rp.private_key
    new_key = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, private=True)
    new_key.ensure_kid()
    with transaction():
        service = get_service(rp.client_id)
        service.jwks = {"keys": [new_key.as_dict(private=False)]}
    rp.private_key = new_key
    refreshed = rp.refresh(body["refresh_token"])
    assert refreshed.status_code == 200
    rp.private_key = old_key
    stale = rp.refresh(refreshed.get_json()["refresh_token"])
    assert stale.get_json()["error"] == "invalid_client"
