"""The tokens we issue: JWT access tokens, ID tokens and rotating refresh tokens.

Access tokens (RFC 9068; security-requirements G07, L02):
  A JWS signed with :data:`ACCESS_TOKEN_ALG` (ES256) by the key ring, header
  ``typ: at+jwt`` (RFC 9068 §2.1) so that no ID token or logout token can pass for one. Claims
  (RFC 9068 §2.2): ``iss``, ``sub`` (the user, or the client for client credentials),
  ``aud`` = the client_id, ``client_id``, ``exp`` (the service's ``access_token_lifetime``,
  600 s by default, never over 900), ``iat``, ``jti``, ``scope``, and for a user ``auth_time``,
  ``acr``, ``amr`` (RFC 9068 §2.2.1) and ``sid``. :func:`verify_access_token` checks one with
  our keys and an explicit one-algorithm allow-list (never ``none``, never HS*, never a key from the
  header), then ``typ``, ``iss``, ``exp`` and the revocation list. A token over
  :data:`MAX_TOKEN_LENGTH` is refused before any JOSE parsing (CVE-2025-61920).

The revocation list (G02, RFC 7009 §2.2): a Redis key per revoked ``jti`` that lives until the
token would have expired anyway (plus a minute of leeway). Ending an SSO session (sign-out,
RP-initiated or back-channel logout, "sign out everywhere", expiry, password change) sets one
key per ended ``sid`` for as long as an access token can live, and a token whose ``sid`` is
there is refused too: the same ``EXISTS`` checks both, so this costs no grant and no check a
round trip (issue 4; a ``sid`` -> ``jti`` index would have cost a write per grant).

ID tokens (OpenID Connect Core 1.0 §2, §3.1.3.6, §3.1.3.7, §12.2; H01-H03):
  ``iss``, ``sub``, ``aud`` (the client_id), ``exp`` (the service's ``id_token_lifetime``),
  ``iat``, ``auth_time`` (always: it is the time of the last real authentication, so
  ``max_age`` requests are always answered), ``nonce`` when the request sent one, ``acr``,
  ``amr``, ``sid`` (the SSO session's public id: Back-Channel Logout 1.0 §2.1 and the logout
  token name the same value), ``at_hash`` (the left half of the hash of the access token with
  the hash function of the signing algorithm: SHA-256 for RS256/ES256, SHA-512 for Ed25519),
  plus the claims of the granted scopes (:mod:`idp.oidc.claims`). The header carries ``kid``.
  The signing algorithm is the service's ``id_token_signed_response_alg`` (RS256 unless it
  registered ES256 or EdDSA). There is never more than one audience, so never ``azp``.

Refresh tokens (RFC 6749 §6, §10.4; RFC 9700 §4.14.2; G05, C06, I04 Also):
  256 random bits, opaque; only their SHA-256 is stored (``refresh_tokens``). Every use
  rotates: the presented token is marked used and a new one of the same *family* is issued.
  A family shares one absolute expiry (``family_expires_at``: the service's
  ``refresh_token_lifetime``, at most 24 h), which rotation never extends. Presenting a used
  token is reuse: the whole family is revoked (``token.refresh_reuse_detected``). A family
  counts as revoked as soon as any of its tokens is, which closes the race where a rotation
  commits while the family is being revoked.

  When we issue one (decision, G05 "or by policy"): only to a service registered for the
  ``refresh_token`` grant. With the ``offline_access`` scope granted, the token is an offline
  one: it survives the end of the SSO session (Back-Channel Logout 1.0 §2.7: offline tokens
  "normally SHOULD NOT be revoked"). Without it, the token is bound to the SSO session: its
  family never outlives the session's absolute lifetime and :func:`revoke_for_session`
  revokes it when the session is logged out (BCL §2.7: "SHOULD be revoked").

  Every refresh token of a user is revoked by :func:`revoke_all_for_user` on a password change
  or reset, on "sign out everywhere" and on deactivation (C06, E06): this module listens to
  :data:`idp.services.events.sessions_ended` for those reasons.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Final

from authlib.oidc.core.util import create_half_hash
from flask import Flask, current_app
from joserfc.errors import JoseError
from sqlalchemy import (
    Boolean,
    Connection,
    Table,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult

from idp.config import Settings
from idp.direct_statement import DirectStatement
from idp.extensions import db
from idp.models import (
    AccessGrant,
    AccessPolicy,
    Organisation,
    RefreshToken,
    Service,
    User,
    UserStatus,
)
from idp.models.base import utcnow
from idp.oidc.claims import user_claims
from idp.oidc.discovery import get_issuer
from idp.oidc.keys import get_keyring
from idp.services import events, users
from idp.services.authentication import ACCOUNT_COLUMNS, Account
from idp.services.crypto import token_hash
from idp.store import get_store

ACCESS_TOKEN_ALG: Final = "ES256"  # noqa: S105 (an algorithm name)
ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 (a media type)
#: RFC 9068 §4: resource servers accept ``at+jwt`` or its long form.
ACCESS_TOKEN_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})
#: Longer than any token we issue (ours are well under 2 KB): refused before JOSE parsing.
MAX_TOKEN_LENGTH: Final = 8192
#: Refresh tokens we issue are 43 characters.
MAX_REFRESH_TOKEN_LENGTH: Final = 128
#: Revocation-list entries outlive the token by this much (clock skew between instances).
REVOCATION_LEEWAY_SECONDS: Final = 60
#: ``sessions_ended`` reasons after which every refresh token of the user is revoked (C06, E06).
REVOKE_ALL_REASONS: Final = frozenset(
    {
        "password_changed",
        "password_reset",
        "user_ended_all",
        "helpdesk_ended_all",
        "deactivated",
        "user_deactivated",
    }
)

_REVOKED_KEY: Final = "oidc:at-revoked:{}"
#: Set when an SSO session ends (sign-out, logout, "sign out everywhere", expiry, password
#: change): every access token issued in it stops working at UserInfo and introspection.
_SID_ENDED_KEY: Final = "oidc:sid-ended:{}"
#: How long an ended session is remembered: longer than any access token lives (G07: at most
#: 15 minutes; the registry refuses more), plus the revocation leeway.
SID_ENDED_SECONDS: Final = 15 * 60 + REVOCATION_LEEWAY_SECONDS
#: Set when a person withdraws their consent to a service (F11, ASVS 10.7.3), to the time it
#: happened: their access tokens for it issued until then stop working. Kept as long as an
#: ended session is.
_CONSENT_WITHDRAWN_KEY: Final = "oidc:consent-withdrawn:{}:{}"


class InvalidAccessToken(Exception):
    """The bearer token is not a live access token of ours. ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Authentication:
    """How and when the user authenticated: carried from the code into every derived token."""

    sid: str | None
    auth_time: int | None
    amr: tuple[str, ...] = ()
    acr: str | None = None
    #: The chosen organisation's public id (None: the claims apply their default rule).
    organisation_id: str | None = None


