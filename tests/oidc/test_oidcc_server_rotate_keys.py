"""``oidcc-server-rotate-keys`` (H04; OIDC Core §10.1.1) as it touches tokens: after a rotation
the JWKS has the new key and keeps the old one, new tokens use the new kid, and tokens signed
before the rotation still verify (ID tokens at the RP, access tokens at UserInfo)."""

from __future__ import annotations

from idp.oidc import keys
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import unverified


def kids(rp) -> set[str]:
    return {k["kid"] for k in rp.jwks().as_dict()["keys"]}


def test_oidcc_server_rotate_keys(rp, user):
    before = rp.tokens(rp.login(EMAIL))
    first_nonce = rp.last.nonce
    old_id_kid = unverified(before["id_token"])[0]["kid"]
    old_at_kid = unverified(before["access_token"])[0]["kid"]
    published_before = kids(rp)

    rs256 = keys.rotate("RS256", force=True)
    es256 = keys.rotate("ES256", force=True)

    published_after = kids(rp)
    assert rs256.activated in published_before  # it was published as "next" beforehand
    assert {old_id_kid, old_at_kid} <= published_after  # the old keys stay
    assert {rs256.next_kid, es256.next_kid} <= published_after  # and the next ones appear
    after = rp.tokens(rp.login(EMAIL, prompt="none"))
    assert unverified(after["id_token"])[0]["kid"] == rs256.activated
    assert unverified(after["access_token"])[0]["kid"] == es256.activated
    # Tokens signed before the rotation keep verifying until they expire.
    rp.validate_id_token(before["id_token"], nonce=first_nonce)
    assert rp.userinfo(before["access_token"]).status_code == 200
