"""Your account: details, password, email, where you are signed in, and recent activity."""

from __future__ import annotations

import time

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from idp.account.forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    EndSessionForm,
    SignOutEverywhereForm,
)
from idp.account.guards import login_required, recent_sign_in_required
from idp.auth import flow
from idp.auth.forms import ConfirmPasswordForm
from idp.auth.sign_in import THROTTLED
from idp.auth.sso_cookie import (
    clear_cookie,
    current_cookie_value,
    current_sso_session,
    set_cookie,
)
from idp.extensions import db
from idp.models import AuditEvent, User
from idp.services import account_tokens, audit, email_change, users
from idp.services.account_passwords import (
    CurrentPasswordWrong,
    change_password,
    check_new_password,
)
from idp.services.authentication import SignInThrottled, verify_for_signed_in_user
from idp.services.passwords import PasswordRejected
from idp.services.session_endings import record_sessions_ended
from idp.services.sso_sessions import SsoSession, get_sso_sessions
from idp.services.transaction import transaction
from idp.web.forms import render_form

bp = Blueprint("account", __name__, url_prefix="/account")

ACTIVITY_EVENTS = (
    "sign_in.succeeded",
    "sign_in.failed",
    "sign_in.throttled",
    "account.locked",
    "password.changed",
    "email.changed",
    "sign_out",
    "sessions.ended",
    "mfa.failed",
    "mfa.totp.added",
    "mfa.totp.removed",
    "mfa.webauthn.added",
    "mfa.webauthn.removed",
    "mfa.recovery_code.used",
    "mfa.recovery_codes.issued",
    "consent.granted",
    "consent.refused",
    "consent.withdrawn",
)


def current_user() -> User:
    sso = current_sso_session()
    user = users.find_by_sub(sso.sub) if sso else None
    if user is None:  # the account went away under a live session
        raise LookupError("no user for session")
    return user


@bp.get("")
@login_required
def overview() -> ResponseReturnValue:
    return render_template("account/overview.html", user=current_user(), title="Your account")


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password() -> ResponseReturnValue:
    user = current_user()
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            check_new_password(user, form.new_password.data or "")
            with transaction():
                change_password(
                    user, form.current_password.data or "", form.new_password.data or ""
                )
        except CurrentPasswordWrong as wrong:
            form.current_password.errors = [str(wrong)]
        except SignInThrottled:
            form.current_password.errors = [THROTTLED]
        except PasswordRejected as rejected:
            form.new_password.errors = [" ".join(rejected.reasons)]
        else:
            # Every session ended with the change, this one too: sign in again, knowingly.
            response: Response = redirect(url_for("auth.sign_in"), 303)
            clear_cookie(response)
            flash("Your password has been changed. Sign in with your new password.")
            return response
    return render_form("account/password.html", form, title="Change your password")


@bp.route("/email", methods=["GET", "POST"])
@recent_sign_in_required
def email() -> ResponseReturnValue:
    user = current_user()
    form = ChangeEmailForm()
    if form.validate_on_submit():
        try:
            with transaction():
                new = email_change.request_change(user, form.email.data or "")
        except (users.InvalidEmail, users.RoleMailboxRefused, users.EmailAlreadyUsed) as error:
            form.email.errors = [str(error)]
        else:
            return render_template(
                "account/email_sent.html", email=new, title="Check your new email address"
            )
    return render_form("account/email.html", form, user=user, title="Change your email address")


@bp.get("/email/confirm/<token>")
def confirm_email(token: str) -> ResponseReturnValue:
    try:
        with transaction():
            user = email_change.confirm_change(token)
    except (account_tokens.TokenInvalid, users.EmailAlreadyUsed):
        return render_template(
            "account/email_invalid.html", title="This confirmation link does not work"
        ), 404
    return render_template(
        "account/email_confirmed.html", user=user, title="Your email address has been changed"
    )


@bp.get("/sessions")
@login_required
def sessions() -> ResponseReturnValue:
    user = current_user()
    sso = current_sso_session()
    listed = sorted(get_sso_sessions().list_for_user(user.sub), key=lambda s: -s.last_seen)
    activity = db.session.scalars(
        select(AuditEvent)
        .where(or_(AuditEvent.target_id == user.sub, AuditEvent.actor_id == user.sub))
        .where(AuditEvent.event.in_(ACTIVITY_EVENTS))
        .order_by(AuditEvent.occurred_at.desc())
        .limit(20)
    ).all()
    return render_template(
        "account/sessions.html",
        sessions=listed,
        this_sid=sso.sid if sso else None,
        activity=activity,
        end_form=EndSessionForm(),
        everywhere_form=SignOutEverywhereForm(),
        now=time.time(),
        title="Where you are signed in",
    )


@bp.post("/sessions/end")
@login_required
def end_session() -> ResponseReturnValue:
    form = EndSessionForm()
    user = current_user()
    if form.validate_on_submit():
        one = get_sso_sessions().end_by_sid(user.sub, form.sid.data or "")
        ended: list[SsoSession] = [one] if one else []
        if ended:
            with transaction():
                record_sessions_ended(
                    user.sub,
                    ended,
                    actor=user.sub,
                    event="sessions.ended",
                    how="one device",
                    reason="user_ended",
                )
            flash("You have been signed out on that device.")
    return redirect(url_for("account.sessions"), 303)


@bp.post("/sessions/end-all")
@login_required
def sign_out_everywhere() -> ResponseReturnValue:
    form = SignOutEverywhereForm()
    if not form.validate_on_submit():
        return redirect(url_for("account.sessions"), 303)
    user = current_user()
    ended = get_sso_sessions().end_all_for_user(user.sub)
    with transaction():
        record_sessions_ended(
            user.sub,
            ended,
            actor=user.sub,
            event="sessions.ended",
            how="everywhere",
            reason="user_ended_all",
        )
    flow.discard()
    response: Response = redirect(url_for("auth.sign_in"), 303)
    clear_cookie(response)
    flash("You have been signed out everywhere.")
    return response


@bp.route("/confirm-password", methods=["GET", "POST"])
@login_required
def confirm_password() -> ResponseReturnValue:
    """Re-enter the password before a sensitive change (E05). Counts as a fresh sign-in."""
    user = current_user()
    form = ConfirmPasswordForm()
    target = flow.safe_return_to(request.args.get("next")) or url_for("account.overview")
    if form.validate_on_submit():
        try:
            verified = verify_for_signed_in_user(user, form.password.data or "")
        except SignInThrottled:
            form.password.errors = [THROTTLED]
            verified = False
        if verified:
            cookie = current_cookie_value()
            sso = current_sso_session()
            response: Response = redirect(target, 303)
            if cookie and sso:
                # Reauthentication gives the session a new cookie value (E01); sid stays.
                new_cookie, _ = get_sso_sessions().reauthenticate(cookie, amr=sso.amr, acr=sso.acr)
                set_cookie(response, new_cookie)
            with transaction():
                audit.record("reauthenticated", actor=user.sub, target=user.sub, target_type="user")
            return response
        if not form.password.errors:
            form.password.errors = ["Your password is not right"]
    return render_form("account/confirm_password.html", form, title="Confirm your password")
