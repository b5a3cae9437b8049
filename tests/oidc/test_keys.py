"""Signing keys: H01, H04 and L02, and the conformance module ``oidcc-server-rotate-keys``.

Time is passed explicitly (``now=``) to rotation and pruning: nothing here waits.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey, RSAKey
from pydantic import SecretStr
from sqlalchemy import select, text

from idp.extensions import db
from idp.models import KeyState, SigningKey
from idp.models.base import utcnow
from idp.oidc import keys
from idp.oidc.keys import KeyRing, get_keyring
from idp.services import crypto

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
ALLOWED_MEMBERS = {"kty", "kid", "alg", "use", "n", "e", "crv", "x", "y"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rows(alg: str | None = None) -> list[SigningKey]:
    db.session.expire_all()
    query = select(SigningKey).order_by(SigningKey.id)
    if alg:
        query = query.where(SigningKey.alg == alg)
    return list(db.session.scalars(query))


def kid_in_state(alg: str, state: KeyState) -> str:
    (row,) = [r for r in rows(alg) if r.state is state]
    return row.kid


def jwks_kids(jwks: dict[str, Any]) -> list[str]:
    return [k["kid"] for k in jwks["keys"]]


# -- generation and the JWKS --------------------------------------------------------------


def test_first_start_creates_an_active_and_a_next_key_per_algorithm(app: Flask) -> None:
    created = keys.ensure_keys()

    assert len(created) == 2 * len(keys.SIGNING_ALGS)
    for alg in keys.SIGNING_ALGS:
        assert sorted(r.state.value for r in rows(alg)) == ["active", "next"]
    assert "RS256" in keys.SIGNING_ALGS  # OIDC requires it (H01)
    assert keys.ensure_keys() == []  # idempotent
    assert len(rows()) == 2 * len(keys.SIGNING_ALGS)


def test_every_kid_is_unique_and_is_the_rfc7638_thumbprint(app: Flask) -> None:
    keys.ensure_keys()
    keys.rotate("RS256", force=True)
    published = get_keyring().jwks()["keys"]

    kids = jwks_kids({"keys": published})
    assert len(kids) == len(set(kids)) == 7
    for data in published:
        assert KeySet.import_key_set({"keys": [data]}).keys[0].thumbprint() == data["kid"]


def test_jwks_has_public_members_only_for_every_state(app: Flask) -> None:
    keys.ensure_keys()
    for alg in keys.SIGNING_ALGS:
        keys.rotate(alg, force=True)  # so there are next, active and retired keys
    published = get_keyring().jwks()["keys"]

    assert {r.state for r in rows()} == set(KeyState)
    for data in published:
        assert not PRIVATE_MEMBERS & set(data), data
        assert set(data) <= ALLOWED_MEMBERS
        assert data["use"] == "sig"
        assert data["alg"] in keys.SIGNING_ALGS
        assert data["kid"]


def test_rsa_keys_are_2048_bit_and_curves_are_p256_and_ed25519(app: Flask) -> None:
    keys.ensure_keys()
    by_alg = {k["alg"]: k for k in get_keyring().jwks()["keys"]}

    rsa = KeySet.import_key_set({"keys": [by_alg["RS256"]]}).keys[0]
    assert isinstance(rsa, RSAKey)
    assert rsa.raw_value.key_size == 2048
    assert by_alg["ES256"]["crv"] == "P-256"
    assert by_alg["EdDSA"]["crv"] == "Ed25519"


@pytest.mark.parametrize("alg", ["HS256", "none", "RS512", "PS256", "Ed25519"])
def test_other_algorithms_are_refused(app: Flask, alg: str) -> None:
    with pytest.raises(keys.UnsupportedAlgorithm):
        keys.generate_key(alg, KeyState.ACTIVE)
    with pytest.raises(keys.UnsupportedAlgorithm):
        get_keyring().signing_key(alg)
    with pytest.raises(keys.UnsupportedAlgorithm):
        keys.rotate(alg)


# -- signing and verifying ----------------------------------------------------------------


@pytest.mark.parametrize("alg", keys.SIGNING_ALGS)
def test_each_algorithm_signs_and_verifies_with_joserfc(app: Flask, alg: str) -> None:
    keys.ensure_keys()
    ring = get_keyring()
    key = ring.signing_key(alg)

    assert key.kid == kid_in_state(alg, KeyState.ACTIVE)
    token = ring.sign({"sub": "abc"}, alg=alg)
    header = json.loads(unb64(token.split(".")[0]))
    assert header == {"alg": alg, "kid": key.kid, "typ": "JWT"}  # H04: every header has kid

    # A relying service verifies with the published JWKS and its own pinned algorithm.
    public = KeySet.import_key_set(ring.jwks())
    decoded = jwt.decode(token, public, algorithms=[alg], registry=keys.jws_registry([alg]))
    assert decoded.claims == {"sub": "abc"}
    assert ring.decode_own_token(token).claims == {"sub": "abc"}
    # The allow-list is enforced: the same token is refused when its algorithm is not allowed.
    other = next(a for a in keys.SIGNING_ALGS if a != alg)
    with pytest.raises(JoseError):
        ring.decode_own_token(token, algorithms=[other])


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


def test_forged_tokens_are_refused(app: Flask) -> None:
    """L02: alg none, HS256 keyed with our public key, an attacker jwk, a missing kid."""
    keys.ensure_keys()
    ring = get_keyring()
    rsa_kid = ring.signing_key("RS256").kid
    claims = {"sub": "attacker"}

    unsigned = forge({"alg": "none", "kid": rsa_kid}, claims)
    public_n = next(k for k in ring.jwks()["keys"] if k["kid"] == rsa_kid)
    hmac_key = OctKey.import_key(json.dumps(public_n).encode())
    confused = jwt.encode({"alg": "HS256", "kid": rsa_kid}, claims, hmac_key, algorithms=["HS256"])
    attacker = keys._new_jwk("RS256")
    embedded = jwt.encode(
        {"alg": "RS256", "kid": rsa_kid, "jwk": attacker.as_dict(private=False)},
        claims,
        attacker,
        algorithms=["RS256"],
    )
    no_kid = jwt.encode({"alg": "RS256"}, claims, ring.signing_key("RS256"), algorithms=["RS256"])

    for token in (unsigned, confused, embedded, no_kid):
        with pytest.raises((JoseError, ValueError)):
            ring.decode_own_token(token)


# -- rotation -----------------------------------------------------------------------------


def test_rotation_publishes_the_next_key_before_it_signs(app: Flask) -> None:
    """H04 and oidcc-server-rotate-keys: the new key is in the JWKS before it signs."""
    start = utcnow()
    keys.ensure_keys(now=start)
    ring = get_keyring()
    first = ring.signing_key("RS256").kid
    waiting = kid_in_state("RS256", KeyState.NEXT)
    assert waiting in jwks_kids(ring.jwks())

    # Published for less than key_publish_before_use_seconds: not promoted.
    early = keys.rotate("RS256", now=start + timedelta(minutes=10))
    assert early.activated is None
    assert early.next_kid == waiting
    assert early.ready_at == start + timedelta(seconds=3600)
    assert ring.signing_key("RS256").kid == first

    later = keys.rotate("RS256", now=start + timedelta(seconds=3600))
    assert later.activated == waiting
    assert later.retired == (first,)
    assert ring.signing_key("RS256").kid == waiting
    published = jwks_kids(ring.jwks(now=start + timedelta(seconds=3600)))
    assert {first, waiting, later.next_kid} <= set(published)
    # The other algorithms are untouched.
    assert len([r for r in rows("ES256") if r.state is KeyState.ACTIVE]) == 1


def test_rotate_creates_a_missing_next_key_and_force_skips_the_wait(app: Flask) -> None:
    active = keys.generate_key("ES256", KeyState.ACTIVE)
    db.session.commit()
    keys.keys_changed()

    waiting = keys.rotate("ES256")
    assert waiting.activated is None  # the next key was only just published
    assert kid_in_state("ES256", KeyState.NEXT) == waiting.next_kid

    forced = keys.rotate("ES256", force=True)
    assert forced.activated == waiting.next_kid
    assert forced.retired == (active.kid,)
    assert get_keyring().signing_key("ES256").kid == waiting.next_kid
    events = db.session.execute(
        text("SELECT event FROM audit_events WHERE target_id = :kid"), {"kid": waiting.next_kid}
    ).scalars()
    assert set(events) == {"signing_key.created", "signing_key.rotated"}


@pytest.mark.parametrize("alg", keys.SIGNING_ALGS)
def test_token_signed_before_rotation_still_verifies_after_it(
    app: Flask, client: FlaskClient, alg: str
) -> None:
    keys.ensure_keys()
    ring = get_keyring()
    before = ring.sign({"sub": "u1", "n": 1}, alg=alg)

    keys.rotate(alg, force=True)
    after = ring.sign({"sub": "u1", "n": 2}, alg=alg)
    assert jwt.decode(after, KeySet.import_key_set(ring.jwks()), registry=keys.jws_registry())

    jwks = client.get("/.well-known/jwks.json").get_json()
    published = KeySet.import_key_set(jwks)
    registry = keys.jws_registry([alg])
    assert jwt.decode(before, published, algorithms=[alg], registry=registry).claims["n"] == 1
    assert jwt.decode(after, published, algorithms=[alg], registry=registry).claims["n"] == 2


def test_retired_keys_leave_the_jwks_only_after_unpublish_after(app: Flask) -> None:
    keys.ensure_keys()
    ring = get_keyring()
    old = ring.signing_key("RS256").kid
    rotated_at = utcnow()
    result = keys.rotate("RS256", now=rotated_at, force=True)

    # The longest token lifetime (never under the floor) plus leeway.
    assert result.unpublish_after == rotated_at + keys.TOKEN_LIFETIME_FLOOR + keys.RETIREMENT_LEEWAY
    gone_at = result.unpublish_after
    assert gone_at is not None
    just_before = gone_at - timedelta(seconds=1)
    assert old in jwks_kids(ring.jwks(now=just_before))
    assert old in [k.kid for k in ring.verification_keys(now=just_before).key_set]
    assert old not in jwks_kids(ring.jwks(now=gone_at))

    assert keys.prune(just_before) == []
    assert old in [r.kid for r in rows()]
    assert keys.prune(gone_at) == [old]
    assert old not in [r.kid for r in rows()]
    assert old not in jwks_kids(ring.jwks())


# -- storage ------------------------------------------------------------------------------


def test_private_key_is_stored_encrypted_and_a_dump_without_the_kek_is_useless(
    app: Flask,
) -> None:
    row = keys.generate_key("RS256", KeyState.ACTIVE)
    db.session.commit()
    private = json.loads(crypto.decrypt(row.private_key_ciphertext, context="signing-key"))
    assert private["kid"] == row.kid
    assert "d" in private

    dump = db.session.execute(
        text("SELECT * FROM signing_keys WHERE kid = :kid"), {"kid": row.kid}
    ).one()
    as_text = " ".join(str(value) for value in dump)
    for member in ("d", "p", "q", "dp", "dq", "qi"):
        assert private[member] not in as_text
    assert "PRIVATE KEY" not in as_text
    ciphertext = dump._mapping["private_key_ciphertext"]
    assert ciphertext.startswith("v1.")
    with pytest.raises(ValueError, match="Expecting value"):
        json.loads(ciphertext)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(
            ciphertext,
            context="signing-key",
            keys=[SecretStr("a-guess-at-the-key-encryption-key-which-is-wrong")],
        )
    with pytest.raises(crypto.DecryptionError):  # bound to its purpose
        crypto.decrypt(ciphertext, context="totp")


def test_a_private_key_moved_to_another_row_is_refused(app: Flask) -> None:
    a = keys.generate_key("ES256", KeyState.RETIRED)
    b = keys.generate_key("ES256", KeyState.ACTIVE)
    b.private_key_ciphertext = a.private_key_ciphertext
    db.session.commit()
    keys.keys_changed()

    with pytest.raises(keys.KeyIntegrityError):
        get_keyring().signing_key("ES256")


# -- the process cache --------------------------------------------------------------------


def test_key_ring_caches_and_sees_rotation_from_another_process(app: Flask) -> None:
    keys.ensure_keys()
    ring = KeyRing()
    other_process = KeyRing()
    first = ring.signing_key("RS256")
    loads = ring.reloads

    assert ring.signing_key("RS256") is first  # imported once, not per token
    ring.jwks()
    ring.verification_keys()
    assert ring.reloads == loads  # no change, no re-read

    assert other_process.signing_key("RS256").kid == first.kid
    keys.rotate("RS256", force=True)  # in "another process": only the store tells us

    second = ring.signing_key("RS256")
    assert second.kid != first.kid
    assert second.kid == kid_in_state("RS256", KeyState.ACTIVE)
    assert ring.reloads == loads + 1
    assert other_process.signing_key("RS256").kid == second.kid


def test_key_ring_notices_a_store_without_a_version(app: Flask) -> None:
    """After a Redis restart the version is gone: the ring re-reads the table, not trusts it."""
    keys.ensure_keys()
    ring = KeyRing()
    first = ring.signing_key("ES256").kid
    from idp.store import get_store

    get_store().delete(keys.VERSION_KEY)
    keys.rotate("ES256", force=True)
    get_store().delete(keys.VERSION_KEY)  # as if the bump was lost

    assert ring.signing_key("ES256").kid != first


def test_concurrent_first_starts_leave_one_consistent_key_set(app: Flask) -> None:
    """Two processes starting at once: every key published, every process signs alike."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def start() -> None:
        with app.app_context():
            try:
                barrier.wait()
                keys.ensure_keys()
            except BaseException as error:  # reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    if db.engine.dialect.name == "postgresql":  # the advisory lock makes it exact
        assert len(rows()) == 2 * len(keys.SIGNING_ALGS)
    signer = {alg: KeyRing().signing_key(alg).kid for alg in keys.SIGNING_ALGS}
    assert signer == {alg: KeyRing().signing_key(alg).kid for alg in keys.SIGNING_ALGS}
    published = set(jwks_kids(get_keyring().jwks()))
    assert {r.kid for r in rows()} == published
