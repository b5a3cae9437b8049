"""Authorization codes: short-lived, single use, and bound to everything the request said.

Implements, from RFC 6749 §4.1.2 ("The client MUST NOT use the authorization code more than
once. If an authorization code is used more than once, the authorization server MUST deny the
request and SHOULD revoke (when possible) all tokens previously issued based on that
authorization code"), §10.5, RFC 9700 §4.5, OpenID Connect Core 1.0 §3.1.2.5 and §3.1.3.2,
and from security-requirements.md:

- **G01**: a code is 256 random bits (``secrets.token_urlsafe(32)``), opaque, and lives 60 s.
  It is bound to the client, the redirect URI, the PKCE challenge, the nonce, the scope and
  the SSO session (``sid``, ``auth_time``, ``amr``, ``acr``), plus the chosen organisation.
  Redis holds it under the SHA-256 of its value, so a dump of Redis yields no usable code.
  The expiry is also checked against the application clock, so it does not depend on the
  store's own TTL (and time-travel tests work on real Redis).
- **G02** / **V3**: redemption is one atomic Lua script around ``GETDEL``: exactly one caller
  gets the record, and in the same step a "spent" marker is written. The winner records on
  the marker what it issued (the access token's ``jti`` and the refresh-token family) once
  those are committed. A later or concurrent redemption finds the marker instead of the code:
  it flags the marker as reused and gets back whatever was recorded so far, which the caller
  revokes. If the loser flags the marker *before* the winner records, the winner's own
  :func:`record_issued` reports the reuse and the winner revokes what it just issued. Either
  way, every token derived from a code that was presented twice ends up revoked.

The marker lives for :data:`SPENT_TTL_SECONDS`, longer than any access token (G07: at most
15 minutes), so a replay at any point in a derived token's life is caught.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from authlib.oidc.core import AuthorizationCodeMixin
from flask import current_app
from redis.commands.core import Script

from idp.services.crypto import token_hash
from idp.store import get_store

#: G01: at most 60 s (ASVS L3), never more than 10 minutes (RFC 6749 §4.1.2).
CODE_TTL_SECONDS: Final = 60
#: How long a redeemed code is remembered, to catch replays (>= the longest access token).
SPENT_TTL_SECONDS: Final = 900
#: A code we issued is 43 characters; anything much longer is not ours and is not looked up.
MAX_CODE_LENGTH: Final = 128

_CODE_KEY: Final = "oidc:code:{}"
_SPENT_KEY: Final = "oidc:code-spent:{}"

# KEYS: code, spent marker. ARGV: marker TTL.
# Returns {1, record} (first redemption), {2, record, jti, jti_exp, family} (reuse) or {0}.
_REDEEM: Final = """
local raw = redis.call("GETDEL", KEYS[1])
if raw then
  redis.call("DEL", KEYS[2])
  redis.call("HSET", KEYS[2], "record", raw)
  redis.call("EXPIRE", KEYS[2], ARGV[1])
  return {1, raw}
end
if redis.call("EXISTS", KEYS[2]) == 1 then
  redis.call("HSET", KEYS[2], "reused", "1")
  local f = redis.call("HMGET", KEYS[2], "record", "jti", "jti_exp", "family")
  return {2, f[1] or "", f[2] or "", f[3] or "", f[4] or ""}
