"""The Logout Token itself (Back-Channel Logout 1.0 §2.4; I04, L02)."""

from __future__ import annotations

import pytest

from idp.oidc.discovery import get_issuer
from idp.oidc.keys import UnsupportedAlgorithm
from idp.oidc.logout_tokens import (
    BACKCHANNEL_LOGOUT_EVENT,
    LOGOUT_TOKEN_LIFETIME_SECONDS,
    LOGOUT_TOKEN_TYPE,
    build_logout_token,
    logout_token_claims,
)
from tests.logout.conftest import decode_with_our_jwks


def test_the_claims_are_exactly_those_of_bcl_2_4() -> None:
    claims = logout_token_claims(
        issuer="https://sa.example", client_id="svc", sub="u1", sid="s1", now=1000
    )
    assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "events", "sub", "sid"}
    assert claims["aud"] == "svc"
    assert (claims["iat"], claims["exp"]) == (1000, 1000 + LOGOUT_TOKEN_LIFETIME_SECONDS)
    assert LOGOUT_TOKEN_LIFETIME_SECONDS <= 120  # I04: short
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert "nonce" not in claims


def test_every_token_has_its_own_jti() -> None:
    jtis = {
        logout_token_claims(issuer="https://sa.example", client_id="c", sub="u", sid="s")["jti"]
        for _ in range(50)
    }
    assert len(jtis) == 50


@pytest.mark.parametrize("missing", ["issuer", "client_id", "sub", "sid"])
def test_a_token_without_a_subject_or_session_is_refused(missing: str) -> None:
    values = {"issuer": "https://sa.example", "client_id": "c", "sub": "u", "sid": "s"}
    values[missing] = ""
    with pytest.raises(ValueError, match="logout token needs"):
        logout_token_claims(**values)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_signed_with_our_key_for_the_services_algorithm(client, alg: str) -> None:
    token = build_logout_token("svc", sub="u1", sid="s1", alg=alg)
    decoded = decode_with_our_jwks(client, token, [alg])
    assert decoded.header["typ"] == LOGOUT_TOKEN_TYPE == "logout+jwt"
    assert decoded.header["alg"] == alg
    assert decoded.header["kid"]
    assert decoded.claims["iss"] == get_issuer()
    assert (decoded.claims["sub"], decoded.claims["sid"]) == ("u1", "s1")


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_never_unsigned_or_symmetric(app, alg: str) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        build_logout_token("svc", sub="u1", sid="s1", alg=alg)