@dataclass
class IssuedAccessToken:
    token: str
    jti: str
    expires_at: int
    expires_in: int


@dataclass(frozen=True)
class IssuedRefreshToken:
    token: str
    family_id: str


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _now() -> int:
    return int(time.time())


# -- access tokens --------------------------------------------------------------------------


def mint_access_token(
    service: Service,
    *,
    sub: str,
    scope: str,
    authn: Authentication | None,
    now: int | None = None,
) -> IssuedAccessToken:
    """Sign an RFC 9068 access token for ``service`` (the audience)."""
    issued_at = now if now is not None else _now()
    lifetime = int(service.access_token_lifetime)
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": get_issuer(),
        "sub": sub,
        "aud": service.client_id,
        "client_id": service.client_id,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "jti": jti,
        "scope": scope,
    }
    if authn is not None:
        if authn.sid:
            # The SSO session it was issued in, so ending the session ends the token too.
            claims["sid"] = authn.sid
        if authn.auth_time is not None:
            claims["auth_time"] = authn.auth_time
        if authn.acr:
            claims["acr"] = authn.acr
        if authn.amr:
            claims["amr"] = list(authn.amr)
        if authn.organisation_id:
            claims["organisation_id"] = authn.organisation_id
    token = get_keyring().sign(claims, alg=ACCESS_TOKEN_ALG, typ=ACCESS_TOKEN_TYP)
    return IssuedAccessToken(token, jti, issued_at + lifetime, lifetime)


