"""The end-session endpoint ``/logout``: OpenID Connect RP-Initiated Logout 1.0.

Implements RP-Initiated Logout 1.0 (RPIL) §2 (the request: ``id_token_hint``, ``client_id``,
``post_logout_redirect_uri``, ``state``, ``ui_locales``, by GET or form POST), §3 (redirect
only to an exactly registered ``post_logout_redirect_uri``, with ``state``), §4 (no redirect
after an error) and §6 (confirmation against forced logout), and from security-requirements.md:

- **I01**: the hint must be one of *our* ID Tokens: signature checked with our published keys
  and an explicit algorithm allow-list (:meth:`KeyRing.decode_own_token`, L02), the header
  ``alg`` equal to the service's ``id_token_signed_response_alg``, ``typ`` absent or ``JWT``
  (so a Logout Token or an access token is not an ID Token), ``iss`` our issuer, and ``sub``
  and a single ``aud`` present. An expired ``exp`` is accepted (RPIL §2). When ``client_id``
  is given too it must equal the hint's ``aud``.
- **I02**: ``post_logout_redirect_uri`` is followed only when it is byte-for-byte one of those
  registered for the service named by the valid hint, and never without a valid hint. A query
  added to a registered URI is a different URI. ``state`` is appended to the redirect.
- **I03** / RPIL §6 / ASVS 10.6.2: without a valid hint (missing, forged, signed by another
  key, ``alg: none``, or naming someone other than the person signed in here) nothing happens
  until the person confirms on our page, by a form with a CSRF token (E07); the request of a
  relying service itself needs none, so only ``end_session`` is CSRF-exempt. After a
  confirmation without a valid hint we never redirect.
- **I01 Also**: signing out ends the SSO session in Redis, so a later ``prompt=none`` at
  /authorize gets ``login_required``; :data:`idp.services.events.sessions_ended` (reason
  ``rp_initiated``) makes :mod:`idp.oidc.backchannel` queue Logout Tokens for every service in
  the session, the initiating one included, and revoke the session's refresh tokens.
- **L02 Also**: requests over :data:`MAX_REQUEST_BYTES`, and parameters over their limits, are
  refused before any JOSE parsing.
- **E08**: our usual headers (no framing, ``no-store``) apply to every answer here.

We do not use ``authlib.oidc.rpinitiated.EndSessionEndpoint``: it needs a registered
AuthorizationServer (owned by the token endpoint's module), decodes with joserfc's default
registry rather than our key ring's allow-list, does not check ``iss``, raises on a
``client_id`` mismatch where we show our page, and redirects with 302. The rules above are the
same ones, applied in about a page. ``ui_locales`` is accepted and has no effect: our pages
are in en-GB only (discovery's ``ui_locales_supported``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, abort, make_response, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from joserfc.errors import JoseError
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import HiddenField

from idp.auth import flow
from idp.auth.sso_cookie import clear_cookie, current_cookie_value, current_sso_session
from idp.extensions import db
from idp.models.service import Service, ServiceStatus
from idp.oidc.discovery import END_SESSION_PATH, get_issuer
from idp.oidc.keys import get_keyring
from idp.services.clients import find_service
from idp.services.session_endings import record_sessions_ended
from idp.services.sso_sessions import SsoSession, get_sso_sessions
from idp.services.transaction import transaction

log = logging.getLogger(__name__)

bp = Blueprint("oidc_logout", __name__)

#: L02 Also: a logout request's body or query string is never bigger than this.
MAX_REQUEST_BYTES: Final = 16_384
#: Longest accepted value of each parameter (an ID Token of ours is about 1 KB).
PARAM_LIMITS: Final[Mapping[str, int]] = {
    "id_token_hint": 8_192,
    "client_id": 64,
    "post_logout_redirect_uri": 2_000,
    "state": 1_024,
    "ui_locales": 64,
}
PARAMS: Final = tuple(PARAM_LIMITS)


@dataclass
class LogoutRequest:
    """A checked logout request: what it proves, and where (if anywhere) to go afterwards."""

    params: dict[str, str]
    #: The hint's claims when it is a valid ID Token of ours for the named client (I01).
    hint: dict[str, Any] | None = None
    #: The service the request names (by a valid hint, or by ``client_id`` alone).
    client_id: str | None = None
    #: Where to send the browser afterwards (I02): set only with a valid hint.
    redirect_uri: str | None = None
    #: Why the hint or the redirect was not accepted (for the log; never shown).
    problems: list[str] = field(default_factory=list)

    def names(self, session: SsoSession) -> bool:
        """The valid hint is about this very session's user (and session, when it says)."""
        if self.hint is None or self.hint.get("sub") != session.sub:
            return False
        sid = self.hint.get("sid")
        return sid is None or sid == session.sid


