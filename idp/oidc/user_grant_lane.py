"""The machine lane's user grants: an ordinary code redemption or refresh, without the framework.

Why (issue 4): a relying party redeems a code, and later refreshes, for every sign-in; both
must keep up with node-oidc-provider on the same machine. Through Flask's request machinery
and Authlib's grant classes they cost about twice node's CPU, most of it neither the
signatures nor the database (docs/benchmarks.md). :mod:`idp.oidc.machine_lane` authenticates
the client (``client_secret_basic`` or ``client_secret_post``) and calls one of the two
functions here; each either finishes the grant and returns the token response, or returns
None and the full path (:mod:`idp.oidc.server`) answers, error and audit record included.

Each step is the full path's own function (:func:`~idp.oidc.server.mint_user_access`,
:func:`~idp.oidc.server.add_refresh_token`,
:func:`~idp.oidc.server.id_token_for`, :func:`~idp.oidc.server.refresh_user`,
:func:`~idp.oidc.server.commit_issued`, :func:`idp.oidc.codes.redeem`, ...); what is the
lane's own is only the decision whether the request is ordinary enough to finish here.

**The code** (RFC 6749 §4.1.3; RFC 7636 §4.6; G01-G03). Taking the code out of the store is
the only way to read it, and it cannot be put back. So the lane redeems it only once the
request has passed every check the full path makes before redeeming (client, grant type,
parameters); from then on, whatever the lane cannot finish (a wrong verifier or redirect URI,
another client's or an expired code, a spent one, an inactive person, a failure) is handed to
the full path *with the redemption* (:data:`~idp.oidc.server.LANE_REDEMPTION`), which carries
on as if it had redeemed the code itself. G02's bookkeeping is the full path's order: commit
the tokens, then note on the spent marker what was issued; if the code was presented again
meanwhile, the full path is handed a redemption that says so, revokes and refuses.

**The refresh token** (RFC 6749 §6; RFC 9700 §4.14.2; G05). Nothing changes until the claim,
so a token that is not plainly usable (used, revoked, expired, another client's, a person no
longer active or allowed) goes to the full path untouched, which refuses it (and revokes the
family on reuse). The claim and the successor are written together; a claim that loses a
race writes nothing and goes to the full path, which then finds the token used: reuse.

**PostgreSQL** (issue 4): each grant's database work is one statement on an autocommit
connection (:func:`_autocommit`): :func:`tokens.rotate_if_usable` finds, checks, claims and
replaces a refresh token; :func:`tokens.read_person_adding_family` reads the code's person
and, only if active, adds the new family. The write then comes before the signatures, so a
failure after it takes the undelivered token back (:func:`_take_back`) before handing on.
SQLite takes the steps one by one in a transaction.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Final, cast

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.grants.util import is_openid_scope
from sqlalchemy import Connection

from idp.extensions import db
from idp.models import User, UserStatus
from idp.models.base import utcnow
from idp.oidc import codes, tokens
from idp.oidc.server import (
    CODE_VERIFIER,
    LANE_REDEMPTION,
    Client,
    active_user,
    add_refresh_token,
    code_authentication,
    commit_issued,
    id_token_for,
    mint_user_access,
    record_token_issued,
    refresh_authentication,
    refresh_user,
)
from idp.services import audit
from idp.services.transaction import transaction

log = logging.getLogger(__name__)

#: The form parameters of each user grant the lane serves; any other sends the request on.
#: ``scope`` is not one of them: narrowing a refresh token's scope is the full path's.
CODE_PARAMETERS: Final = frozenset(
    {"grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret"}
)
REFRESH_PARAMETERS: Final = frozenset({"grant_type", "refresh_token", "client_id", "client_secret"})


def authorization_code(
    environ: dict[str, Any], form: dict[str, str], client: Client, origin: audit.RequestOrigin
) -> dict[str, Any] | None:
    """Redeem an ordinary code: the token response, or None for the full path to answer."""
    code, verifier = form.get("code"), form.get("code_verifier")
    if (
        not code
        or verifier is None
        or not CODE_VERIFIER.fullmatch(verifier)
        or not client.check_grant_type("authorization_code")
    ):
        return None  # nothing redeemed: the full path answers from the start
    redemption = codes.redeem(code)
    environ[LANE_REDEMPTION] = (code, redemption)  # the code is spent: see the module docstring
    record = redemption.code
    if record is None or not _redeemable(record, client, form.get("redirect_uri"), verifier):
        return None
    authn = code_authentication(record)
    with _autocommit() as connection:
        written: tokens.IssuedRefreshToken | None = None
        if connection is not None and client.check_grant_type("refresh_token"):
            # PostgreSQL: the person, and their new family only if they are active, at once.
            account, written = tokens.read_person_adding_family(
                connection,
                record.sub,
                client.service,
                scope=record.scope,
                authn=authn,
                offline="offline_access" in record.scope.split(),
            )
            active = account is not None and account.status is UserStatus.ACTIVE
            user = cast(User, account) if active else None
        else:
            user = active_user(sub=record.sub)
        if user is None:
            return None  # nothing was written
        return _finish_code(environ, code, record, client, user, authn, written, origin)


def _finish_code(
    environ: dict[str, Any],
    code: str,
    record: codes.AuthorizationCode,
    client: Client,
    user: User,
    authn: tokens.Authentication,
    written: tokens.IssuedRefreshToken | None,
    origin: audit.RequestOrigin,
) -> dict[str, Any] | None:
    """Sign, commit, note what was issued against the spent code (G02), or take it back."""
    try:
        if written is not None:
            payload, issued = _sign(client, user, record.scope, authn, record.nonce, written)
        else:
            payload, issued = _issue(client, user, record.scope, authn, record.nonce, None)
            written = _written(payload, issued)
        _commit(client, user, "authorization_code", payload, issued, authn, origin)
        reused = not codes.record_issued(record, issued)
    except Exception as error:
        _take_back(written, None, error)
        return None  # handed on with the redemption: the full path issues afresh
    if reused:
        # Presented again while we issued (G02): the full path revokes all this and refuses.
        environ[LANE_REDEMPTION] = (
            code,
            codes.Redemption(reused=True, previous=record, issued=issued),
        )
        return None
    del environ[LANE_REDEMPTION]
    return payload


@contextmanager
def _autocommit() -> Iterator[Connection | None]:
    """On PostgreSQL, a connection whose statements commit by themselves; None on SQLite.

    A lane grant's one write there is one statement (:func:`tokens.rotate_if_usable`,
    :func:`tokens.read_person_adding_family`), so it needs no transaction, and without one
    there is no ``BEGIN`` or ``COMMIT`` to send (issue 4). A Core connection, not the ORM
    session: the session's own bookkeeping was about a tenth of a grant's CPU in the lane
    (bench_grant_steps). SQLite has no data-modifying CTE and keeps the steps and their
    transaction, which cost it no round trip.
    """
    engine = db.engine
    if engine.dialect.name != "postgresql":
        yield None
        return
    with engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def _redeemable(
    record: codes.AuthorizationCode, client: Client, redirect_uri: str | None, verifier: str
) -> bool:
    """Would the full path accept this code from this request? (RFC 6749 §4.1.3: the same
    client, unexpired, the redirect URI repeated when the authorization request sent one;
    RFC 7636 §4.6: S256 of the verifier is the challenge.)"""
    return (
        record.client_id == client.client_id
        and not record.is_expired()
        and (
            redirect_uri == record.redirect_uri
            or (redirect_uri is None and not record.redirect_uri_sent)
        )
        and record.code_challenge_method == "S256"
        and bool(record.code_challenge)
        and hmac.compare_digest(create_s256_code_challenge(verifier), record.code_challenge)
    )


def refresh_token(
    environ: dict[str, Any], form: dict[str, str], client: Client, origin: audit.RequestOrigin
) -> dict[str, Any] | None:
    """Rotate an ordinary refresh token: the token response, or None for the full path."""
    if not client.check_grant_type("refresh_token"):
        return None
    with _autocommit() as connection:
        if connection is not None:
            return _rotate_at_once(connection, form.get("refresh_token") or "", client, origin)
    found = tokens.find_refresh_token(form.get("refresh_token") or "")
    now = utcnow()
    if found is None or found.row.service_id != client.service.id or not found.usable(now):
        return None
    row = found.row
    try:
        user = refresh_user(found, client.service)
    except OAuth2Error:
        return None
    authn = refresh_authentication(row)
    try:
        payload, issued = _issue(client, user, row.scope, authn, None, row)
    except tokens.RefreshTokenSpent:
        return None  # used meanwhile: nothing was written; the full path finds the reuse
    try:
        _commit(client, user, "refresh_token", payload, issued, authn, origin)
    except Exception as error:
        _take_back(_written(payload, issued), row, error)
        return None  # the token is unused again: the full path rotates it itself
    return payload


def _rotate_at_once(
    connection: Connection, token: str, client: Client, origin: audit.RequestOrigin
) -> dict[str, Any] | None:
    """PostgreSQL: the refresh in one round trip (:func:`tokens.rotate_if_usable` finds,
    checks, claims and replaces the token in one statement, or changes nothing). The write
    comes first here, so everything after it is taken back if it fails."""
    rotated = tokens.rotate_if_usable(connection, token, client.service)
    if rotated is None:
        return None  # nothing changed: the full path answers, and refuses
    row, user = rotated.parent, cast(User, rotated.account)
    try:
        authn = refresh_authentication(row, rotated.organisation_public_id)
        payload, issued = _sign(client, user, row.scope, authn, None, rotated.successor)
        _commit(client, user, "refresh_token", payload, issued, authn, origin)
    except Exception as error:
        _take_back(rotated.successor, row, error)
        return None  # the token is unused again: the full path rotates it itself
    return payload


def _commit(
    client: Client,
    user: User,
    grant_type: str,
    payload: dict[str, Any],
    issued: codes.Issued,
    authn: tokens.Authentication,
    origin: audit.RequestOrigin,
) -> None:
    """Commit, and record ``oidc.token_issued`` as the full path's ``_save`` does."""
    commit_issued(
        partial(
            record_token_issued,
            client,
            user,
            grant_type,
            payload["scope"],
            issued,
            authn.sid,
            origin,
        )
    )


