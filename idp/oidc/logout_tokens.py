"""Logout Tokens: the JWT a relying service receives at its back-channel logout URI.

Implements OpenID Connect Back-Channel Logout 1.0 §2.4 (the Logout Token) and, from
security-requirements.md, **I04** (claims, ``typ``, no ``nonce``) and **L02** (signed only with
our own asymmetric keys through the key ring; ``none`` and HS* cannot be produced).

A Logout Token is a JWT signed with the provider's key for the service's
``id_token_signed_response_alg`` (RS256 unless the service registered another), with the
header ``typ: logout+jwt`` (BCL §2.4, "explicit typing", RFC 8725 §3.11) and ``kid``, and the
claims:

- ``iss``: our issuer (:func:`idp.oidc.discovery.get_issuer`);
- ``aud``: the service's client_id (a string: one token per service);
- ``iat`` and ``exp``: now, and now + :data:`LOGOUT_TOKEN_LIFETIME_SECONDS` (120 s, "short",
  as I04 suggests). The worker builds the token when it sends it, not when the logout
  happened, so a retry hours later still carries a fresh token;
- ``jti``: 128 random bits, unique per token (BCL §2.4; receivers reject replays, J06);
- ``events``: ``{"http://schemas.openid.net/event/backchannel-logout": {}}``;
- ``sub`` and ``sid``: the user's subject and the SSO session's ``sid``, the same ``sid`` the
  service's ID Tokens carry (BCL §2.1, §2.4). We always send both, as
  ``backchannel_logout_session_supported: true`` promises (BCL §2.1);
- never ``nonce`` (BCL §2.4: "A nonce Claim MUST NOT be present").
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Final

from idp.oidc.discovery import get_issuer
from idp.oidc.keys import DEFAULT_ALG, KeyRing, check_alg, get_keyring

#: The event member that makes a JWT a Logout Token (BCL §2.4).
BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
#: The JWT ``typ`` header (BCL §2.4, RFC 8725 §3.11): keeps a Logout Token from being
#: mistaken for an ID Token, and the other way round.
LOGOUT_TOKEN_TYPE: Final = "logout+jwt"  # noqa: S105 (a media type, not a secret)
#: How long a Logout Token is valid (I04: "short, <= 2 min suggested").
LOGOUT_TOKEN_LIFETIME_SECONDS: Final = 120


def logout_token_claims(
    *,
    issuer: str,
    client_id: str,
    sub: str,
    sid: str,
    now: int | None = None,
    lifetime: int = LOGOUT_TOKEN_LIFETIME_SECONDS,
) -> dict[str, Any]:
    """The claims of one Logout Token (BCL §2.4). Both ``sub`` and ``sid`` are required here."""
    if not (issuer and client_id and sub and sid):
        raise ValueError("a logout token needs an issuer, a client_id, a sub and a sid")
    issued = int(time.time()) if now is None else now
    return {
        "iss": issuer,
        "aud": client_id,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": secrets.token_urlsafe(16),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        "sub": sub,
        "sid": sid,
    }


def build_logout_token(
    client_id: str,
    *,
    sub: str,
    sid: str,
    alg: str = DEFAULT_ALG,
    now: int | None = None,
    keyring: KeyRing | None = None,
) -> str:
    """A signed Logout Token for ``client_id`` (BCL §2.4), as a compact JWS.

    ``alg`` is the service's ``id_token_signed_response_alg``: RS256, ES256 or EdDSA. Anything
    else raises :class:`idp.oidc.keys.UnsupportedAlgorithm`. Needs an app context.
    """
    claims = logout_token_claims(
        issuer=get_issuer(), client_id=client_id, sub=sub, sid=sid, now=now
    )
    ring = keyring or get_keyring()
    return ring.sign(claims, alg=check_alg(alg), typ=LOGOUT_TOKEN_TYPE)
