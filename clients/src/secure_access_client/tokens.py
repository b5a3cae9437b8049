"""Checking the JWTs Secure Access sends: ID Tokens, Logout Tokens and signed UserInfo.

Every token goes through :func:`verify_jwt` before any claim is read (L02): the header is
inspected by this module first, and joserfc only ever gets **one explicit key** (from the
provider's JWKS, chosen by ``kid``) and **one explicit algorithm** (from the allow-list). So:

- ``alg: none`` and HS* (including HS256 "signed" with the RSA public key) are refused before a
  key is looked at (J03; CVE-2024-37568; RP conformance ``-idtoken-sig-none``,
  ``-invalid-sig-hs256``);
- keys carried in the token itself (``jwk``, ``jku``, ``x5u``, ``x5c``) are refused, never
  fetched or trusted (L02; CVE-2026-27962);
- any ``crit`` header is refused: this library understands no JWS extensions (RFC 7515 §4.1.11;
  CVE-2025-59420);
- a token over :data:`MAX_JWT_BYTES` is refused before it is decoded (CVE-2025-61920);
- a token without ``kid`` is accepted only when exactly one key in the JWKS fits its algorithm
  (RP conformance ``OIDCCClientTestKidAbsentSingleJwks`` /
  ``...KidAbsentMultipleMatchingKeysInJwks``).

Then :func:`validate_id_token` applies OpenID Connect Core 1.0 §3.1.3.7 step by step (J03),
with ``at_hash`` (§3.1.3.8, J04), and :func:`validate_logout_token` applies Back-Channel
Logout 1.0 §2.6 (J06). Check names follow the RP conformance modules (security-requirements.md
§2.2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from joserfc import jws
from joserfc.errors import (
    BadSignatureError,
    ExceededSizeError,
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

from secure_access_client.errors import InvalidLogoutToken, InvalidToken, SecureAccessError
from secure_access_client.settings import ACR_MFA

#: Longest JWT accepted, in bytes (L02 Also: 8-16 KB caps before any JOSE parsing).
MAX_JWT_BYTES = 16 * 1024
#: Header members that would let the token choose its own key (L02).
EMBEDDED_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")
#: The event member that makes a JWT a Logout Token (Back-Channel Logout 1.0 §2.4).
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 (a media type, not a secret)
MAX_SUB_LENGTH = 255

#: Which key type (and curve) each algorithm needs, and the hash its at_hash uses.
_ALG_KEYS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
}
_ALG_HASH = {
    "RS256": "sha256",
    "PS256": "sha256",
    "ES256": "sha256",
    "RS384": "sha384",
    "ES384": "sha384",
    "RS512": "sha512",
    "EdDSA": "sha512",  # OIDC Core errata: Ed25519 hashes with SHA-512
}


class KeySource(Protocol):
    """Where verification keys come from: the provider's JWKS (see :mod:`.provider`)."""

    def key_for(self, kid: str | None, alg: str) -> Key:
        """The one key that may verify a token with this ``kid`` and ``alg``, or raise."""
        ...


@dataclass(frozen=True)
class VerifiedJWT:
    header: dict[str, Any]
    claims: dict[str, Any]


class _AllowList(JWSRegistry):
    """A joserfc registry that permits exactly the allow-list and adds no warnings of its own."""

    def get_alg(self, name: str) -> Any:
        if name not in self.algorithms or not self.allowed or name not in self.allowed:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


def key_fits(key: Key, alg: str, jwk: Mapping[str, Any]) -> bool:
    """Whether ``key`` (published as ``jwk``) may verify ``alg``: type, curve, use and alg."""
    wanted = _ALG_KEYS.get(alg)
    if wanted is None:
        return False
    kty, crv = wanted
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    if jwk.get("use") not in (None, "sig"):
        return False
    return jwk.get("alg") in (None, alg)