class LogoutConfirmForm(FlaskForm):  # type: ignore[misc]  # Flask-WTF ships no types
    """The confirmation page's form: the relying service's parameters, carried as they came,
    and checked again when it is posted. Its CSRF token is what makes the POST a choice (E07)."""

    id_token_hint = HiddenField()
    client_id = HiddenField()
    post_logout_redirect_uri = HiddenField()
    state = HiddenField()
    ui_locales = HiddenField()


# -- checking a request --------------------------------------------------------------------


def validate_logout_request(params: Mapping[str, str]) -> LogoutRequest:
    """Check a logout request's parameters (RPIL §2-§4). Never raises for bad input."""
    values = {name: params.get(name, "") or "" for name in PARAMS}
    checked = LogoutRequest(params={k: v for k, v in values.items() if v})
    too_long = [name for name in PARAMS if len(values[name]) > PARAM_LIMITS[name]]
    if too_long:
        checked.problems.append(f"too long: {', '.join(too_long)}")
        return checked
    client_id = values["client_id"] or None
    checked.client_id = client_id
    if values["id_token_hint"]:
        claims, service, problem = _check_hint(values["id_token_hint"])
        if problem is not None:
            checked.problems.append(problem)
        elif client_id is not None and client_id != claims["aud"]:
            # RPIL §2: "the OP MUST verify that the Client Identifier matches" the hint's aud.
            checked.problems.append("client_id does not match the hint's aud")
        else:
            checked.hint, checked.client_id = claims, claims["aud"]
            checked.redirect_uri = _redirect_for(service, values, checked.problems)
    elif values["post_logout_redirect_uri"]:
        checked.problems.append("no id_token_hint: post_logout_redirect_uri not followed")
    return checked


def _check_hint(hint: str) -> tuple[dict[str, Any], Service | None, str | None]:
    """The hint's claims and service if it is an ID Token we issued (I01), else a problem."""
    try:
        token = get_keyring().decode_own_token(hint)
    except (JoseError, ValueError, TypeError, KeyError) as error:
        return {}, None, f"id_token_hint not verified ({type(error).__name__})"
    claims, header = dict(token.claims), token.header
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if header.get("typ", "JWT") != "JWT" or "events" in claims:
        return {}, None, "id_token_hint is not an ID Token"
    if claims.get("iss") != get_issuer():
        return {}, None, "id_token_hint was issued by someone else"
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        return {}, None, "id_token_hint has no sub"
    if not isinstance(aud, str) or not aud:
        return {}, None, "id_token_hint has no single aud"
    service = find_service(aud, active_only=False)
    if service is None:
        return {}, None, "id_token_hint names an unknown service"
    if header.get("alg") != service.id_token_signed_response_alg:
        return {}, None, "id_token_hint is not signed the way that service's ID Tokens are"
    claims["aud"] = aud
    return claims, service, None


def _redirect_for(
    service: Service | None, values: Mapping[str, str], problems: list[str]
) -> str | None:
    """RPIL §3 / I02: the registered URI (byte-equal) with ``state`` added, or None."""
    uri = values["post_logout_redirect_uri"]
    if not uri or service is None:
        return None
    if service.status is not ServiceStatus.ACTIVE:
        problems.append("the service is disabled: not redirecting")
        return None
    if uri not in (service.post_logout_redirect_uris or []):
        problems.append("post_logout_redirect_uri is not registered for the service")
        return None
    return with_state(uri, values["state"])


