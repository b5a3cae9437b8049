"""The protocol endpoints: ``/authorize``, ``/token``, ``/userinfo``, ``/revoke``, ``/introspect``.

Each view is thin: the rules live in :mod:`idp.oidc.server` and the views return
``authorization.create_*_response()`` (CONVENTIONS 6). What the views own is the part of the
authorization endpoint that meets the browser (OpenID Connect Core 1.0 §3.1.2.3, §3.1.2.6):

- **Errors before the client and redirect URI are validated** (unknown client, missing,
  duplicated or unregistered ``redirect_uri``) show our own error page with status 400 and no
  redirect, whatever else is wrong with the request (RFC 6749 §4.1.2.1; F01, V1, V2). Every
  later error redirects to the validated URI with ``error``, ``state`` and ``iss`` (RFC 9207).
- **prompt** (§3.1.2.1; F06, F07): ``none`` never shows a page: no live session, a session
  that is too old or for someone else gives ``login_required``, a missing second factor
  ``interaction_required``. ``login`` always reauthenticates. ``select_account`` is treated as
  ``login`` (one account per browser session; choosing another means signing in again).
  ``consent`` asks again on the consent page (below) for a service that is not first-party, and
  is satisfied without a page for first-party ones: they are trusted by policy (F11 asks
  consent of "any client not marked first-party").
- **max_age** (§3.1.2.1; F08): older than that since the last authentication means
  reauthentication; ``max_age=0`` is ``prompt=login``. ``auth_time`` is always in the ID token.
- **acr_values** / per-service MFA (§3.1.2.1, §5.5.1.1): when the request asks for
  :data:`~idp.oidc.discovery.ACR_MFA` or the service requires MFA and the session's ``amr``
  lacks ``mfa``, the browser is sent to a step-up sign-in (:func:`idp.auth.flow.start_step_up`)
  that keeps the session's ``sid``. If it comes back still without ``mfa``, ``access_denied``.
- **id_token_hint** (§3.1.2.1): a hint for someone other than the signed-in person makes them
  sign in again (or ``login_required`` with ``prompt=none``); a hint we did not issue to this
  client is ``invalid_request``.
- **login_hint**: pre-fills the email address on the sign-in page.

**Choose organisation, then the access check** (issue 7; DESIGN §4). These are steps of the
*authorization request*, not of the sign-in (:mod:`idp.auth.flow` authenticates the person
once per SSO session; the organisation and access questions recur for every service, even for
someone already signed in). After authentication and MFA:

- When the request's scopes include ``organisation`` or ``roles`` and the person belongs to
  several organisations, they choose one on :mod:`idp.oidc.choose_organisation` (the request
  waits in a hand-off, as for sign-in). The choice goes into the code and so into the ID
  token, userinfo and refresh tokens. One organisation: not asked. The choice is remembered
  per SSO session and service (:mod:`idp.services.organisation_choice`), so a silent
  re-authorization reuses it; ``prompt=select_account`` asks again; ``prompt=none`` with no
  remembered choice is ``interaction_required`` (OIDC Core §3.1.2.6).
- Then :func:`idp.services.access.has_access` for the chosen organisation (or any, when none
  was needed). Without access the browser gets the no-access page (403): which service, which
  organisation, who the approvers are, and a "Request access" form. With ``prompt=none`` the
  client gets ``access_denied`` instead (RFC 6749 §4.1.2.1).

**Consent** (F11; OIDC Core §3.1.2.4), last, so only people who may use the service are asked
what it may know. A service that is not first-party needs the person's consent
(:mod:`idp.services.consents`) to every scope of the request. Missing, or ``prompt=consent``:
the request waits in the hand-off and the browser goes to :mod:`idp.oidc.consent`, which names
the service and what each scope lets it see. "Allow" records the consent, marks the hand-off as
allowed by that person (so ``prompt=consent`` does not ask again in a loop) and resumes; "Do
not allow" marks it refused, and resuming sends ``access_denied`` to the client (RFC 6749
§4.1.2.1). With ``prompt=none`` the client gets ``consent_required`` (§3.1.2.6).

``redirect_uri`` may be left out when the service registered exactly one (RFC 6749 §3.1.2.3;
OIDC Core §3.1.3.2 lets the token endpoint proceed without it then); with several it is
required (F01 Also).

Hand-off and resume: when the person must sign in (again), the validated request is stored in
Redis for 10 minutes under a random id and the sign-in journey returns to
``/authorize/resume/<id>``, so GET and POST requests resume the same way. Resuming re-validates
everything, as if the request had just arrived. A completed reauthentication is recognised by
the session having changed (a new ``sid`` or a later ``auth_time``) since the hand-off.

Redirects after a POST use 303 (RFC 9700 §4.12; F10 Also). After a code is issued the SSO
session records the service, so back-channel logout knows whom to tell.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidClientError,
    InvalidRequestError,
)
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    InteractionRequiredError,
    LoginRequiredError,
)
from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from idp.account.services import RequestAccessForm
from idp.auth import flow
from idp.auth.sso_cookie import current_cookie_value, current_sso_session
from idp.models import Organisation, User, UserStatus
from idp.oidc import server
from idp.oidc.discovery import (
    ACR_MFA,
    AUTHORIZATION_PATH,
    INTROSPECTION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)
from idp.oidc.handoff import (
    HandOff,
    error_page,
    forget_handoff,
    load_handoff,
    save_handoff,
)
from idp.oidc.server import (
    AUTHORIZATION_PARAMETERS,
    BearerError,
    authorization,
    authorization_request,
    hint_subject,
    oversized_authorization_header,
)
from idp.services import access, access_requests, audit, consents, organisation_choice, users
from idp.services.sso_sessions import SessionNotFound, SsoSession, get_sso_sessions
from idp.services.transaction import transaction
from idp.web.errors import render_error

bp = Blueprint("oidc", __name__)

#: Endpoints machines call: errors there are JSON, never an HTML page.
MACHINE_PATHS: Final = frozenset({TOKEN_PATH, USERINFO_PATH, REVOCATION_PATH, INTROSPECTION_PATH})


@bp.record_once
def _setup(state: Any) -> None:
    app: Flask = state.app
    server.init_app(app)


# -- the authorization endpoint ---------------------------------------------------------------


@bp.route(AUTHORIZATION_PATH, methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    """OIDC Core §3.1.2.1: GET with a query, or POST with a form (``oidcc-ensure-post-...``)."""
    return _authorize(dict(request.values.lists()), None)


@bp.get(AUTHORIZATION_PATH + "/resume/<handoff_id>")
def resume(handoff_id: str) -> ResponseReturnValue:
    """Where the sign-in journey returns: the stored request, re-validated from scratch."""
    handoff = load_handoff(handoff_id)
    if handoff is None:
        return error_page("expired")
    return _authorize(handoff.params, handoff)


def _signed_in() -> tuple[SsoSession | None, User | None]:
    sso = current_sso_session()
    if sso is None:
        return None, None
    user = users.find_by_sub(sso.sub)
    if user is None or user.status is not UserStatus.ACTIVE:
        return sso, None  # a deactivated person never gets a code
    return sso, user


def _authorize(params: Mapping[str, Sequence[str]], handoff: HandOff | None) -> ResponseReturnValue:
    oauth_request = authorization_request(params)
    sso, user = _signed_in()
    try:
        grant = authorization.get_consent_grant(oauth_request, end_user=user)
    except OAuth2Error as error:
        if not error.redirect_uri:
            return error_page("client" if isinstance(error, InvalidClientError) else "redirect")
        return _respond(authorization.handle_error_response(oauth_request, error))

    data = oauth_request.payload.data
    service = grant.client.service
    prompts = set(data.get("prompt", "").split())
    silent = "none" in prompts

    def refuse(error_class: type[OAuth2Error], description: str) -> ResponseReturnValue:
        error = error_class(description, redirect_uri=grant.redirect_uri, state=data.get("state"))
        return _respond(authorization.handle_error_response(oauth_request, error))

    reauthenticated = handoff is not None and handoff.reauthenticated(sso)
    max_age = int(data["max_age"]) if "max_age" in data else None
    wants_login = (
        bool(prompts & {"login", "select_account"})
        or max_age == 0
        or (max_age is not None and sso is not None and time.time() - sso.auth_time > max_age)
    )
    wants_mfa = ACR_MFA in data.get("acr_values", "").split() or service.require_mfa
    client_id = grant.client.client_id
    if sso is None or user is None or (wants_login and not reauthenticated):
        if silent:
            return refuse(LoginRequiredError, "The user must sign in.")
        return _hand_off(params, handoff, sso, client_id, data.get("login_hint"), wants_mfa)
    hinted = hint_subject(data["id_token_hint"], grant.client) if "id_token_hint" in data else None
    if hinted is not None and hinted != user.sub:
        if silent or reauthenticated:
            return refuse(LoginRequiredError, "The user in id_token_hint is not signed in.")
        return _hand_off(params, handoff, sso, client_id, data.get("login_hint"), wants_mfa)
    if wants_mfa and "mfa" not in sso.amr:
        if silent:
            return refuse(InteractionRequiredError, "A second factor is required.")
        if handoff is not None and handoff.step_up:
            return refuse(AccessDeniedError, "A second factor is required for this service.")
        return _step_up(params, handoff, sso, client_id, reauthenticated)

    orgs = [m.organisation for m in access.memberships_of(user)]
    chosen: Organisation | None = orgs[0] if len(orgs) == 1 else None
    scope = grant.client.get_allowed_scope(data.get("scope"))
    if organisation_choice.wants_organisation(scope) and len(orgs) > 1:
        chosen = organisation_choice.find(orgs, handoff.organisation_id if handoff else None)
        if chosen is None and "select_account" not in prompts:
            chosen = organisation_choice.remembered(sso.sid, client_id, orgs)
        if chosen is None:
            if silent:
                return refuse(InteractionRequiredError, "The user must choose an organisation.")
            login_sid = sso.sid if reauthenticated else None
            stored = _store_request(params, handoff, sso, login_sid=login_sid, step_up=False)
            return redirect(url_for("choose_organisation.choose", handoff_id=stored.id), 303)
        organisation_choice.remember(sso.sid, client_id, chosen)
    if not access.has_access(user, service, chosen):
        with transaction():  # a refusal is a security event (K03), committed on its own
            audit.record(
                "oidc.access_refused",
                actor=user.sub,
                target=client_id,
                target_type="service",
                outcome=audit.DENIED,
                organisation=chosen.public_id if chosen is not None else None,
                silent=silent,
            )
        if silent:
            return refuse(AccessDeniedError, "The user has no access to this service.")
        return _no_access(user, service, chosen, orgs)
    if not service.first_party:
        if handoff is not None and handoff.refused_by == user.sub:
            return refuse(AccessDeniedError, "The user did not allow this service.")
        if _consent_needed(handoff, user, service, scope, prompts):
            if silent:
                return refuse(ConsentRequiredError, "The user must allow this service.")
            stored = _store_request(
                params,
                handoff,
                sso,
                login_sid=sso.sid if reauthenticated else None,
                step_up=handoff is not None and handoff.step_up,
                organisation_id=chosen.public_id if chosen is not None else None,
                consent_scopes=scope.split(),
            )
            return redirect(url_for("consent.ask", handoff_id=stored.id), 303)

    oauth_request.sso = sso
    oauth_request.organisation_id = chosen.public_id if chosen is not None else None
    with transaction():
        response = authorization.create_authorization_response(
            oauth_request, grant_user=user, grant=grant
        )
    if oauth_request.code_issued:
        cookie = current_cookie_value()
        try:
            if cookie:
                get_sso_sessions().add_service(cookie, grant.client.client_id)
        except SessionNotFound:
            pass  # the session ended a moment ago; its code dies with nothing to log out
    if handoff is not None:
        forget_handoff(handoff)
    return _respond(response)


def _consent_needed(
    handoff: HandOff | None, user: User, service: Any, scope: str, prompts: set[str]
) -> bool:
    """Must ``user`` be asked to allow ``service`` the space-separated ``scope`` (F11)?

    Yes when a scope was never allowed, and for ``prompt=consent`` unless this very request
    has just been allowed by this person on the consent page (else it would ask forever).
    """
    if not consents.granted_scopes(user, service).issuperset(scope.split()):
        return True
    just_allowed = handoff is not None and handoff.consented_by == user.sub
    return "consent" in prompts and not just_allowed


def _hand_off(
    params: Mapping[str, Sequence[str]],
    handoff: HandOff | None,
    sso: SsoSession | None,
    client_id: str,
    login_hint: str | None,
    require_mfa: bool,
) -> Response:
    """Send the browser to sign in (again), to come back to this request afterwards.

    ``require_mfa`` asks the sign-in journey for a second factor at once (the MFA policy reads
    ``pending.data["require_mfa"]``), saving a step-up round trip afterwards.
    """
    stored = _store_request(params, handoff, sso, login_sid=None, step_up=False)
    pending = flow.start(
        return_to=url_for("oidc.resume", handoff_id=stored.id), client_id=client_id
    )
    if login_hint or require_mfa:
        if login_hint:
            pending.data["login_hint"] = login_hint
        if require_mfa:
            pending.data["require_mfa"] = True
        flow.save(pending)
    return redirect(url_for("auth.sign_in", prompt="login"), 303)


def _step_up(
    params: Mapping[str, Sequence[str]],
    handoff: HandOff | None,
    sso: SsoSession,
    client_id: str,
    reauthenticated: bool,
) -> Response:
    """Send the browser to add a second factor to its session (same sid), then come back."""
    login_sid = sso.sid if reauthenticated else None
    stored = _store_request(params, handoff, sso, login_sid=login_sid, step_up=True)
    flow.start_step_up(
        sso.sub,
        sso.amr,
        return_to=url_for("oidc.resume", handoff_id=stored.id),
        client_id=client_id,
        require_mfa=True,
    )
    return redirect(url_for("auth.finish"), 303)


def _store_request(
    params: Mapping[str, Sequence[str]],
    handoff: HandOff | None,
    sso: SsoSession | None,
    *,
    login_sid: str | None,
    step_up: bool,
    organisation_id: str | None = None,
    consent_scopes: list[str] | None = None,
) -> HandOff:
    """Save the validated request under its hand-off id (a new one if there is none yet).

    ``organisation_id`` and ``consent_scopes`` carry an organisation already chosen and the
    scopes to ask about across the consent page; an answer given before is never carried.
    """
    stored = HandOff(
        id=handoff.id if handoff is not None else secrets.token_urlsafe(16),
        # Only what we read: the request is re-validated from these, and unknown parameters
        # are ignored anyway (OIDC Core §3.1.2.1), so they need not take up room in the store.
        params={k: list(v) for k, v in params.items() if k in AUTHORIZATION_PARAMETERS},
        prior_sid=sso.sid if sso is not None else None,
        prior_auth_time=sso.auth_time if sso is not None else None,
        login_sid=login_sid,
        step_up=step_up,
        organisation_id=organisation_id,
        consent_scopes=consent_scopes,
    )
    save_handoff(stored)
    return stored


def _no_access(
    user: User, service: Any, chosen: Organisation | None, orgs: list[Organisation]
) -> ResponseReturnValue:
    """The no-access page (issue 7): which service, which organisation, why, who approves."""
    shown = [chosen] if chosen is not None else orgs
    form = RequestAccessForm.for_organisations(shown)
    return (
        render_template(
            "oidc/no_access.html",
            title=f"You do not have access to {service.name}",
            service=service,
            chosen=chosen,
            organisations=[
                (org, access.approvers_of(org), access_requests.pending_for(user, org, service))
                for org in shown
            ],
            form=form,
        ),
        403,
    )


def _respond(response: Response) -> Response:
    # RFC 9700 §4.12: a redirect answering a POST is a 303, so the browser does not re-POST.
    if request.method == "POST" and response.status_code == 302:
        response.status_code = 303
    return response


# -- the machine endpoints ----------------------------------------------------------------------


@bp.post(TOKEN_PATH)
def token() -> ResponseReturnValue:
    """RFC 6749 §3.2, §4.1.3, §4.4.2, §6; OIDC Core §3.1.3."""
    if oversized_authorization_header():
        return authorization.handle_error_response(
            None, InvalidRequestError("The Authorization header is too large.")
        )
    with transaction():
        return authorization.create_token_response()


@bp.route(USERINFO_PATH, methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    """OIDC Core §5.3; bearer token per RFC 6750 §2.1 (header) or §2.2 (form body)."""
    if oversized_authorization_header():
        return authorization.handle_error_response(
            None, BearerError("invalid_request", "The Authorization header is too large.", 400)
        )
    return authorization.create_endpoint_response("userinfo")


@bp.post(REVOCATION_PATH)
def revoke() -> ResponseReturnValue:
    """RFC 7009 §2."""
    if oversized_authorization_header():
        return authorization.handle_error_response(
            None, InvalidRequestError("The Authorization header is too large.")
        )
    with transaction():
        return authorization.create_endpoint_response("revocation")


@bp.post(INTROSPECTION_PATH)
def introspect() -> ResponseReturnValue:
    """RFC 7662 §2."""
    if oversized_authorization_header():
        return authorization.handle_error_response(
            None, InvalidRequestError("The Authorization header is too large.")
        )
    with transaction():
        return authorization.create_endpoint_response("introspection")


@bp.errorhandler(413)
def too_large(error: HTTPException) -> ResponseReturnValue:
    """L02: a body over the app's limit, refused before parsing: JSON at machine endpoints."""
    if request.path in MACHINE_PATHS:
        return authorization.handle_error_response(
            None, InvalidRequestError("The request is too large.", status_code=413)
        )
    return render_error(error)
