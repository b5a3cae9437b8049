"""Back-channel logout: tell every relying service in an ended SSO session, through the outbox.

Implements OpenID Connect Back-Channel Logout 1.0 (BCL) §2.5 (the OP sends the Logout Token
by HTTP POST, form-encoded, ``logout_token`` only), §2.8 (the RP answers 200, or 400 for a bad
request) and §2.7's refresh-token rule (BCL final, errata set 1: refresh tokens issued
*without* ``offline_access`` to a session being logged out SHOULD be revoked; ``offline_access``
ones normally SHOULD NOT), and from security-requirements.md:

- **I04**: for every service with a ``backchannel_logout_uri`` that took part in the session
  (``SsoSession.services``, recorded by the authorization endpoint), a Logout Token goes out on
  sign-out, RP-initiated logout, "sign out everywhere", ending one device, password change or
  reset, account disable and helpdesk termination (each announces
  :data:`idp.services.events.sessions_ended`), and on session expiry
  (:func:`end_expired_sessions`, run by the worker). The initiating service of an
  RP-initiated logout is included: BCL does not exempt it, it may hold the session in more
  than one place (other devices' tabs, other instances), and the conformance module
  ``oidcc-backchannel-rp-initiated-logout`` expects exactly that POST.
- **I05**: the user's request only adds outbox rows to its own unit of work (they commit with
  the sign-out or not at all). The worker posts each one with a per-call timeout
  (``backchannel_timeout_seconds``); a 5xx, 408, 425, 429, a timeout or a connection failure is
  retried with the outbox's growing delays, any other answer that is not 200/204 is given up at
  once. Each outcome is audited by the outbox as ``backchannel_logout.sent`` or
  ``backchannel_logout.failed`` with the client_id as the target (K03).
- **K03**: no token reaches a log, ``last_error`` or the audit trail: the errors below name the
  HTTP status or the kind of network failure, never the request or the service's reply.

The Logout Token is built when it is sent (:mod:`idp.oidc.logout_tokens`), so a retry hours
later still carries a fresh ``iat``/``exp`` and a new ``jti``. The outbox row holds only the
``sub``, ``sid``, the URI at the time and the reason (encrypted at rest); the worker posts to
the URI the service has registered *now*, so a service that moved its endpoint still hears.
Disabled services are still told: ending a session is always safe.
"""

from __future__ import annotations

import importlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol

import requests
from flask import Flask, current_app
from sqlalchemy import select

from idp.config import Settings
from idp.extensions import db
from idp.models.outbox import OutboxKind, OutboxMessage
from idp.models.service import Service
from idp.oidc.logout_tokens import build_logout_token
from idp.services import audit, events, outbox
from idp.services.clients import find_service
from idp.services.outbox import DeliveryError, PermanentDeliveryError
from idp.services.sso_sessions import SsoSession, get_sso_sessions
from idp.services.transaction import transaction
from idp.store import get_store

log = logging.getLogger(__name__)

#: The outbox row's ``template``: what kind of message it is.
TEMPLATE: Final = "backchannel_logout"
#: Statuses meaning "the service ended the session" (BCL §2.8 says 200; 204 is accepted too).
DELIVERED: Final = frozenset({200, 204})
#: Statuses worth retrying besides 5xx: the service is busy or timed out, not refusing.
RETRYABLE: Final = frozenset({408, 425, 429})
USER_AGENT: Final = "SecureAccess-BackchannelLogout/1"
#: How many expired sessions one housekeeping pass ends at most.
EXPIRY_BATCH: Final = 200
#: One worker at a time ends expired sessions (two would queue the same tokens twice).
EXPIRY_LOCK_KEY: Final = "idp:oidc:backchannel:expiry-lock"
EXPIRY_LOCK_SECONDS: Final = 120
# Delete the lock only if it is still ours (it may have expired and been taken by another).
_RELEASE_LOCK: Final = """
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
"""