def with_state(uri: str, state: str) -> str:
    """``uri`` with ``state`` added to its query (RPIL §3), keeping any query it has."""
    if not state:
        return uri
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode({"state": state})) if q)
    return urlunsplit(parts._replace(query=query))


# -- signing out ---------------------------------------------------------------------------


def sign_out(client_id: str | None) -> SsoSession | None:
    """End this browser's SSO session and announce it; return the session that ended.

    Back-channel logout and refresh-token revocation follow from the announcement, inside the
    same unit of work as the audit row (I04, I05: nothing here waits for a relying service).
    """
    cookie = current_cookie_value()
    ended = get_sso_sessions().end(cookie) if cookie else None
    if ended is not None:
        with transaction():
            record_sessions_ended(
                ended.sub,
                [ended],
                actor=ended.sub,
                event="sign_out",
                how="rp_initiated",
                reason="rp_initiated",
            )
        log.info("rp-initiated logout of session %s (service %s)", ended.sid, client_id or "-")
    flow.discard()
    return ended


def _finish(checked: LogoutRequest, *, follow_redirect: bool) -> Response:
    """The answer after signing out: the service's page (303, RPIL §3) or ours."""
    if follow_redirect and checked.redirect_uri:
        response: Response = redirect(checked.redirect_uri, 303)
    else:
        response = make_response(
            render_template("oidc/logout_done.html", title="You have signed out")
        )
    clear_cookie(response)
    return response


def _service_names(session: SsoSession) -> list[str]:
    if not session.services:
        return []
    names = db.session.scalars(
        select(Service.name).where(Service.client_id.in_(session.services)).order_by(Service.name)
    )
    return list(names)


def _log_problems(checked: LogoutRequest) -> None:
    if checked.problems:
        # The hint itself is never logged: it is a bearer of someone's identity.
        log.info("logout request not trusted: %s", "; ".join(checked.problems))


def _refuse_oversized() -> None:
    """L02 Also: refuse big requests before anything parses the hint."""
    if (request.content_length or 0) > MAX_REQUEST_BYTES or len(
        request.query_string
    ) > MAX_REQUEST_BYTES:
        abort(413)


# -- the views -------------------------------------------------------------------------------


@bp.route(END_SESSION_PATH, methods=["GET", "POST"])
def end_session() -> ResponseReturnValue:
    """RPIL §2: a relying service sends the browser here, by GET or by a form POST.

    CSRF-exempt (the relying service's form cannot carry our token); it acts at once only on
    a valid hint for the person signed in here, and otherwise asks them.
    """
    _refuse_oversized()
    source = request.form if request.method == "POST" else request.args
    checked = validate_logout_request({name: source.get(name, "") for name in PARAMS})
    _log_problems(checked)
    session = current_sso_session()
    if session is None:
        # Nothing to end here. With a valid hint the service may still have its redirect.
        flow.discard()
        return _finish(checked, follow_redirect=True)
    if checked.names(session):
        sign_out(checked.client_id)
        return _finish(checked, follow_redirect=True)
    form = LogoutConfirmForm(formdata=None, data=checked.params)
    return render_template(
        "oidc/logout_confirm.html",
        form=form,
        services=_service_names(session),
        title="Sign out of Secure Access?",
    )


@bp.post(END_SESSION_PATH + "/confirm")
def confirm() -> ResponseReturnValue:
    """The person chose to sign out (RPIL §6). CSRF-protected (E07).

    The parameters are checked again; we redirect only if they hold a valid hint (a hint for
    a different session of the same or another user), never for a request without one (I03).
    """
    _refuse_oversized()
    form = LogoutConfirmForm()
    if not form.validate_on_submit():  # only the CSRF token can fail
        abort(400)
    checked = validate_logout_request({name: getattr(form, name).data or "" for name in PARAMS})
    _log_problems(checked)
    sign_out(checked.client_id)
    return _finish(checked, follow_redirect=checked.hint is not None)
