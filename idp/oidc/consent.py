"""The consent page: a step of the authorization request for services that are not first-party.

Security requirement F11 (ASVS 10.7.1-10.7.3): the consent step is shown for any client not
marked first-party, and people can view and withdraw what they allowed
(:mod:`idp.account.allowed_services`). :mod:`idp.oidc.endpoints` decides when to ask (a scope
never allowed, or ``prompt=consent``; never with ``prompt=none``, which gets
``consent_required``, OIDC Core §3.1.2.6) and sends the browser here with the request waiting
in its hand-off, exactly as the choose-organisation step does (:mod:`idp.oidc.choose_organisation`).

The page names the service and says in plain English what each scope lets it see
(:data:`idp.services.consents.SCOPE_ABILITIES`), with two buttons in one CSRF-protected form
(E07: this blueprint keeps CSRF, unlike ``/authorize`` itself):

- **Allow** records the consent (:func:`idp.services.consents.grant`) and marks the hand-off as
  allowed by this person, then resumes the request, which is validated again from scratch.
- **Do not allow** audits ``consent.refused`` and marks the hand-off refused; resuming sends the
  client ``access_denied`` with ``state`` and ``iss`` (RFC 6749 §4.1.2.1; RFC 9207).

The answer is bound to the SSO session that was asked: if the browser's session changed since
(signed out, someone else signed in), the request resumes and asks that session afresh. Like
every page it is sent with ``frame-ancestors 'none'`` (E08, :mod:`idp.web.headers`), so it
cannot be clickjacked.

Withdrawing a consent must stop the service reading on with a refresh token (ASVS 10.7.3;
G05 Also): this module also revokes the person's refresh tokens at that service
(:func:`idp.oidc.tokens.revoke_for_user_at_service`) and ends the access tokens issued to it
until then (:func:`idp.oidc.tokens.end_consent_tokens`), when
:data:`idp.services.events.consent_withdrawn` is announced.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import AnyOf

from idp.auth.sso_cookie import current_sso_session
from idp.extensions import db
from idp.models import Service
from idp.oidc import tokens
from idp.oidc.handoff import error_page, load_handoff, save_handoff
from idp.services import consents, events, users
from idp.services.clients import find_service
from idp.services.transaction import transaction

bp = Blueprint("consent", __name__)

ALLOW = "allow"
REFUSE = "refuse"


@bp.record_once
def _setup(state: Any) -> None:
    events.consent_withdrawn.connect(_end_tokens)


class ConsentForm(FlaskForm):  # type: ignore[misc]  # Flask-WTF is untyped
    """Only the CSRF token and which of the two buttons was pressed."""

    decision = StringField(validators=[AnyOf((ALLOW, REFUSE), "Choose Allow or Do not allow")])


@bp.route("/authorize/consent/<handoff_id>", methods=["GET", "POST"])
def ask(handoff_id: str) -> ResponseReturnValue:
    """What the service will be able to see, with "Allow" and "Do not allow"."""
    handoff = load_handoff(handoff_id)
    if handoff is None:
        return error_page("expired")
    client_id = (handoff.params.get("client_id") or [""])[0]
    service = find_service(client_id)
    if service is None:
        return error_page("client")
    sso = current_sso_session()
    user = users.find_by_sub(sso.sub) if sso is not None else None
    if (
        sso is None
        or user is None
        or sso.sid != handoff.prior_sid  # asked of another session: ask this one afresh
        or not handoff.consent_scopes
        or service.first_party
    ):
        # Resuming re-validates everything and sends the browser wherever it should be.
        return redirect(url_for("oidc.resume", handoff_id=handoff.id), 303)
    scopes = handoff.consent_scopes
    form = ConsentForm()
    if form.validate_on_submit():
        with transaction():
            if form.decision.data == ALLOW:
                consents.grant(user, service, scopes)
                handoff.consented_by, handoff.refused_by = user.sub, None
            else:
                consents.record_refusal(user, service, scopes)
                handoff.consented_by, handoff.refused_by = None, user.sub
        save_handoff(handoff)
        return redirect(url_for("oidc.resume", handoff_id=handoff.id), 303)
    return (
        render_template(
            "oidc/consent.html",
            title=f"Allow {service.name} to use your Secure Access account?",
            form=form,
            service=service,
            user=user,
            abilities=consents.abilities(scopes, service.name),
            asked_before=bool(consents.granted_scopes(user, service)),
        ),
        400 if form.errors else 200,
    )


def _end_tokens(sender: str, *, user_id: int, service_id: int, **_: Any) -> None:
    """The person withdrew consent: their tokens at that service stop working.

    Refresh tokens, offline ones too (they are the point of withdrawing), in the withdrawal's
    unit of work, so the consent and the tokens go together or not at all; and access tokens
    issued until now, at UserInfo and introspection (``sender`` is the person's ``sub``).
    """
    tokens.revoke_for_user_at_service(user_id, service_id)
    service = db.session.get(Service, service_id)
    if service is not None:
        tokens.end_consent_tokens(sender, service.client_id)
