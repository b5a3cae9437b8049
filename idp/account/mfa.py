"""Your security methods: add, rename and remove second factors, and get new recovery codes.

- E05 / D02: every change needs a sign-in within ``recent_auth_seconds`` (10 minutes);
  an older session is sent to confirm its password first (:func:`recent_sign_in_required`).
  The JSON endpoints of the WebAuthn ceremony answer with where to go instead.
- D02: an authenticator app counts only once a code from it has been entered.
- D07 "Also": every change is audited and emailed to the person (``mfa_changed``) by the
  services in :mod:`idp.services.mfa`.
- Removing the last factor is refused where policy requires MFA (staff; people with access to
  a service that requires it). Staff must keep a security key or passkey (K01).
- D05: new recovery codes are shown once, on the page after they are made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from idp.account.guards import login_required, recent_sign_in_required
from idp.account.views import current_user
from idp.auth.mfa import (
    KEY_FAILED,
    NEEDS_JAVASCRIPT,
    THROTTLED,
    WRONG_CODE,
    CodeForm,
    ConfirmForm,
    KeyNameForm,
    key_name_error,
    render_app_setup,
)
from idp.auth.sso_cookie import current_sso_session
from idp.models import User
from idp.services.mfa import (
    CodeRejected,
    CodeReused,
    LastFactorRequired,
    MfaThrottled,
    NoSuchFactor,
    WebAuthnRejected,
    factors,
    get_ceremonies,
    get_relying_party,
    get_totp_verifier,
    policy,
    recovery,
    totp,
    webauthn,
)
from idp.services.transaction import transaction
from idp.store import get_store
from idp.web.forms import render_form

bp = Blueprint("account_mfa", __name__, url_prefix="/account/security")

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

CODES_FIELD = "mfa_codes"  # the reference of new recovery codes waiting to be shown once
CEREMONY_FIELD = "mfa_webauthn"  # the reference of this browser's WebAuthn challenge


@bp.app_template_global()
def security_methods_summary(user: User) -> str:
    """One line for the account page: which second factors the person has."""
    found = factors.factors_of(user)
    parts = []
    if found.totp:
        parts.append("Authenticator app")
    if found.webauthn:
        count = len(found.webauthn)
        parts.append(
            f"{count} security key{'s' if count > 1 else ''} or passkey{'s' if count > 1 else ''}"
        )
    return ", ".join(parts) if parts else "None set up"


def recent_sign_in_required_json(view: F) -> F:
    """E05 for the WebAuthn ceremony's JSON endpoints: say where to go instead of redirecting."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        sso = current_sso_session()
        page = url_for("account_mfa.add_key")
        if sso is None:
            return jsonify(redirect=url_for("auth.sign_in", next=page)), 401
        max_age = current_app.extensions["settings"].recent_auth_seconds
        if time.time() - sso.auth_time > max_age:
            return jsonify(redirect=url_for("account.confirm_password", next=page)), 401
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _show_new_codes(codes: list[str]) -> None:
    recovery.drop(get_store(), session.get(CODES_FIELD))
    session[CODES_FIELD] = recovery.stash(get_store(), codes)


def _first_codes(user: User) -> list[str]:
    """With a person's first factor comes their first set of recovery codes (D05).
    Inside the caller's unit of work; :func:`_next_after_adding` shows them once it commits."""
    if factors.unused_recovery_codes(user):
        return []
    return recovery.issue(user, actor=user.sub, notify=False)


def _next_after_adding(codes: list[str]) -> str:
    if not codes:
        return url_for("account_mfa.overview")
    _show_new_codes(codes)
    return url_for("account_mfa.show_codes")


# -- the overview --------------------------------------------------------------------------


@bp.get("")
@login_required
def overview() -> ResponseReturnValue:
    user = current_user()
    return render_template(
        "account/mfa.html",
        user=user,
        found=factors.factors_of(user),
        staff=policy.is_staff(user),
        title="Your security methods",
    )


# -- authenticator app ---------------------------------------------------------------------


@bp.route("/app", methods=["GET", "POST"])
@recent_sign_in_required
def add_app() -> ResponseReturnValue:
    user = current_user()
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            with transaction():
                replaced = totp.confirm_enrolment(
                    user, form.code.data or "", get_totp_verifier(), actor=user.sub
                )
                codes = _first_codes(user)
        except MfaThrottled:
            form.code.errors = [THROTTLED]
            status = 429
        except CodeReused as reused:
            form.code.errors = [str(reused)]
        except CodeRejected:
            form.code.errors = [WRONG_CODE]
        else:
            flash(
                "Your new authenticator app is set up. The old one no longer works."
                if replaced
                else "Your authenticator app is set up."
            )
            return redirect(_next_after_adding(codes), 303)
    return render_app_setup(
        user, form, status, choose_url=url_for("account_mfa.overview"), choose_text="Cancel"
    )


@bp.route("/app/remove", methods=["GET", "POST"])
@recent_sign_in_required
def remove_app() -> ResponseReturnValue:
    user = current_user()
    apps = factors.totp_credentials(user)
    if not apps:
        return redirect(url_for("account_mfa.overview"))
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        try:
            with transaction():
                for app in apps:
                    factors.remove_totp(user, app, actor=user.sub)
        except LastFactorRequired as refused:
            error = str(refused)
        else:
            flash("Your authenticator app has been removed.")
            return redirect(url_for("account_mfa.overview"), 303)
    return render_template(
        "account/mfa_remove.html",
        form=form,
        error=error,
        what="your authenticator app",
        title="Remove your authenticator app",
    ), 400 if error else 200