def _sign(
    client: Client,
    user: User,
    scope: str,
    authn: tokens.Authentication,
    nonce: str | None,
    written: tokens.IssuedRefreshToken,
) -> tuple[dict[str, Any], codes.Issued]:
    """The token response around a refresh token already written (PostgreSQL's one-statement
    forms): the access token, the ID token, and what was issued (for G02)."""
    payload, access = _signed(client, user, scope, authn, nonce)
    payload["refresh_token"] = written.token
    return payload, codes.Issued(access.jti, access.expires_at, written.family_id)


def _signed(
    client: Client, user: User, scope: str, authn: tokens.Authentication, nonce: str | None
) -> tuple[dict[str, Any], tokens.IssuedAccessToken]:
    """The token response so far: the access token and, for ``openid``, the ID token."""
    payload, access = mint_user_access(client, user, scope, authn)
    if is_openid_scope(scope):
        payload["id_token"] = id_token_for(client, user, payload, authn, nonce)
    return payload, access


def _written(payload: dict[str, Any], issued: codes.Issued) -> tokens.IssuedRefreshToken | None:
    token = payload.get("refresh_token")
    if token is None or issued.family_id is None:
        return None
    return tokens.IssuedRefreshToken(token, issued.family_id)


def _issue(
    client: Client,
    user: User,
    scope: str,
    authn: tokens.Authentication,
    nonce: str | None,
    parent: tokens.RefreshTokenRow | None,
) -> tuple[dict[str, Any], codes.Issued]:
    """The token response, every signature made before the one write (the refresh token),
    so that little can fail after it (see :func:`_take_back`)."""
    payload, access = _signed(client, user, scope, authn, nonce)
    family = add_refresh_token(client, user, scope, authn, payload, parent)
    return payload, codes.Issued(access.jti, access.expires_at, family)