def verify_access_token(
    token: str,
    *,
    allow_expired: bool = False,
    check_revoked: bool = True,
    now: int | None = None,
) -> dict[str, Any]:
    """The claims of a live access token we issued, or :class:`InvalidAccessToken` (L02)."""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidAccessToken("The access token is malformed.")
    try:
        decoded = get_keyring().decode_own_token(token, algorithms=[ACCESS_TOKEN_ALG])
    except (JoseError, ValueError, TypeError, KeyError, IndexError) as error:
        raise InvalidAccessToken("The access token is not valid.") from error
    if decoded.header.get("typ") not in ACCESS_TOKEN_TYPS:
        raise InvalidAccessToken("The token is not an access token.")
    claims: dict[str, Any] = dict(decoded.claims)
    if claims.get("iss") != get_issuer():
        raise InvalidAccessToken("The access token was not issued here.")
    for name in ("sub", "jti", "client_id", "scope"):
        if not isinstance(claims.get(name), str):
            raise InvalidAccessToken("The access token is not valid.")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int) or isinstance(exp, bool):
        raise InvalidAccessToken("The access token is not valid.")
    if not allow_expired and exp <= (now if now is not None else _now()):
        raise InvalidAccessToken("The access token has expired.")
    sid = claims.get("sid")
    if sid is not None and not isinstance(sid, str):
        raise InvalidAccessToken("The access token is not valid.")
    if check_revoked and is_access_token_revoked(claims):
        raise InvalidAccessToken("The access token has been revoked.")
    return claims


def revoke_access_token(jti: str, expires_at: int, *, now: int | None = None) -> None:
    """Put ``jti`` on the revocation list until the token would have expired anyway."""
    ttl = expires_at - (now if now is not None else _now()) + REVOCATION_LEEWAY_SECONDS
    if jti and ttl > 0:
        get_store().set(_REVOKED_KEY.format(jti), b"1", ex=ttl)


def is_access_token_revoked(claims: Mapping[str, Any]) -> bool:
    """Revoked itself (RFC 7009), issued in an SSO session that has ended since, or issued
    before its person withdrew their consent to its service (F11).

    One ``MGET`` over the three keys: the session and consent checks cost no extra round trip.
    (An index from each session or consent to its tokens' ``jti`` would cost a write on every
    grant instead.)
    """
    keys = [
        _REVOKED_KEY.format(claims["jti"]),
        _CONSENT_WITHDRAWN_KEY.format(claims["sub"], claims["client_id"]),
    ]
    if claims.get("sid"):
        keys.append(_SID_ENDED_KEY.format(claims["sid"]))
    revoked, withdrawn_at, *session_ended = get_store().mget(keys)
    if revoked is not None or any(value is not None for value in session_ended):
        return True
    return withdrawn_at is not None and int(claims["iat"]) <= int(withdrawn_at)


def end_consent_tokens(sub: str, client_id: str, *, now: int | None = None) -> None:
    """Every access token of ``sub`` for ``client_id`` issued until now stops working."""
    at = now if now is not None else _now()
    get_store().set(_CONSENT_WITHDRAWN_KEY.format(sub, client_id), at, ex=SID_ENDED_SECONDS)


def end_sessions_tokens(sids: Iterable[str]) -> None:
    """Every access token issued in these SSO sessions stops working (logout, sign-out)."""
    store = get_store()
    batch = store.pipeline(transaction=False)
    for sid in sids:
        if sid:
            batch.set(_SID_ENDED_KEY.format(sid), b"1", ex=SID_ENDED_SECONDS)
    batch.execute()


# -- ID tokens -----------------------------------------------------------------------------


