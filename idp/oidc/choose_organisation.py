"""Choose organisation: a step of the authorization request, not of the sign-in.

DESIGN §4 and issue 7: when a service asks for the ``organisation`` or ``roles`` scope and the
person belongs to several organisations, they pick the one they are acting for, and that choice
goes into the code and so into the ID token, userinfo and refresh tokens (OIDC Core §5.1,
§5.3; idp.oidc.claims). DfE Sign-in does the same in its select-organisation interaction
(reference/dfe-signin.md §2 rows 2 and 22).

Why it is not a step of :mod:`idp.auth.flow`: that state machine authenticates a person once per
SSO session, and an already signed-in person never passes through it again. The choice, though,
belongs to each authorization request: it recurs for every service (the same person may act for
a different school at each), and ``prompt=select_account`` asks it again without a new sign-in.
So the request waits in the same hand-off :mod:`idp.oidc.endpoints` uses for sign-in, this page
records the choice on the hand-off, and the browser returns to ``/authorize/resume/<id>``,
where the whole request is validated again from scratch (so a forged or stale hand-off id, or an
organisation the person does not belong to, gets nowhere).

This blueprint keeps CSRF protection (the ``oidc`` blueprint is exempt, since relying services
post to ``/authorize``); the choice is a form on our own page.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import RadioField
from wtforms.validators import DataRequired

from idp.auth.sso_cookie import current_sso_session
from idp.oidc.handoff import error_page, load_handoff, save_handoff
from idp.services import access, users
from idp.services.clients import find_service

bp = Blueprint("choose_organisation", __name__)


class ChooseOrganisationForm(FlaskForm):  # type: ignore[misc]  # Flask-WTF is untyped
    organisation = RadioField(
        validators=[DataRequired("Select the organisation you are signing in for")],
        validate_choice=True,
    )


@bp.route("/authorize/organisation/<handoff_id>", methods=["GET", "POST"])
def choose(handoff_id: str) -> ResponseReturnValue:
    """Radios of the person's organisations; the choice goes back to the waiting request."""
    handoff = load_handoff(handoff_id)
    if handoff is None:
        return error_page("expired")
    sso = current_sso_session()
    user = users.find_by_sub(sso.sub) if sso is not None else None
    if sso is None or user is None:
        # Signed out meanwhile: resuming sends them to sign in, then back here if need be.
        return redirect(url_for("oidc.resume", handoff_id=handoff.id), 303)
    organisations = [m.organisation for m in access.memberships_of(user)]
    client_id = (handoff.params.get("client_id") or [""])[0]
    service = find_service(client_id)
    if service is None:
        return error_page("client")
    form = ChooseOrganisationForm()
    form.organisation.choices = [(o.public_id, o.name) for o in organisations]
    if form.validate_on_submit():
        handoff.organisation_id = form.organisation.data
        save_handoff(handoff)
        return redirect(url_for("oidc.resume", handoff_id=handoff.id), 303)
    status = 400 if form.errors else 200
    return (
        render_template(
            "oidc/choose_organisation.html",
            title="Which organisation are you signing in for?",
            form=form,
            service=service,
            organisations=organisations,
        ),
        status,
    )