def init_app(app: Flask) -> None:
    """Listen for ended sessions and register the outbox handler that sends Logout Tokens.

    Both are process-wide (the signal and the handler table are module state); the receiver
    is connected once however many apps are built.
    """
    events.sessions_ended.connect(_on_sessions_ended)
    outbox.register_handler(
        OutboxKind.BACKCHANNEL_LOGOUT,
        deliver,
        audit_prefix="backchannel_logout",
        audit_target=lambda client_id: client_id,  # a client_id is not personal data
    )
    app.extensions["backchannel_logout"] = True


# -- queueing (in the request, inside the caller's unit of work) ------------------------------


def _on_sessions_ended(sender: str, **kwargs: Any) -> None:
    sessions: Sequence[SsoSession] = kwargs.get("sessions") or []
    queue_logout(sessions, reason=str(kwargs.get("reason") or "ended"))


def queue_logout(sessions: Iterable[SsoSession], *, reason: str) -> list[OutboxMessage]:
    """Queue one Logout Token per (ended session, service with a back-channel URI) (I04).

    Also revokes each session's refresh tokens that lack ``offline_access`` (BCL §2.7).
    Adds to the caller's unit of work and returns the queued rows; never contacts a service.
    """
    ended = [s for s in sessions if s is not None]
    if not ended:
        return []
    client_ids = sorted({client_id for s in ended for client_id in s.services})
    uris: dict[str, str] = {}
    if client_ids:
        rows = db.session.execute(
            select(Service.client_id, Service.backchannel_logout_uri).where(
                Service.client_id.in_(client_ids), Service.backchannel_logout_uri.is_not(None)
            )
        ).all()
        uris = {row.client_id: row.backchannel_logout_uri for row in rows}
    queued: list[OutboxMessage] = []
    for session in ended:
        for client_id in dict.fromkeys(session.services):
            uri = uris.get(client_id)
            if uri is None:
                continue
            payload = {"sub": session.sub, "sid": session.sid, "uri": uri, "reason": reason}
            queued.append(
                outbox.enqueue(OutboxKind.BACKCHANNEL_LOGOUT, client_id, TEMPLATE, payload)
            )
        _revoke_session_refresh_tokens(session.sid)
    if queued:
        log.info("back-channel logout queued for %d service(s) (%s)", len(queued), reason)
    return queued


def _revoke_session_refresh_tokens(sid: str) -> None:
    """BCL §2.7 / I04 Also: the OIDC core's ``revoke_for_session`` revokes the non-offline ones.

    Imported when needed: :mod:`idp.oidc.tokens` belongs to the token endpoint.
    """
    try:
        tokens = importlib.import_module("idp.oidc.tokens")
    except ModuleNotFoundError as missing:
        if missing.name != "idp.oidc.tokens":
            raise
        # TODO: idp.oidc.tokens is not there yet; refresh tokens are not revoked at logout.
        log.debug("idp.oidc.tokens is not available: refresh tokens of %s kept", sid)
        return
    revoke = getattr(tokens, "revoke_for_session", None)
    if revoke is None:
        # TODO: remove once idp.oidc.tokens.revoke_for_session(sid) exists.
        log.debug("idp.oidc.tokens has no revoke_for_session: refresh tokens of %s kept", sid)
        return
    revoke(sid)


# -- sending (in the worker) -----------------------------------------------------------------


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def deliver(row: OutboxMessage) -> None:
    """The outbox handler: build a fresh Logout Token and POST it to the service (BCL §2.5).

    Returns when the service answered 200 or 204. Raises :class:`PermanentDeliveryError` when
    retrying cannot help (the service is gone, has no URI any more, or refused the token) and
    :class:`DeliveryError` otherwise, so the outbox retries with its delays.
    """
    data = outbox.payload_of(row)
    service = find_service(row.recipient, active_only=False)
    if service is None:
        raise PermanentDeliveryError("the service is no longer registered")
    uri = service.backchannel_logout_uri
    if not uri:
        raise PermanentDeliveryError("the service no longer has a back-channel logout URI")
    token = build_logout_token(
        service.client_id,
        sub=str(data["sub"]),
        sid=str(data["sid"]),
        alg=service.id_token_signed_response_alg,
    )
    post_logout_token(uri, token, timeout=_settings().backchannel_timeout_seconds)