def make_id_token(
    service: Service,
    user: User,
    *,
    scopes: Collection[str],
    authn: Authentication,
    access_token: str | None,
    nonce: str | None = None,
    now: int | None = None,
) -> str:
    """Sign an ID token for ``user`` to ``service`` (OIDC Core §2, §3.1.3.6)."""
    issued_at = now if now is not None else _now()
    alg = service.id_token_signed_response_alg
    claims = user_claims(user, scopes, service, organisation_id=authn.organisation_id)
    claims.update(
        iss=get_issuer(),
        sub=user.sub,
        aud=service.client_id,
        iat=issued_at,
        exp=issued_at + int(service.id_token_lifetime),
    )
    if authn.auth_time is not None:
        claims["auth_time"] = authn.auth_time
    if nonce:
        claims["nonce"] = nonce
    if authn.acr:
        claims["acr"] = authn.acr
    if authn.amr:
        claims["amr"] = list(authn.amr)
    if authn.sid:
        claims["sid"] = authn.sid
    if access_token:
        at_hash = create_half_hash(access_token, alg)
        if at_hash is not None:
            claims["at_hash"] = at_hash.decode("ascii")
    return get_keyring().sign(claims, alg=alg, typ="JWT")


# -- refresh tokens ----------------------------------------------------------------------------


def _organisation_pk(public_id: str | None) -> int | None:
    if public_id is None:
        return None
    pk: int | None = db.session.scalar(
        select(Organisation.id).where(Organisation.public_id == public_id)
    )
    return pk


def organisation_public_id(pk: int | None) -> str | None:
    if pk is None:
        return None
    public_id: str | None = db.session.scalar(
        select(Organisation.public_id).where(Organisation.id == pk)
    )
    return public_id


def issue_refresh_token(
    service: Service,
    user: User,
    *,
    scope: str,
    authn: Authentication,
    offline: bool,
    parent: RefreshTokenRow | None = None,
    now: datetime | None = None,
) -> IssuedRefreshToken:
    """Add a new refresh token in the caller's unit of work (the caller commits).

    ``parent``: rotate it. The parent is marked used and its successor added *in one
    statement* on PostgreSQL (a data-modifying CTE; one statement in one transaction on
    SQLite), so there is never a used token without its successor, nor two successors:
    of concurrent rotations of one token exactly one gets a successor, and every other
    raises :class:`RefreshTokenSpent` (G05; RFC 9700 §4.14.2).
    """
    at = now or utcnow()
    token = secrets.token_urlsafe(32)
    if parent is not None:
        family_id, family_expires_at = parent.family_id, parent.family_expires_at
        organisation_pk = parent.organisation_id
    else:
        family_id = str(uuid.uuid4())
        family_expires_at = _family_expiry(service, authn, offline, at)
        organisation_pk = _organisation_pk(authn.organisation_id)
    # A Core INSERT of one prebuilt statement, not an ORM object and a flush: the unit of
    # work's flush machinery was about a tenth of a code redemption's CPU (issue 4). Nothing
    # in the request reads the new row back.
    values = {
        "token_hash": token_hash(token),
        "family_id": family_id,
        "service_id": service.id,
        "user_id": user.id,
        "sid": authn.sid,
        "scope": scope,
        "offline_access": offline,
        "organisation_id": organisation_pk,
        "auth_time": authn.auth_time or int(at.timestamp()),
        "amr": list(authn.amr),
        "acr": authn.acr,
        "claims": {},
        "created_at": at,
        "family_expires_at": family_expires_at,
        "expires_at": family_expires_at,
    }
    connection = db.session.connection()
    if parent is None:
        connection.execute(_INSERT_REFRESH_TOKEN, values)
    elif connection.dialect.name == "postgresql":
        claimed = connection.execute(
            _ROTATE_REFRESH_TOKEN,
            {"parent_id": parent.id, "now": at} | {f"new_{k}": v for k, v in values.items()},
        )
        if claimed.first() is None:
            raise RefreshTokenSpent(parent.id)
    else:
        if (
            _rowcount(connection.execute(_CLAIM_REFRESH_TOKEN, {"row_id": parent.id, "now": at}))
            != 1
        ):
            raise RefreshTokenSpent(parent.id)
        connection.execute(_INSERT_REFRESH_TOKEN, values)
    return IssuedRefreshToken(token, family_id)


@dataclass(frozen=True)
class Rotated:
    """A refresh token rotated by :func:`rotate_if_usable`: the parent as it was read (now
    used), its person, its organisation's public id, and the successor."""

    parent: RefreshTokenRow
    account: Account
    organisation_public_id: str | None
    successor: IssuedRefreshToken