# -- security keys and passkeys ----------------------------------------------------------


@bp.route("/keys/add", methods=["GET", "POST"])
@recent_sign_in_required
def add_key() -> ResponseReturnValue:
    form = KeyNameForm()
    error = NEEDS_JAVASCRIPT if request.method == "POST" else None
    return render_template(
        "mfa/key_setup.html",
        form=form,
        error=error,
        staff=policy.is_staff(current_user()),
        choose_url=url_for("account_mfa.overview"),
        choose_text="Cancel",
        options_url=url_for("account_mfa.add_key_options"),
        verify_url=url_for("account_mfa.add_key_verify"),
        title="Set up a security key or passkey",
    ), 400 if error else 200


@bp.post("/keys/add/options")
@recent_sign_in_required_json
def add_key_options() -> ResponseReturnValue:
    user = current_user()
    body = request.get_json(silent=True)
    name_error = key_name_error(body if isinstance(body, dict) else {})
    if name_error:
        return jsonify(error=name_error), 400
    ref, options = webauthn.registration_options(user, get_relying_party(), get_ceremonies())
    session[CEREMONY_FIELD] = ref
    return Response(options, mimetype="application/json")


@bp.post("/keys/add/verify")
@recent_sign_in_required_json
def add_key_verify() -> ResponseReturnValue:
    user = current_user()
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    name_error = key_name_error(body)
    if name_error:
        return jsonify(error=name_error), 400
    credential = body.get("credential")
    try:
        with transaction():
            added = webauthn.verify_registration(
                user,
                get_relying_party(),
                get_ceremonies(),
                session.pop(CEREMONY_FIELD, None),
                credential if isinstance(credential, dict) else {},
                name=str(body["name"]),
                actor=user.sub,
            )
            codes = _first_codes(user)
    except WebAuthnRejected:
        return jsonify(error=KEY_FAILED), 400
    flash(f"“{added.name}” is set up.")
    return jsonify(redirect=_next_after_adding(codes))


@bp.route("/keys/<int:key_id>/rename", methods=["GET", "POST"])
@recent_sign_in_required
def rename_key(key_id: int) -> ResponseReturnValue:
    user = current_user()
    try:
        key = factors.find_webauthn_credential(user, key_id)
    except NoSuchFactor:
        return redirect(url_for("account_mfa.overview"))
    form = KeyNameForm(data={"name": key.name} if request.method == "GET" else None)
    if form.validate_on_submit():
        with transaction():
            factors.rename_webauthn(user, key, form.name.data or "", actor=user.sub)
        flash("The name has been changed.")
        return redirect(url_for("account_mfa.overview"), 303)
    return render_form(
        "account/mfa_rename.html", form, key=key, title="Change the name of a security key"
    )


@bp.route("/keys/<int:key_id>/remove", methods=["GET", "POST"])
@recent_sign_in_required
def remove_key(key_id: int) -> ResponseReturnValue:
    user = current_user()
    try:
        key = factors.find_webauthn_credential(user, key_id)
    except NoSuchFactor:
        return redirect(url_for("account_mfa.overview"))
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        try:
            with transaction():
                factors.remove_webauthn(user, key, actor=user.sub)
        except LastFactorRequired as refused:
            error = str(refused)
        else:
            flash("The security key or passkey has been removed.")
            return redirect(url_for("account_mfa.overview"), 303)
    return render_template(
        "account/mfa_remove.html",
        form=form,
        error=error,
        what=f"“{key.name}”",
        title="Remove a security key or passkey",
    ), 400 if error else 200


# -- recovery codes ----------------------------------------------------------------------


@bp.route("/recovery-codes/new", methods=["GET", "POST"])
@recent_sign_in_required
def new_codes() -> ResponseReturnValue:
    user = current_user()
    found = factors.factors_of(user)
    if not found.any:
        return redirect(url_for("account_mfa.overview"))
    form = ConfirmForm()
    if form.validate_on_submit():
        with transaction():
            codes = recovery.issue(user, actor=user.sub)
        _show_new_codes(codes)
        return redirect(url_for("account_mfa.show_codes"), 303)
    return render_template(
        "account/mfa_new_codes.html",
        form=form,
        left=found.recovery_codes_left,
        title="Get new recovery codes",
    )


@bp.route("/recovery-codes", methods=["GET", "POST"])
@login_required
def show_codes() -> ResponseReturnValue:
    """New codes, once: after "I have saved them" (or 15 minutes) they are gone (D05)."""
    ref = session.get(CODES_FIELD)
    codes = recovery.peek(get_store(), ref)
    form = ConfirmForm()
    if codes is None or form.validate_on_submit():
        recovery.drop(get_store(), ref)
        session.pop(CODES_FIELD, None)
        return redirect(url_for("account_mfa.overview"), 303)
    return render_form(
        "mfa/recovery_codes.html", form, codes=codes, title="Save your new recovery codes"
    )
