"""Accepting an invitation: the emailed link leads to setting a password, then signing in.

After the password is set the person is signed in through the same state machine as any
sign-in, so later steps (MFA enrolment, choosing an organisation) apply to them too.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from idp.auth import flow
from idp.auth.forms import NewPasswordForm
from idp.auth.sign_in import continue_sign_in
from idp.services import account_tokens, invitations
from idp.services.passwords import PasswordRejected
from idp.services.transaction import transaction
from idp.web.forms import render_form

bp = Blueprint("invitation", __name__)


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept(token: str) -> ResponseReturnValue:
    try:
        user = account_tokens.user_for(
            account_tokens.peek(token, account_tokens.TokenPurpose.INVITATION)
        )
    except account_tokens.TokenInvalid:
        return render_template(
            "auth/invitation_invalid.html", title="This invitation link does not work"
        ), 404
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            with transaction():
                user = invitations.accept(token, form.password.data or "")
        except PasswordRejected as rejected:
            form.password.errors = [" ".join(rejected.reasons)]
        except account_tokens.TokenInvalid:
            return redirect(url_for("invitation.accept", token=token), 303)
        else:
            pending = flow.start()
            pending.sub = user.sub
            flow.mark_done(pending, "password", amr=["pwd"])
            return continue_sign_in(pending)
    return render_form("auth/invitation.html", form, user=user, title="Create your password")