def rotate_if_usable(
    connection: Connection, token: str, service: Service, now: datetime | None = None
) -> Rotated | None:
    """PostgreSQL: find, check, claim and replace a refresh token in one statement.

    The machine lane's refresh (issue 4): one round trip where finding the token and then
    rotating it take two. The statement claims the token only if it is exactly what the full
    path would accept: this service's, unused, unrevoked, unexpired, no revoked token in its
    family (:meth:`FoundRefreshToken.usable`), its person active and still allowed to use the
    service (:func:`idp.oidc.server.refresh_user`, :func:`idp.services.access.has_access`).
    Otherwise it changes nothing and returns None, and the full path answers (and refuses).
    Concurrent uses of one token: exactly one claims it, as in :func:`issue_refresh_token`.
    """
    if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    at = now or utcnow()
    successor = secrets.token_urlsafe(32)
    found = _ROTATE_IF_USABLE.first(
        connection,
        {
            "presented_hash": token_hash(token),
            "for_service": service.id,
            "open_access": service.access_policy is AccessPolicy.OPEN,
            "now": at,
            "successor_at": at,
            "successor_hash": token_hash(successor),
            "active": UserStatus.ACTIVE,
            "no_claims": {},
        },
    )
    if found is None:
        return None
    width = len(_ROW_FIELDS)
    parent = RefreshTokenRow(*found[:width])
    return Rotated(
        parent,
        Account(found[width:-1]),
        found[-1],
        IssuedRefreshToken(successor, parent.family_id),
    )


def _rotate_if_usable_statement() -> Any:
    # Parameter names never match a column of the table: SQLAlchemy would take such a
    # parameter for a value to SET in the UPDATE.
    table: Table = RefreshToken.__table__  # type: ignore[assignment]
    family = table.alias("family")
    grants = AccessGrant.__table__
    claimed = (
        update(table)
        .where(
            table.c.token_hash == bindparam("presented_hash"),
            table.c.service_id == bindparam("for_service"),
            table.c.used_at.is_(None),
            table.c.revoked_at.is_(None),
            table.c.expires_at > bindparam("now"),
            table.c.family_expires_at > bindparam("now"),
            ~exists().where(
                family.c.family_id == table.c.family_id, family.c.revoked_at.is_not(None)
            ),
            exists().where(User.id == table.c.user_id, User.status == bindparam("active")),
            or_(
                bindparam("open_access", type_=Boolean),
                exists().where(
                    grants.c.user_id == table.c.user_id,
                    grants.c.service_id == table.c.service_id,
                    or_(
                        table.c.organisation_id.is_(None),
                        grants.c.organisation_id == table.c.organisation_id,
                    ),
                ),
            ),
        )
        .values(used_at=bindparam("now", type_=table.c.used_at.type))
        .returning(*(table.c[name] for name in _ROW_FIELDS))
        .cte("claimed")
    )
    # The successor: the parent's family, person, sign-in and expiry (rotation never extends
    # a family), as issue_refresh_token writes it.
    copied = [
        c.name for c in table.c if c.name not in _SERVER_FILLED | {"token_hash", "created_at"}
    ]
    successor = (
        insert(table)
        .from_select(
            ["token_hash", "created_at", *copied],
            select(
                bindparam("successor_hash", type_=table.c.token_hash.type),
                bindparam("successor_at", type_=table.c.created_at.type),
                *(_successor_value(claimed, name) for name in copied),
            ),
        )
        .cte("successor")
    )
    organisation = Organisation.__table__
    return (
        select(
            *(claimed.c[name] for name in _ROW_FIELDS),
            *ACCOUNT_COLUMNS,
            organisation.c.public_id,
        )
        .join(User, User.id == claimed.c.user_id)
        .outerjoin(organisation, organisation.c.id == claimed.c.organisation_id)
        .add_cte(successor)
    )


def _successor_value(claimed: Any, name: str) -> Any:
    if name == "claims":
        return bindparam("no_claims", type_=RefreshToken.__table__.c.claims.type)
    if name == "expires_at":  # as issue_refresh_token: a token lives as long as its family
        return claimed.c.family_expires_at
    return claimed.c[name]