def _take_back(
    written: tokens.IssuedRefreshToken | None,
    parent: tokens.RefreshTokenRow | None,
    error: Exception,
) -> None:
    """Undo the grant's one write after a later step failed, so the request can be handed on.

    On PostgreSQL the write committed by itself, and the grant cannot simply go to the full
    path: it would find a rotated refresh token used (reuse: the client's whole family
    revoked for a failure of ours) or the code's tokens written but not noted against the
    code (G02). The refresh token written here was never delivered, so taking it back is
    safe: it is deleted, and a parent it replaced is unused again (only if the delete found
    it: never a token someone else rotated meanwhile). On SQLite the failed commit already
    rolled the write back and there is nothing to delete. Then the full path answers as if
    the lane had not been there. If the taking back fails too, :class:`Unfinished`.
    """
    log.warning("machine lane: taking back a grant after %s", type(error).__name__)
    if written is None:
        return
    try:
        db.session.rollback()
        with transaction():
            tokens.take_back_refresh_token(written.token, parent)
    except Exception as failure:
        raise Unfinished from failure


class Unfinished(Exception):
    """A grant failed after its write and the write could not be taken back either.

    Handed on, the full path would see a rotated refresh token as reuse, or issue a second
    set of tokens for one code, so the lane answers 503 ``temporarily_unavailable`` itself
    (:mod:`idp.oidc.machine_lane`): a JSON OAuth error with ``Retry-After``, where the full
    path's own answer to a failing database is its generic 503 error page.
    """
