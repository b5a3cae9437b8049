"""Forgot password and reset password pages.

The request page answers the same whatever is typed (C01); the reset page checks the link
again when the new password is posted (C05) and never signs the person in (C06).
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from idp.auth.forms import ForgotPasswordForm, NewPasswordForm
from idp.services import account_tokens, password_reset, users
from idp.services.passwords import PasswordRejected
from idp.services.transaction import transaction
from idp.web.forms import render_form

bp = Blueprint("reset", __name__)


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password() -> ResponseReturnValue:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            email = users.canonical_email(form.email.data or "")
        except users.InvalidEmail as error:
            form.email.errors = [str(error)]
        else:
            with transaction():
                password_reset.request_reset(email, ip=request.remote_addr)
            # The same page whether or not the account exists (C01). Do not personalise it
            # beyond echoing what was typed.
            return render_template(
                "auth/forgot_password_sent.html", email=email, title="Check your email"
            )
    return render_form("auth/forgot_password.html", form, title="Reset your password")


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> ResponseReturnValue:
    try:
        password_reset.user_for_link(token)
    except account_tokens.TokenInvalid:
        return render_template(
            "auth/reset_invalid.html", title="This password reset link does not work"
        ), 404
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            with transaction():
                password_reset.reset_password(token, form.password.data or "")
        except PasswordRejected as rejected:
            form.password.errors = [" ".join(rejected.reasons)]
        except account_tokens.TokenInvalid:
            return render_template(
                "auth/reset_invalid.html", title="This password reset link does not work"
            ), 404
        else:
            return render_template("auth/reset_done.html", title="Your password has been changed")
    return render_form("auth/reset_password.html", form, title="Create a new password")