def take_back_refresh_token(token: str, parent: RefreshTokenRow | None) -> bool:
    """Delete a refresh token that was written but never delivered; for a rotation, make its
    parent unused again, but only if the delete found the token (so never a parent that a
    concurrent request rotated). Runs in the caller's unit of work. Whether it was found."""
    connection = db.session.connection()
    deleted = connection.execute(_DELETE_REFRESH_TOKEN, {"token_hash": token_hash(token)})
    if _rowcount(deleted) != 1:
        return False
    if parent is not None:
        connection.execute(_UNUSE_REFRESH_TOKEN, {"row_id": parent.id})
    return True


_DELETE_REFRESH_TOKEN: Final = delete(RefreshToken.__table__).where(  # type: ignore[arg-type]
    RefreshToken.token_hash == bindparam("token_hash")
)
_UNUSE_REFRESH_TOKEN: Final = (
    update(RefreshToken.__table__)  # type: ignore[arg-type]
    .where(RefreshToken.id == bindparam("row_id"))
    .values(used_at=None)
)


def _family_expiry(
    service: Service, authn: Authentication, offline: bool, at: datetime
) -> datetime:
    """A new family's absolute expiry: the service's lifetime, and for a token bound to the
    SSO session (no ``offline_access``) never past the session's absolute lifetime (E04)."""
    expires_at = at + timedelta(seconds=int(service.refresh_token_lifetime))
    if not offline and authn.auth_time is not None:
        session_end = datetime.fromtimestamp(
            authn.auth_time + _settings().session_absolute_seconds, tz=at.tzinfo
        )
        expires_at = min(expires_at, session_end)
    return expires_at


def read_person_adding_family(
    connection: Connection,
    sub: str,
    service: Service,
    *,
    scope: str,
    authn: Authentication,
    offline: bool,
    now: datetime | None = None,
) -> tuple[Account | None, IssuedRefreshToken]:
    """PostgreSQL: the person with ``sub``, and *only if they are active* a new refresh-token
    family for them (as :func:`issue_refresh_token` writes it), in one statement.

    The machine lane's code redemption (issue 4): one round trip where reading the person
    and then adding the family take two. The family is added (and committed, in the lane's
    autocommit) only when the person is active; otherwise nothing is written, and the caller
    sees the person's status and hands on. None: no such person.
    """
    at = now or utcnow()
    token = secrets.token_urlsafe(32)
    family_id = str(uuid.uuid4())
    family_expires_at = _family_expiry(service, authn, offline, at)
    found = _READ_PERSON_ADDING_FAMILY.first(
        connection,
        {
            "for_sub": sub,
            "active": UserStatus.ACTIVE,
            "for_organisation": authn.organisation_id,
            "new_token_hash": token_hash(token),
            "new_family_id": family_id,
            "new_service_id": service.id,
            "new_sid": authn.sid,
            "new_scope": scope,
            "new_offline_access": offline,
            "new_auth_time": authn.auth_time or int(at.timestamp()),
            "new_amr": list(authn.amr),
            "new_acr": authn.acr,
            "new_claims": {},
            "new_created_at": at,
            "new_family_expires_at": family_expires_at,
            "new_expires_at": family_expires_at,
        },
    )
    return (Account(found) if found is not None else None), IssuedRefreshToken(token, family_id)


def _read_person_adding_family_statement() -> Any:
    # Parameter names never match a column of the table (see _rotate_if_usable_statement).
    table: Table = RefreshToken.__table__  # type: ignore[assignment]
    person = select(*ACCOUNT_COLUMNS).where(User.sub == bindparam("for_sub")).cte("person")
    organisation = (
        select(Organisation.id)
        .where(Organisation.public_id == bindparam("for_organisation"))
        .scalar_subquery()
    )
    names = [c.name for c in table.c if c.name not in _SERVER_FILLED]

    def value(name: str) -> Any:
        if name == "user_id":
            return person.c.id
        if name == "organisation_id":
            return organisation
        return bindparam(f"new_{name}", type_=table.c[name].type)

    added = (
        insert(table)
        .from_select(
            names,
            select(*(value(name) for name in names)).where(person.c.status == bindparam("active")),
        )
        .cte("added")
    )
    return select(*person.c).add_cte(added)