def post_logout_token(uri: str, token: str, *, timeout: float) -> int:
    """POST ``logout_token=<token>`` form-encoded to ``uri`` and classify the answer (BCL §2.5).

    ``timeout`` bounds the connection and each read. Redirects are not followed (the
    registered URI must answer itself) and the reply's body is never read or logged.
    Returns the status on success.
    """
    try:
        response = requests.post(
            uri,
            data={"logout_token": token},
            headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout:
        raise DeliveryError(f"no answer within {timeout:g}s") from None
    except requests.ConnectionError:
        raise DeliveryError("could not connect to the back-channel logout URI") from None
    except requests.RequestException as error:
        raise DeliveryError(f"request failed ({type(error).__name__})") from None
    with response:
        status = response.status_code
    if status in DELIVERED:
        return status
    if status >= 500 or status in RETRYABLE:
        raise DeliveryError(f"the service answered HTTP {status}")
    # BCL §2.8: 400 means the service rejected the token; a fresh one would fare no better.
    raise PermanentDeliveryError(f"the service answered HTTP {status}")


# -- session expiry (in the worker) ----------------------------------------------------------


class ExpiredSessionSource(Protocol):
    """What the SSO session store offers for expiry-triggered back-channel logout (I04).

    Sessions expire silently in Redis, so the store keeps an index of expiry times and keeps
    an expired record a little past its expiry for this sweep (see docs/logout.md).
    """

    def expired_sessions(self, *, limit: int) -> list[tuple[str, SsoSession]]:
        """Up to ``limit`` sessions whose idle or absolute lifetime has passed and that no one
        has ended yet, each with an opaque handle, oldest expiry first. Changes nothing."""
        ...

    def forget_expired(self, handles: Sequence[str]) -> int:
        """Delete those sessions (only if still expired) and their index entries."""
        ...


def end_expired_sessions(
    source: ExpiredSessionSource | None = None, *, limit: int = EXPIRY_BATCH
) -> int:
    """Announce sessions that expired since the last pass, so their services hear (I04).

    Two phases, so nothing is lost: the outbox rows (and an audit row per user) commit first,
    and only then are the sessions forgotten. A crash in between makes the next pass queue the
    same tokens again, which is harmless (a repeated logout of an ended session). A Redis lock
    keeps two workers from doing the same pass at once. Returns how many sessions ended.
    """
    store = source if source is not None else get_sso_sessions()
    if not hasattr(store, "expired_sessions") or not hasattr(store, "forget_expired"):
        # TODO: idp.services.sso_sessions does not index expiry yet (see docs/logout.md).
        return 0
    token = secrets.token_hex(8)
    kv = get_store()
    if not kv.set(EXPIRY_LOCK_KEY, token, nx=True, ex=EXPIRY_LOCK_SECONDS):
        return 0
    try:
        found = store.expired_sessions(limit=limit)
        if not found:
            return 0
        by_user: dict[str, list[SsoSession]] = defaultdict(list)
        for _, session in found:
            by_user[session.sub].append(session)
        with transaction():
            for sub, sessions in by_user.items():
                audit.record(
                    "sessions.expired",
                    actor="system",
                    target=sub,
                    target_type="user",
                    count=len(sessions),
                )
                events.sessions_ended.send(sub, sessions=sessions, reason="expired")
        store.forget_expired([handle for handle, _ in found])
        return len(found)
    finally:
        kv.eval(_RELEASE_LOCK, 1, EXPIRY_LOCK_KEY, token)