end
return {0}
"""

# KEYS: spent marker. ARGV: jti, jti_exp, family.
# Returns 0 (marker gone), 1 (recorded) or 2 (recorded, but the code was presented again).
_RECORD: Final = """
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
redis.call("HSET", KEYS[1], "jti", ARGV[1], "jti_exp", ARGV[2], "family", ARGV[3])
if redis.call("HGET", KEYS[1], "reused") == "1" then return 2 end
return 1
"""


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """Everything a code stands for. Authlib reads it through the mixin's getters."""

    client_id: str
    #: The redirect URI the response went to (the registered one when none was sent).
    redirect_uri: str
    #: Whether the authorization request carried ``redirect_uri`` (RFC 6749 §4.1.3).
    redirect_uri_sent: bool
    scope: str
    code_challenge: str
    code_challenge_method: str
    sub: str
    sid: str
    auth_time: int
    amr: list[str] = field(default_factory=list)
    acr: str | None = None
    nonce: str | None = None
    #: The chosen organisation's public id, for the organisation and roles claims.
    organisation_id: str | None = None
    issued_at: int = 0
    expires_at: int = 0
    #: Set on redemption: the SHA-256 of the code (never stored with the record).
    code_hash: str = ""

    # authlib.oauth2.rfc6749.AuthorizationCodeMixin / authlib.oidc.core.AuthorizationCodeMixin

    def get_redirect_uri(self) -> str | None:
        # RFC 6749 §4.1.3: the token request must repeat redirect_uri only if the
        # authorization request carried it (the grant checks the other case itself).
        return self.redirect_uri if self.redirect_uri_sent else None

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr)

    def is_expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("code_hash")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str, code_hash: str) -> AuthorizationCode:
        data: dict[str, Any] = json.loads(raw)
        return cls(**data, code_hash=code_hash)


@dataclass(frozen=True)
class Issued:
    """What one redemption issued, so that a replay can revoke it."""

    jti: str | None = None
    jti_expires_at: int = 0
    family_id: str | None = None


@dataclass(frozen=True)
class Redemption:
    """The outcome of presenting a code.

    ``code`` is set for the first redemption. ``reused`` is true when the code had already been
    redeemed; ``issued`` then says what the first redemption issued (as far as it got) and
    ``previous`` what the code stood for.
    """

    code: AuthorizationCode | None = None
    reused: bool = False
    previous: AuthorizationCode | None = None
    issued: Issued = field(default_factory=Issued)


def new_code() -> str:
    """A fresh code value: 256 bits from the CSPRNG, URL-safe (G01)."""
    return secrets.token_urlsafe(32)


def save(code: str, record: AuthorizationCode, *, now: float | None = None) -> None:
    """Store ``record`` under ``code`` for :data:`CODE_TTL_SECONDS`."""
    issued = int(now if now is not None else time.time())
    record.issued_at = issued
    record.expires_at = issued + CODE_TTL_SECONDS
    get_store().set(
        _CODE_KEY.format(token_hash(code)), record.to_json(), ex=CODE_TTL_SECONDS, nx=True
    )


def redeem(code: str) -> Redemption:
    """Take the code out of the store, atomically; report a replay if it was taken before."""
    if not code or len(code) > MAX_CODE_LENGTH:
        return Redemption()
    digest = token_hash(code)
    result: list[Any] = _script("redeem")(
        keys=[_CODE_KEY.format(digest), _SPENT_KEY.format(digest)], args=[SPENT_TTL_SECONDS]
    )
    kind = int(result[0])
    if kind == 1:
        return Redemption(code=AuthorizationCode.from_json(result[1], digest))
    if kind == 2:
        record, jti, jti_exp, family = (_text(v) for v in result[1:5])
        previous = AuthorizationCode.from_json(record, digest) if record else None
        issued = Issued(jti or None, int(jti_exp or 0), family or None)
        return Redemption(reused=True, previous=previous, issued=issued)
    return Redemption()


def record_issued(record: AuthorizationCode, issued: Issued) -> bool:
    """Note what the first redemption issued. False: the code was presented again meanwhile,
    and the caller must revoke what it issued (G02)."""
    outcome = _script("record")(
        keys=[_SPENT_KEY.format(record.code_hash)],
        args=[issued.jti or "", issued.jti_expires_at, issued.family_id or ""],
    )
    return int(outcome) != 2


def _script(name: str) -> Script:
    """The app's registered copy of a script (sent once, then run by its SHA-1)."""
    scripts: dict[str, Script] | None = current_app.extensions.get("oidc_code_scripts")
    if scripts is None:
        store = get_store()
        scripts = current_app.extensions.setdefault(
            "oidc_code_scripts",
            {"redeem": store.register_script(_REDEEM), "record": store.register_script(_RECORD)},
        )
    return scripts[name]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