class RefreshTokenSpent(Exception):
    """The token being rotated was used or revoked meanwhile: nothing was issued (G05)."""


#: ``inline``: no implicit ``RETURNING id`` (nothing reads the new row back).
_INSERT_REFRESH_TOKEN: Final = insert(RefreshToken.__table__).inline()  # type: ignore[arg-type]


def _rotate_refresh_token_statement() -> Any:
    """``WITH claimed AS (UPDATE … SET used_at … RETURNING id) INSERT … SELECT … FROM claimed``.

    PostgreSQL only. Under READ COMMITTED a concurrent rotation of the same parent waits for
    the row lock, re-checks ``used_at IS NULL`` against the committed row, claims nothing and
    so inserts nothing. Built once (issue 4: building statements costs more than running them).
    """
    table: Table = RefreshToken.__table__  # type: ignore[assignment]
    claimed = (
        update(table)
        .where(
            table.c.id == bindparam("parent_id"),
            table.c.used_at.is_(None),
            table.c.revoked_at.is_(None),
        )
        .values(used_at=bindparam("now"))
        .returning(table.c.id)
        .cte("claimed")
    )
    names = [c.name for c in table.c if c.name not in _SERVER_FILLED]
    successor = select(
        *(bindparam(f"new_{name}", type_=table.c[name].type) for name in names)
    ).select_from(claimed)
    # RETURNING: psycopg reports no row count for an INSERT led by a data-modifying CTE.
    return insert(table).from_select(names, successor).returning(table.c.id)


#: Columns a new row never names: the key, and the state of a token that is not yet used.
_SERVER_FILLED: Final = frozenset({"id", "used_at", "revoked_at"})
_ROTATE_REFRESH_TOKEN: Final = _rotate_refresh_token_statement()


@dataclass(frozen=True, slots=True)
class RefreshTokenRow:
    """A stored refresh token as read by a grant, revocation or introspection: read-only.

    A plain snapshot of the row, not an ORM object (issue 4: loading the ORM object was about
    a sixth of a refresh grant's CPU). Changes go through the statements in this module
    (:func:`issue_refresh_token`, :func:`revoke_family`), never through the snapshot.
    """

    id: int
    family_id: str
    service_id: int
    user_id: int
    sid: str | None
    scope: str
    offline_access: bool
    organisation_id: int | None
    auth_time: int
    amr: list[str]
    acr: str | None
    created_at: datetime
    family_expires_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class FoundRefreshToken:
    row: RefreshTokenRow
    family_revoked: bool
    #: The person it was issued to, read by the same query (one round trip fewer a refresh).
    account: Account

    def usable(self, now: datetime) -> bool:
        """Neither revoked (itself or any of its family), used, nor expired (G05)."""
        row = self.row
        return (
            not self.family_revoked
            and row.revoked_at is None
            and row.used_at is None
            and now < row.expires_at
            and now < row.family_expires_at
        )


def find_refresh_token(token: str) -> FoundRefreshToken | None:
    """The stored row for ``token``, and whether any token of its family was revoked."""
    if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    found = (
        db.session.connection()
        .execute(_FIND_REFRESH_TOKEN, {"token_hash": token_hash(token)})
        .first()
    )
    if found is None:
        return None
    width = len(_ROW_FIELDS)
    return FoundRefreshToken(
        RefreshTokenRow(*found[:width]), bool(found[width]), Account(found[width + 1 :])
    )


def _find_refresh_token_statement() -> Any:
    """Built once: building it (an alias and its column collection) cost more CPU than the
    query itself, on every refresh grant (issue 4). Core columns, in
    :class:`RefreshTokenRow`'s order, then whether its family has a revoked member, then the
    person (:data:`~idp.services.authentication.ACCOUNT_COLUMNS`)."""
    table = RefreshToken.__table__
    family = table.alias("family")
    revoked = exists().where(
        family.c.family_id == RefreshToken.family_id, family.c.revoked_at.is_not(None)
    )
    columns = [table.c[name] for name in _ROW_FIELDS]
    return (
        select(*columns, revoked.label("family_revoked"), *ACCOUNT_COLUMNS)
        .join(User, User.id == RefreshToken.user_id)
        .where(RefreshToken.token_hash == bindparam("token_hash"))
    )


