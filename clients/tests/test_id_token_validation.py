"""ID Token validation, one RP conformance module per case (J03, J04, L02; OIDC Core §3.1.3.7).

Each hostile or broken token must be refused with a clear error page naming the check, and
nothing may be signed in. Test names follow security-requirements.md §2.2
(``oidcc-client-test-<name>``) and the L02 forged-token corpus.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from fake_op import CLIENT_ID, FakeOP, b64, hs256_with, unsigned
from rp_helpers import Journey, make_rp_app, refusal, signed_in

from secure_access_client.tokens import left_half_hash

Tamper = Callable[[dict[str, Any], dict[str, Any]], None]


def claim(**changes: Any) -> Tamper:
    def tamper(claims: dict[str, Any], header: dict[str, Any]) -> None:
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value

    return tamper


def refused(browser, op: FakeOP, expected: str, **authorize: Any) -> None:
    response = Journey(browser, op).start().callback(**authorize)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "Sign-in failed" in response.get_data(as_text=True)
    assert refusal(response) == expected
    assert not signed_in(browser)


CLAIM_CASES = {
    "nonce-invalid": (claim(nonce="not-the-nonce-we-sent"), "nonce-invalid"),
    "nonce-missing": (claim(nonce=None), "nonce-invalid"),
    "invalid-iss": (claim(iss="https://evil.example"), "invalid-iss"),
    "invalid-iss-trailing-slash": (None, "invalid-iss"),  # filled in below: issuer + "/"
    "invalid-aud": (claim(aud="another-service"), "invalid-aud"),
    "missing-aud": (claim(aud=None), "missing-aud"),
    "untrusted-extra-aud": (claim(aud=[CLIENT_ID, "another-service"]), "invalid-aud"),
    "invalid-azp": (claim(azp="another-service"), "invalid-azp"),
    "missing-iat": (claim(iat=None), "missing-iat"),
    "missing-exp": (claim(exp=None), "missing-exp"),
    "missing-sub": (claim(sub=None), "missing-sub"),
    "overlong-sub": (claim(sub="x" * 256), "missing-sub"),
    "invalid-athash": (
        claim(at_hash=left_half_hash("another access token", "RS256")),
        "invalid-athash",
    ),
    "missing-athash": (claim(at_hash=None), "missing-athash"),
    "invalid-chash": (claim(c_hash="bm90LXRoZS1jb2Rl"), "invalid-chash"),
}


@pytest.mark.parametrize("case", sorted(CLAIM_CASES))
def test_oidcc_client_test_claim_checks_refuse_the_token(case, browser, op):
    tamper, expected = CLAIM_CASES[case]
    if case == "invalid-iss-trailing-slash":
        tamper = claim(iss=op.issuer + "/")
    op.tamper = tamper

    refused(browser, op, expected)


def test_an_expired_id_token_is_refused(browser, op, clock):
    op.tamper = claim(exp=int(clock()) - 61, iat=int(clock()) - 300)

    refused(browser, op, "expired")


def test_an_id_token_within_the_clock_skew_is_accepted(browser, op, clock):
    op.tamper = claim(exp=int(clock()) - 30, iat=int(clock()) + 30)

    Journey(browser, op).sign_in()
    assert signed_in(browser)


@pytest.mark.parametrize(("iat_offset", "name"), [(3600, "future"), (-3600, "too old")])
def test_an_id_token_issued_in_the_future_or_long_ago_is_refused(
    iat_offset, name, browser, op, clock
):
    op.tamper = claim(iat=int(clock()) + iat_offset, exp=int(clock()) + 7200)

    refused(browser, op, "invalid-iat")


def test_oidcc_client_test_idtoken_sig_rs256_is_accepted(browser, op):
    Journey(browser, op).sign_in()

    assert signed_in(browser)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_oidcc_client_test_idtoken_sig_none_is_refused(alg, browser, op):
    op.encode = lambda claims, header: unsigned({**header, "alg": alg}, claims)

    refused(browser, op, "idtoken-sig-none")


def test_oidcc_client_test_invalid_sig_rs256_is_refused(browser, op):
    def broken_signature(claims, header):
        token = op.sign(claims, header)
        head, body, signature = token.split(".")
        return f"{head}.{body}.{signature[::-1]}"

    op.encode = broken_signature

    refused(browser, op, "invalid-sig")


def test_a_token_signed_by_another_key_under_the_providers_kid_is_refused(browser, op):
    op.encode = lambda claims, header: op.sign(claims, {**header, "kid": op.rsa.kid}, op.rsa_other)

    refused(browser, op, "invalid-sig")


def test_a_token_signed_by_a_key_the_provider_does_not_publish_is_refused(browser, op):
    op.encode = lambda claims, header: op.sign(claims, header, op.rsa_other)

    refused(browser, op, "unknown-kid")


def test_oidcc_client_test_invalid_sig_hs256_with_the_rsa_public_key_is_refused(browser, op):
    """CVE-2024-37568: HS256 'signed' with the provider's RSA public key as the secret."""
    public_pem = op.rsa.as_pem(private=False)
    op.encode = lambda claims, header: hs256_with(
        public_pem, {**header, "alg": "HS256", "kid": op.rsa.kid}, claims
    )

    refused(browser, op, "invalid-sig-hs256")