def _b64decode(segment: str) -> bytes:
    if not segment or any(c not in _B64URL for c in segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _typ_is(header: Mapping[str, Any], wanted: str) -> bool:
    typ = header.get("typ")
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    # RFC 7515 §4.1.9: "application/" may be left out, and media types are case-insensitive.
    return typ in (wanted, "application/" + wanted)


@dataclass(frozen=True)
class _Checks:
    """The check names to report for one kind of token."""

    error: type[SecureAccessError]
    alg_none: str
    alg_hmac: str
    alg_other: str
    bad_signature: str

    def fail(self, message: str, check: str) -> SecureAccessError:
        return self.error(message, check=check)


ID_TOKEN_CHECKS = _Checks(
    InvalidToken, "idtoken-sig-none", "invalid-sig-hs256", "alg-not-allowed", "invalid-sig"
)
LOGOUT_TOKEN_CHECKS = _Checks(
    InvalidLogoutToken,
    "rp-backchannel-rpinitlogout-alg-none",
    "rp-backchannel-rpinitlogout-wrong-alg",
    "rp-backchannel-rpinitlogout-wrong-alg",
    "rp-backchannel-rpinitlogout-invalid-sig",
)


def verify_jwt(
    token: Any,
    keys: KeySource,
    algorithms: Sequence[str],
    checks: _Checks = ID_TOKEN_CHECKS,
) -> VerifiedJWT:
    """Check a compact JWS's header and signature; return its header and claims (L02).

    Claims are not validated here; see :func:`validate_id_token` and
    :func:`validate_logout_token`.
    """
    if not isinstance(token, str) or not token:
        raise checks.fail("No token was received", "missing-token")
    if len(token) > MAX_JWT_BYTES:
        raise checks.fail("The token is too large to be genuine", "token-too-large")
    parts = token.split(".")
    if len(parts) == 5:
        raise checks.fail("Encrypted tokens are not accepted", "encrypted-token")
    if len(parts) != 3:
        raise checks.fail("The token is not a signed JWT", "malformed-token")
    try:
        header = json.loads(_b64decode(parts[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise checks.fail("The token header cannot be read", "malformed-token") from None
    if not isinstance(header, dict):
        raise checks.fail("The token header cannot be read", "malformed-token")

    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise checks.fail("The token is not signed (alg none)", checks.alg_none)
    if alg.upper().startswith("HS"):
        raise checks.fail(
            "The token is signed with a shared-secret algorithm, which is never accepted",
            checks.alg_hmac,
        )
    if alg not in algorithms:
        raise checks.fail(f"The token's algorithm {alg} is not allowed", checks.alg_other)
    embedded = [name for name in EMBEDDED_KEY_HEADERS if name in header]
    if embedded:
        raise checks.fail(
            "The token names its own key (" + ", ".join(embedded) + "), which is never trusted",
            "embedded-key-header",
        )
    if "crit" in header:
        raise checks.fail("The token has critical header extensions we do not support", "crit")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise checks.fail("The token's kid is not a string", "malformed-token")

    try:
        key = keys.key_for(kid, alg)
    except InvalidToken as error:
        if isinstance(error, checks.error):
            raise
        raise checks.fail(error.message, error.check) from None
    try:
        signed = jws.deserialize_compact(
            token,
            key,
            algorithms=[alg],
            registry=_AllowList(algorithms=[alg], strict_check_header=False),
        )
    except BadSignatureError:
        raise checks.fail("The token's signature is not valid", checks.bad_signature) from None
    except ExceededSizeError:
        raise checks.fail("The token is too large to be genuine", "token-too-large") from None
    except JoseError as error:
        raise checks.fail(
            f"The token cannot be verified ({type(error).__name__})", "malformed-token"
        ) from None
    try:
        claims = json.loads(signed.payload or b"")
    except (ValueError, UnicodeDecodeError):
        raise checks.fail("The token's claims cannot be read", "malformed-token") from None
    if not isinstance(claims, dict):
        raise checks.fail("The token's claims cannot be read", "malformed-token")
    return VerifiedJWT(header, claims)


def left_half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash``: base64url of the left half of the alg's hash (OIDC §3.1.3.6)."""
    digest = hashlib.new(_ALG_HASH[alg], value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check_issuer_and_audience(
    claims: Mapping[str, Any], issuer: str, client_id: str, fail: type[SecureAccessError]
) -> None:
    iss = claims.get("iss")
    if not isinstance(iss, str) or not hmac.compare_digest(iss.encode(), issuer.encode()):
        raise fail("The token was not issued by the configured provider", check="invalid-iss")
    aud = claims.get("aud")
    if aud is None:
        raise fail("The token names no audience", check="missing-aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise fail("The token's audience cannot be read", check="invalid-aud")
    if client_id not in audiences:
        raise fail("The token was issued to another service", check="invalid-aud")
    if len(audiences) > 1:
        # OIDC §3.1.3.7 step 3: an extra audience we do not trust is a reason to refuse.
        raise fail("The token is also meant for other services", check="invalid-aud")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise fail("The token was obtained by another service (azp)", check="invalid-azp")


def _check_times(
    claims: Mapping[str, Any],
    now: float,
    skew: int,
    max_age: int,
    fail: type[SecureAccessError],
) -> None:
    exp = _number(claims, "exp")
    if exp is None:
        raise fail("The token has no expiry time", check="missing-exp")
    if now > exp + skew:
        raise fail("The token has expired", check="expired")
    iat = _number(claims, "iat")
    if iat is None:
        raise fail("The token has no issue time", check="missing-iat")
    if iat > now + skew:
        raise fail("The token was issued in the future", check="invalid-iat")
    if iat < now - max_age - skew:
        raise fail("The token was issued too long ago", check="invalid-iat")


@dataclass(frozen=True)
class IdTokenExpectations:
    """What the RP asked for, which the ID Token must match (OIDC Core §3.1.3.7)."""

    issuer: str
    client_id: str
    nonce: str | None
    access_token: str | None = None
    code: str | None = None
    require_at_hash: bool = True
    require_mfa: bool = False
    max_age: int | None = None
    #: ``prompt=login`` was sent at this time: ``auth_time`` must not be earlier (J08).
    reauthenticated_after: float | None = None
    #: On refresh: the original ID Token's claims, whose ``sub`` etc. must not change (§12.2).
    original: Mapping[str, Any] | None = None


def validate_id_token(
    token: Any,
    keys: KeySource,
    algorithms: Sequence[str],
    expect: IdTokenExpectations,
    *,
    now: float,
    skew: int = 60,
    max_token_age: int = 600,
) -> VerifiedJWT:
    """Every step of OIDC Core §3.1.3.7 (J03), ``at_hash`` (J04) and, on refresh, §12.2."""
    verified = verify_jwt(token, keys, algorithms, ID_TOKEN_CHECKS)
    header, claims = verified.header, verified.claims
    if _typ_is(header, LOGOUT_TOKEN_TYPE) or "events" in claims:
        raise InvalidToken("A Logout Token was sent in place of an ID Token", check="wrong-typ")

    original = expect.original
    if original is not None and claims.get("iss") != original.get("iss"):
        raise InvalidToken(
            "The refreshed ID Token has another issuer", check="refresh-token-invalid-issuer"
        )
    _check_issuer_and_audience(claims, expect.issuer, expect.client_id, InvalidToken)

    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_LENGTH:
        raise InvalidToken("The ID Token does not identify the person (sub)", check="missing-sub")
    if original is not None and sub != original.get("sub"):
        raise InvalidToken(
            "The refreshed ID Token is about someone else", check="refresh-token-invalid-sub"
        )

    _check_times(claims, now, skew, max_token_age, InvalidToken)

    nonce = claims.get("nonce")
    if expect.nonce is not None:
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), expect.nonce.encode()
        ):
            raise InvalidToken(
                "The ID Token does not match this sign-in (nonce)", check="nonce-invalid"
            )
    elif original is not None and nonce is not None and nonce != original.get("nonce"):
        raise InvalidToken("The refreshed ID Token has another nonce", check="nonce-invalid")

    alg = str(header["alg"])
    at_hash = claims.get("at_hash")
    if expect.access_token is not None:
        if at_hash is None:
            if expect.require_at_hash:
                raise InvalidToken("The ID Token has no at_hash", check="missing-athash")
        elif not isinstance(at_hash, str) or not hmac.compare_digest(
            at_hash.encode(), left_half_hash(expect.access_token, alg).encode()
        ):
            raise InvalidToken(
                "The ID Token does not match the access token (at_hash)", check="invalid-athash"
            )
    c_hash = claims.get("c_hash")
    if (
        c_hash is not None
        and expect.code is not None
        and (
            not isinstance(c_hash, str)
            or not hmac.compare_digest(c_hash.encode(), left_half_hash(expect.code, alg).encode())
        )
    ):
        raise InvalidToken("The ID Token does not match the code (c_hash)", check="invalid-chash")

    auth_time = _number(claims, "auth_time")
    if expect.max_age is not None or expect.reauthenticated_after is not None:
        if auth_time is None:
            raise InvalidToken("The ID Token has no auth_time", check="missing-auth-time")
        if expect.max_age is not None and now - auth_time > expect.max_age + skew:
            raise InvalidToken("The sign-in is older than this page allows", check="max-age")
        if (
            expect.reauthenticated_after is not None
            and auth_time < expect.reauthenticated_after - skew
        ):
            raise InvalidToken(
                "The provider did not ask for the password again", check="prompt-login"
            )
    if (
        original is not None
        and original.get("auth_time") is not None
        and auth_time is not None
        and auth_time < float(original["auth_time"])
    ):
        raise InvalidToken("The refreshed ID Token has an older auth_time", check="auth-time")

    if expect.require_mfa and claims.get("acr") != ACR_MFA:
        raise InvalidToken(
            "This service needs a second factor, and the provider did not confirm one",
            check="acr-not-mfa",
        )
    return verified


_LOGOUT_CHECK_NAMES = {
    "invalid-iss": "rp-backchannel-rpinitlogout-wrong-iss",
    "invalid-aud": "rp-backchannel-rpinitlogout-wrong-aud",
    "missing-aud": "rp-backchannel-rpinitlogout-wrong-aud",
}


def validate_logout_token(
    token: Any,
    keys: KeySource,
    algorithms: Sequence[str],
    *,
    issuer: str,
    client_id: str,
    now: float,
    skew: int = 60,
    max_token_age: int = 600,
) -> VerifiedJWT:
    """Back-Channel Logout 1.0 §2.6, steps 1-7 (J06). The ``jti`` replay check is the caller's."""
    verified = verify_jwt(token, keys, algorithms, LOGOUT_TOKEN_CHECKS)
    header, claims = verified.header, verified.claims
    if not _typ_is(header, LOGOUT_TOKEN_TYPE):
        raise InvalidLogoutToken("The token is not typed logout+jwt", check="wrong-typ")
    try:
        _check_issuer_and_audience(claims, issuer, client_id, InvalidLogoutToken)
    except InvalidLogoutToken as error:
        # Named after the RP conformance modules: -wrong-iss, -wrong-aud.
        check = _LOGOUT_CHECK_NAMES.get(error.check, error.check)
        raise InvalidLogoutToken(error.message, check=check) from None
    _check_times(claims, now, skew, max_token_age, InvalidLogoutToken)
    events = claims.get("events")
    if not isinstance(events, dict):
        raise InvalidLogoutToken(
            "The Logout Token has no events", check="rp-backchannel-rpinitlogout-no-event"
        )
    if not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise InvalidLogoutToken(
            "The Logout Token's events do not include a back-channel logout",
            check="rp-backchannel-rpinitlogout-wrong-event",
        )
    sub, sid = claims.get("sub"), claims.get("sid")
    if sub is None and sid is None:
        raise InvalidLogoutToken(
            "The Logout Token names no session (sub or sid)", check="no-sub-or-sid"
        )
    for name, value in (("sub", sub), ("sid", sid)):
        if value is not None and (not isinstance(value, str) or not value or len(value) > 255):
            raise InvalidLogoutToken(
                f"The Logout Token's {name} cannot be read", check="malformed-token"
            )
    if "nonce" in claims:
        raise InvalidLogoutToken(
            "A Logout Token must not carry a nonce", check="rp-backchannel-rpinitlogout-with-nonce"
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise InvalidLogoutToken("The Logout Token has no jti", check="missing-jti")
    return verified