_ROW_FIELDS: Final = tuple(f.name for f in fields(RefreshTokenRow))


_FIND_REFRESH_TOKEN: Final = _find_refresh_token_statement()
# Run on the driver (idp.direct_statement): the lane's one statement per grant.
_ROTATE_IF_USABLE: Final = DirectStatement(_rotate_if_usable_statement())
_READ_PERSON_ADDING_FAMILY: Final = DirectStatement(_read_person_adding_family_statement())


# Built once, like _FIND_REFRESH_TOKEN. SQLite: claims the parent before its successor is added.
_CLAIM_REFRESH_TOKEN: Final = (
    update(RefreshToken)
    .where(
        RefreshToken.id == bindparam("row_id"),
        RefreshToken.used_at.is_(None),
        RefreshToken.revoked_at.is_(None),
    )
    .values(used_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


def revoke_family(family_id: str, now: datetime | None = None) -> int:
    """Revoke every token of a family (reuse, RFC 7009 revocation, a replayed code)."""
    return _revoke(RefreshToken.family_id == family_id, now)


def revoke_for_session(sid: str, now: datetime | None = None) -> int:
    """Revoke the refresh tokens issued in SSO session ``sid`` without ``offline_access``.

    Back-Channel Logout 1.0 §2.7 and I04 Also: the logout engineer calls this when a session
    is logged out. Offline tokens are kept. Runs in the caller's unit of work (flushes only).
    """
    return _revoke((RefreshToken.sid == sid) & RefreshToken.offline_access.is_(False), now)


def revoke_all_for_user(user_id: int, now: datetime | None = None) -> int:
    """Revoke every refresh token of a user, offline ones included (C06, E06, G05).

    For password change or reset, "sign out everywhere" and deactivation. Runs in the caller's
    unit of work (flushes only).
    """
    return _revoke(RefreshToken.user_id == user_id, now)


def revoke_for_user_at_service(user_id: int, service_id: int, now: datetime | None = None) -> int:
    """Revoke every refresh token of a user at one service, offline ones too.

    A withdrawn consent (F11, ASVS 10.7.3): the service must not go on reading with a token
    the person had allowed. Runs in the caller's unit of work (flushes only).
    """
    return _revoke((RefreshToken.user_id == user_id) & (RefreshToken.service_id == service_id), now)


def _revoke(condition: Any, now: datetime | None) -> int:
    """Mark the live tokens matching ``condition`` revoked; how many.

    The rows are locked in id order first. Two revocations of overlapping rows at once (a spent
    refresh token presented by several requests together, each revoking the family; a logout
    racing a password change) otherwise lock the rows in whatever order each scan meets them,
    and on PostgreSQL can each hold a row the other waits for: a deadlock, and a 503 for one
    of them. One global order makes that impossible. SQLite serialises writers and has no
    ``FOR UPDATE``; SQLAlchemy leaves it out there.
    """
    db.session.execute(
        select(RefreshToken.id)
        .where(condition, RefreshToken.revoked_at.is_(None))
        .order_by(RefreshToken.id)
        .with_for_update()
    )
    result = db.session.execute(
        update(RefreshToken)
        .where(condition, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    return _rowcount(result)


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


# -- reacting to ended sessions ----------------------------------------------------------------


def _on_sessions_ended(sender: str, **kwargs: Any) -> None:
    """Access tokens issued in an ended session stop working, whatever the reason; and C06/E06:
    when every session of a user ends for these reasons, so do its refresh tokens."""
    end_sessions_tokens(s.sid for s in kwargs.get("sessions") or ())
    if kwargs.get("reason") not in REVOKE_ALL_REASONS:
        return
    user = users.find_by_sub(sender)
    if user is not None:
        revoke_all_for_user(user.id)


def init_app(app: Flask) -> None:
    """Subscribe to the domain events this module reacts to (idempotent)."""
    events.sessions_ended.connect(_on_sessions_ended)