def test_oidcc_client_test_invalid_sig_es256_is_refused(op, tmp_path, clock):
    rp = make_rp_app(op, tmp_path, clock, ALGORITHMS="RS256 ES256")
    browser = rp.test_client()

    def broken_es256(claims, header):
        token = op.sign(claims, {**header, "alg": "ES256"})
        head, body, _signature = token.split(".")
        return f"{head}.{body}.{b64(bytes(64))}"

    op.encode = broken_es256

    refused(browser, op, "invalid-sig")


def test_es256_from_the_provider_is_accepted_when_allowed(op, tmp_path, clock):
    rp = make_rp_app(op, tmp_path, clock, ALGORITHMS="RS256 ES256")
    browser = rp.test_client()
    op.tamper = lambda claims, header: header.update(alg="ES256")

    Journey(browser, op).sign_in()
    assert signed_in(browser)


def test_an_algorithm_outside_the_pinned_allow_list_is_refused(browser, op):
    """A genuine ES256 signature from the provider's own key, but the service pinned RS256."""
    op.tamper = lambda claims, header: header.update(alg="ES256")

    refused(browser, op, "alg-not-allowed")


def test_a_kid_naming_a_key_of_another_type_is_refused(browser, op):
    op.encode = lambda claims, header: op.sign(claims, {**header, "kid": op.ec.kid})

    refused(browser, op, "key-alg-mismatch")


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_a_token_that_names_its_own_key_is_refused(member, browser, op):
    """CVE-2026-27962: never trust a key (or a key URL) carried in the token itself."""
    attacker = op.rsa_other
    values = {
        "jwk": attacker.as_dict(private=False),
        "jku": "https://evil.example/jwks.json",
        "x5u": "https://evil.example/cert.pem",
        "x5c": ["MIIB"],
    }
    op.encode = lambda claims, header: op.sign(claims, {**header, member: values[member]}, attacker)

    refused(browser, op, "embedded-key-header")


def test_an_unknown_critical_header_is_refused(browser, op):
    """CVE-2025-59420: ``crit`` names extensions we do not understand, so refuse."""
    op.encode = lambda claims, header: unsigned(
        {**header, "kid": op.rsa.kid, "crit": ["urn:example:x"], "urn:example:x": 1},
        claims,
        b"\x00" * 256,
    )

    refused(browser, op, "crit")


def test_an_oversized_token_is_refused_before_it_is_parsed(browser, op):
    """CVE-2025-61920: a 10 MB header is refused on its size alone."""
    op.encode = lambda claims, header: unsigned({**header, "pad": "A" * 10_000_000}, claims)

    refused(browser, op, "token-too-large")


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("a.b.c.d.e", "encrypted-token"),
        ("only.two", "malformed-token"),
        ("!!.e30.AA", "malformed-token"),
    ],
)
def test_tokens_that_are_not_signed_jwts_are_refused(token, expected, browser, op):
    op.encode = lambda claims, header: token

    refused(browser, op, expected)


def test_a_logout_token_is_never_taken_for_an_id_token(browser, op):
    op.tamper = lambda claims, header: header.update(typ="logout+jwt")

    refused(browser, op, "wrong-typ")


def test_oidcc_client_test_kid_absent_single_jwks_is_accepted(browser, op):
    op.published = [op.rsa]
    op.tamper = lambda claims, header: header.update(kid=None)

    Journey(browser, op).sign_in()
    assert signed_in(browser)


def test_oidcc_client_test_kid_absent_multiple_matching_keys_in_jwks_is_refused(browser, op):
    op.published = [op.rsa, op.rsa_other]
    op.tamper = lambda claims, header: header.update(kid=None)

    refused(browser, op, "kid-absent-multiple-matching-keys")


def test_no_id_token_in_the_token_response_is_refused(browser, op):
    op.token_answer = (200, {"access_token": "x", "token_type": "Bearer", "expires_in": 60})

    refused(browser, op, "missing-id-token")


def test_a_token_response_that_is_not_a_bearer_token_is_refused(browser, op):
    op.token_answer = (200, {"access_token": "x", "token_type": "mac", "id_token": "a.b.c"})

    refused(browser, op, "token-type")
