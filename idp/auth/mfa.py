"""Sign-in steps for second factors: prove one, set one up when it is required, or be offered one.

Three steps join the state machine (:mod:`idp.auth.flow`), ahead of the compromised-password
step so nobody changes a password on the strength of the password alone:

- ``mfa`` (verify): applies when the person has a confirmed factor (everyone who has one uses
  it), except in a step-up that does not ask for MFA or already has it. Methods: security key
  or passkey, authenticator app, recovery code; staff who have a key may use only that (K01).
  Pages: /sign-in/mfa (picks the best method), /app, /security-key, /recovery-code.
- ``mfa_enrol`` (set up): applies when MFA is required here (staff, a ``require_mfa``
  service, ``acr_values`` demanding it) and the person has no factor that counts, when they
  came by the set-up link emailed after a helpdesk MFA reset (:mod:`.mfa_reenrol`), after a
  recovery code was used (lost factor: NIST SP 800-63B-4 §4.2, re-enrol and get new codes),
  or when they chose "Set up now". It runs *after* ``mfa`` so that an existing factor is
  proved before a new one is bound (staff with only an app; recovery). New recovery codes
  are shown once at the end (D05).
- ``mfa_offer`` ("Protect your account"): for people who need no second factor and have none,
  when :class:`~idp.services.mfa.policy.OfferSchedule` says it is due. "Not now" postpones it.

D06: every view is guarded by :func:`flow.auth_step`, so the pending sign-in (bound to this
browser by the signed session cookie) names whose factor is checked; a code for person A
posted in person B's browser is checked against B's factors only, and arriving at any step
or at /sign-in/finish out of order redirects to the step that is due.

``amr`` (RFC 8176): ``otp`` (app), ``hwk``/``swk`` (security key / passkey, see
:mod:`idp.services.mfa.webauthn`), plus ``mfa``; ``finish`` then gives the session ACR_MFA.
Setting up a factor during sign-in counts as using it: the person has just proved possession
with a valid code or a WebAuthn registration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length

from idp.auth import flow
from idp.auth import replace_password as _replace_password  # noqa: F401 (registers its step first)
from idp.auth.sign_in import bp, continue_sign_in
from idp.models import User
from idp.services import audit
from idp.services.mfa import (
    AMR_MFA,
    AMR_OTP,
    CodeRejected,
    CodeReused,
    Method,
    MfaThrottled,
    WebAuthnRejected,
    get_ceremonies,
    get_offer_schedule,
    get_relying_party,
    get_totp_verifier,
    policy,
    recovery,
    totp,
    webauthn,
)
from idp.services.mfa.factors import (
    MAX_NAME,
    Factors,
    factors_of,
    has_any_factor,
    unused_recovery_codes,
)
from idp.services.throttle import get_throttle
from idp.services.transaction import transaction
from idp.store import Store, get_store
from idp.web.forms import render_form

STEP_MFA = "mfa"
STEP_ENROL = "mfa_enrol"
STEP_OFFER = "mfa_offer"
#: ``pending.data`` key: the sub whose helpdesk MFA-reset link started this sign-in.
REENROL = "mfa_reenrol"

# One message for a wrong, expired or replayed code, on purpose: which it was would help a guesser.
WRONG_CODE = "Enter the correct 6-digit code from your authenticator app"
WRONG_RECOVERY_CODE = "Enter a recovery code you have not used before"
THROTTLED = "You have entered too many wrong codes. Wait 15 minutes and try again"
KEY_FAILED = "Your security key or passkey could not be checked. Try again"
NEEDS_JAVASCRIPT = (
    "Your browser needs JavaScript turned on to use a security key or passkey. "
    "Turn it on, or use another way to prove it's you"
)


# -- forms -------------------------------------------------------------------------------


class CodeForm(FlaskForm):
    code = StringField(
        validators=[
            DataRequired("Enter the 6-digit code from your authenticator app"),
            Length(max=20, message="Enter the 6-digit code from your authenticator app"),
        ]
    )


class RecoveryCodeForm(FlaskForm):
    code = StringField(
        validators=[
            DataRequired("Enter one of your recovery codes"),
            Length(max=40, message="Enter one of your recovery codes"),
        ]
    )


class KeyNameForm(FlaskForm):
    name = StringField(
        validators=[
            DataRequired("Enter a name for your security key or passkey"),
            Length(max=MAX_NAME, message=f"The name must be {MAX_NAME} characters or fewer"),
        ]
    )


class ChooseMethodForm(FlaskForm):
    # The radios are drawn by the template (GOV.UK radios); only the two values are accepted.
    method = StringField(
        validators=[
            InputRequired("Select how you want to prove it's you"),
            AnyOf(["app", "key"], message="Select how you want to prove it's you"),
        ]
    )


class ConfirmForm(FlaskForm):
    """Only a CSRF token (a button that moves the journey on)."""


# -- when each step applies -------------------------------------------------------------


def required(pending: flow.PendingSignIn, user: User) -> bool:
    return policy.required_at_sign_in(
        user, client_id=pending.client_id, demanded=bool(pending.data.get("require_mfa"))
    )


def _factors(user: User) -> Factors:
    """The person's factors, looked up once per request: several steps ask in one request."""
    cache = flow.request_cache()
    key = f"mfa-factors:{user.id}"
    if key not in cache:
        cache[key] = factors_of(user)
    factors: Factors = cache[key]
    return factors


def _has_any(user: User) -> bool:
    cache = flow.request_cache()
    key = flow.any_factor_key(user)  # the sign-in POST fills this in from its account query
    if key not in cache:
        cache[key] = has_any_factor(user)
    found: bool = cache[key]
    return found


def _mfa_applies(pending: flow.PendingSignIn, user: User) -> bool:
    if AMR_MFA in pending.amr:
        return False  # a step-up from a session that already has two factors
    if pending.data.get("step_up") and not required(pending, user):
        return False
    return _has_any(user)


def _enrol_applies(pending: flow.PendingSignIn, user: User) -> bool:
    data = pending.data
    if data.get("enrolled") or data.get("recovered") or data.get("enrol_chosen"):
        return True
    if data.get(REENROL) == user.sub:
        return True  # arrived by the link emailed after a helpdesk MFA reset (D07)
    return required(pending, user) and not policy.satisfies_policy(user, _factors(user))


def _offer_applies(pending: flow.PendingSignIn, user: User) -> bool:
    if pending.data.get("step_up") or _has_any(user) or required(pending, user):
        return False
    cache = flow.request_cache()
    key = _offer_key(user)
    if key not in cache:  # not asked on the sign-in POST's round trip (_offer_prefetch)
        cache[key] = get_offer_schedule().due(user.sub)
    due: bool = cache[key]
    return due


def _offer_key(user: User) -> str:
    return f"mfa-offer-due:{user.id}"


def _offer_prefetch(
    pending: flow.PendingSignIn, user: User, batch: Store
) -> Callable[[Any], None] | None:
    """Ask the offer schedule on the sign-in POST's final round trip (issue 3).

    Asked only of those the offer could apply to, as :func:`_offer_applies` would ask it
    (asking starts a person's interval, so nobody else gets a date).
    """
    if pending.data.get("step_up") or _has_any(user) or required(pending, user):
        return None
    now = get_offer_schedule().queue_due(batch, user.sub)
    cache = flow.request_cache()

    def answer(reply: Any) -> None:
        cache[_offer_key(user)] = policy.OfferSchedule.due_from(now, reply)

    return answer


flow.register_step(
    flow.Step(STEP_MFA, "auth.mfa", applies=_mfa_applies), before="compromised_password"
)
flow.register_step(
    flow.Step(STEP_ENROL, "auth.mfa_enrol", applies=_enrol_applies), before="compromised_password"
)
flow.register_step(
    flow.Step(STEP_OFFER, "auth.mfa_offer", applies=_offer_applies, prefetch=_offer_prefetch)
)


# -- helpers -----------------------------------------------------------------------------


def _user(pending: flow.PendingSignIn) -> User:
    user = pending.user()
    assert user is not None  # auth_step guarantees a signed-in-so-far person
    return user


def _next_url(pending: flow.PendingSignIn) -> str:
    due = flow.next_step(pending)
    return url_for(due.endpoint) if due is not None else url_for("auth.finish")


def _accepted(pending: flow.PendingSignIn, user: User) -> tuple[Factors, list[Method]]:
    found = factors_of(user)
    return found, policy.methods_accepted(user, found)


def _verified(pending: flow.PendingSignIn, user: User, method: Method, amr: str) -> None:
    """A second factor was proved: record it and mark the step done (the caller moves on)."""
    with transaction():
        audit.record(
            "mfa.verified", actor=user.sub, target=user.sub, target_type="user", method=method
        )
    flow.mark_done(pending, STEP_MFA, amr=[amr, AMR_MFA])


def _json_error(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(error=message), status


def key_name_error(body: dict[str, Any]) -> str | None:
    """Check the key's name (sent as JSON by webauthn.js) before and after the ceremony."""
    name = body.get("name")
    form = KeyNameForm(data={"name": name if isinstance(name, str) else ""}, meta={"csrf": False})
    return None if form.validate() else form.name.errors[0]


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


# -- step "mfa": prove a second factor ---------------------------------------------------


@bp.get("/sign-in/mfa")
@flow.auth_step(STEP_MFA)
def mfa(pending: flow.PendingSignIn) -> ResponseReturnValue:
    """Go to the best method this person has: a security key first, then the app."""
    _found, methods = _accepted(pending, _user(pending))
    if Method.WEBAUTHN in methods:
        return redirect(url_for("auth.mfa_key"))
    if Method.TOTP in methods:
        return redirect(url_for("auth.mfa_app"))
    return redirect(url_for("auth.mfa_recovery"))


def _alternatives(methods: list[Method], current: Method) -> list[Method]:
    return [m for m in methods if m is not current]


@bp.route("/sign-in/mfa/app", methods=["GET", "POST"])
@flow.auth_step(STEP_MFA)
def mfa_app(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    found, methods = _accepted(pending, user)
    if Method.TOTP not in methods:
        return redirect(url_for("auth.mfa"))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            with transaction():
                get_totp_verifier().verify(user, form.code.data or "", found.totp)
        except MfaThrottled:
            form.code.errors = [THROTTLED]
            status = 429
        except CodeRejected:
            form.code.errors = [WRONG_CODE]
        else:
            _verified(pending, user, Method.TOTP, AMR_OTP)
            return continue_sign_in(pending)
    if form.errors and status == 200:
        status = 400
    return render_template(
        "mfa/verify_app.html",
        form=form,
        others=_alternatives(methods, Method.TOTP),
        title="Enter the code from your authenticator app",
    ), status


@bp.route("/sign-in/mfa/security-key", methods=["GET", "POST"])
@flow.auth_step(STEP_MFA)
def mfa_key(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    _found, methods = _accepted(pending, user)
    if Method.WEBAUTHN not in methods:
        return redirect(url_for("auth.mfa"))
    form = ConfirmForm()
    error = None
    if request.method == "POST":
        error = NEEDS_JAVASCRIPT  # the ceremony posts JSON; a plain form post means no JS
    return render_template(
        "mfa/verify_key.html",
        form=form,
        error=error,
        staff=policy.is_staff(user),
        others=_alternatives(methods, Method.WEBAUTHN),
        options_url=url_for("auth.mfa_key_options"),
        verify_url=url_for("auth.mfa_key_verify"),
        title="Use your security key or passkey",
    ), 400 if error else 200


@bp.post("/sign-in/mfa/security-key/options")
@flow.auth_step(STEP_MFA)
def mfa_key_options(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    if Method.WEBAUTHN not in _accepted(pending, user)[1]:
        return _json_error(KEY_FAILED)
    ref, options = webauthn.authentication_options(user, get_relying_party(), get_ceremonies())
    pending.data["webauthn_ref"] = ref
    flow.save(pending)
    return Response(options, mimetype="application/json")


@bp.post("/sign-in/mfa/security-key/verify")
@flow.auth_step(STEP_MFA)
def mfa_key_verify(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    _found, methods = _accepted(pending, user)
    if Method.WEBAUTHN not in methods:
        return _json_error(KEY_FAILED)
    ref = pending.data.pop("webauthn_ref", None)
    flow.save(pending)
    credential = _json_body().get("credential")
    try:
        with transaction():
            verified = webauthn.verify_authentication(
                user,
                get_relying_party(),
                get_ceremonies(),
                ref,
                credential if isinstance(credential, dict) else {},
                get_throttle(),
            )
    except MfaThrottled:
        return _json_error(THROTTLED, 429)
    except WebAuthnRejected:
        return _json_error(KEY_FAILED)
    _verified(pending, user, Method.WEBAUTHN, verified.amr)
    return jsonify(redirect=_next_url(pending))


@bp.route("/sign-in/mfa/recovery-code", methods=["GET", "POST"])
@flow.auth_step(STEP_MFA)
def mfa_recovery(pending: flow.PendingSignIn) -> ResponseReturnValue:
    """Lost factor: one recovery code, then straight to setting up a new factor (D05)."""
    user = _user(pending)
    _found, methods = _accepted(pending, user)
    form = RecoveryCodeForm()
    usable = Method.RECOVERY_CODE in methods
    status = 200
    if usable and form.validate_on_submit():
        try:
            with transaction():
                recovery.redeem(user, form.code.data or "", get_throttle())
        except MfaThrottled:
            form.code.errors = [THROTTLED]
            status = 429
        except CodeRejected:
            form.code.errors = [WRONG_RECOVERY_CODE]
        else:
            # A recovery code proves the account is theirs but is not kept as a factor: the
            # person sets up a new one now and gets a new set of codes (NIST §4.2).
            pending.data["recovered"] = True
            flow.mark_done(pending, STEP_MFA)
            return continue_sign_in(pending)
    if form.errors and status == 200:
        status = 400
    return render_template(
        "mfa/verify_recovery.html",
        form=form,
        usable=usable,
        staff=policy.is_staff(user),
        others=_alternatives(methods, Method.RECOVERY_CODE),
        title="Enter a recovery code",
    ), status


# -- step "mfa_enrol": set up a factor ---------------------------------------------------


@bp.route("/sign-in/set-up", methods=["GET", "POST"])
@flow.auth_step(STEP_ENROL)
def mfa_enrol(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    if pending.data.get("codes_ref") or pending.data.get("enrolled"):
        return redirect(url_for("auth.mfa_enrol_codes"))
    if policy.is_staff(user):
        return redirect(url_for("auth.mfa_enrol_key"))  # K01: only a key counts for staff
    form = ChooseMethodForm()
    if form.validate_on_submit():
        target = "auth.mfa_enrol_app" if form.method.data == "app" else "auth.mfa_enrol_key"
        return redirect(url_for(target), 303)
    return render_form(
        "mfa/choose.html",
        form,
        skip_form=ConfirmForm() if _may_skip(pending, user) else None,
        recovered=bool(pending.data.get("recovered")),
        title="Choose how to prove it's you",
    )


def _may_skip(pending: flow.PendingSignIn, user: User) -> bool:
    """Only an optional set-up the person chose ("Set up now") can be left for later."""
    return (
        bool(pending.data.get("enrol_chosen"))
        and not pending.data.get("recovered")
        and not pending.data.get("enrolled")
        and not required(pending, user)
    )


@bp.post("/sign-in/set-up/later")
@flow.auth_step(STEP_ENROL)
def mfa_enrol_later(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    form = ConfirmForm()
    if form.validate_on_submit() and _may_skip(pending, user):
        get_offer_schedule().postpone(user.sub)
        pending.data.pop("enrol_chosen", None)
        flow.mark_done(pending, STEP_ENROL)
        return continue_sign_in(pending)
    return redirect(url_for("auth.mfa_enrol"), 303)


def _codes_with_new_factor(pending: flow.PendingSignIn, user: User) -> list[str]:
    """New recovery codes go with a person's first factor and with every re-enrolment after a
    recovery (NIST SP 800-63B-4 §4.2, D05). Inside the caller's unit of work."""
    if pending.data.get("recovered") or not unused_recovery_codes(user):
        return recovery.issue(user, actor=user.sub, notify=False)
    return []


def _enrolled(pending: flow.PendingSignIn, amr: str, codes: list[str]) -> str:
    """A factor set up during sign-in counts as used (see the module docstring).

    Called only once the new factor is committed, so the pending sign-in can never claim a
    factor the database does not have. The codes wait for the next page, which ends the step.
    """
    if codes:
        pending.data["codes_ref"] = recovery.stash(get_store(), codes)
    pending.data["enrolled"] = True
    flow.mark_done(pending, STEP_MFA, amr=[amr, AMR_MFA])
    return url_for("auth.mfa_enrol_codes")


@bp.route("/sign-in/set-up/app", methods=["GET", "POST"])
@flow.auth_step(STEP_ENROL)
def mfa_enrol_app(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    if policy.is_staff(user) or pending.data.get("enrolled"):
        return redirect(url_for("auth.mfa_enrol"))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            with transaction():
                totp.confirm_enrolment(
                    user, form.code.data or "", get_totp_verifier(), actor=user.sub
                )
                codes = _codes_with_new_factor(pending, user)
        except MfaThrottled:
            form.code.errors = [THROTTLED]
            status = 429
        except CodeReused as reused:
            form.code.errors = [str(reused)]
        except CodeRejected:
            form.code.errors = [WRONG_CODE]
        else:
            return redirect(_enrolled(pending, AMR_OTP, codes), 303)
    return render_app_setup(user, form, status, choose_url=url_for("auth.mfa_enrol"))


def render_app_setup(
    user: User, form: Any, status: int, *, choose_url: str, choose_text: str | None = None
) -> ResponseReturnValue:
    """The authenticator-app set-up page with a fresh key (sign-in and account pages alike)."""
    if form.errors and status == 200:
        status = 400
    with transaction():
        enrolment = totp.start_enrolment(user)
    extra = {"choose_text": choose_text} if choose_text else {}
    return render_template(
        "mfa/app_setup.html",
        form=form,
        qr_code=totp.qr_code_data_uri(enrolment.uri(user.email)),
        key=totp.grouped(enrolment.secret),
        choose_url=choose_url,
        title="Set up an authenticator app",
        **extra,
    ), status


@bp.route("/sign-in/set-up/security-key", methods=["GET", "POST"])
@flow.auth_step(STEP_ENROL)
def mfa_enrol_key(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    if pending.data.get("enrolled"):
        return redirect(url_for("auth.mfa_enrol"))
    form = KeyNameForm()
    error = NEEDS_JAVASCRIPT if request.method == "POST" else None
    return render_template(
        "mfa/key_setup.html",
        form=form,
        error=error,
        staff=policy.is_staff(user),
        choose_url=None if policy.is_staff(user) else url_for("auth.mfa_enrol"),
        options_url=url_for("auth.mfa_enrol_key_options"),
        verify_url=url_for("auth.mfa_enrol_key_verify"),
        title="Set up a security key or passkey",
    ), 400 if error else 200


@bp.post("/sign-in/set-up/security-key/options")
@flow.auth_step(STEP_ENROL)
def mfa_enrol_key_options(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    name_error = key_name_error(_json_body())
    if name_error:
        return _json_error(name_error)
    ref, options = webauthn.registration_options(user, get_relying_party(), get_ceremonies())
    pending.data["webauthn_ref"] = ref
    flow.save(pending)
    return Response(options, mimetype="application/json")


@bp.post("/sign-in/set-up/security-key/verify")
@flow.auth_step(STEP_ENROL)
def mfa_enrol_key_verify(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    if pending.data.get("enrolled"):
        return jsonify(redirect=url_for("auth.mfa_enrol_codes"))
    body = _json_body()
    name_error = key_name_error(body)
    if name_error:
        return _json_error(name_error)
    ref = pending.data.pop("webauthn_ref", None)
    flow.save(pending)
    credential = body.get("credential")
    try:
        with transaction():
            added = webauthn.verify_registration(
                user,
                get_relying_party(),
                get_ceremonies(),
                ref,
                credential if isinstance(credential, dict) else {},
                name=str(body["name"]),
                actor=user.sub,
            )
            codes = _codes_with_new_factor(pending, user)
    except WebAuthnRejected:
        return _json_error(KEY_FAILED)
    amr = webauthn.amr_for(None, added.backed_up, added.transports)
    return jsonify(redirect=_enrolled(pending, amr, codes))


@bp.route("/sign-in/set-up/recovery-codes", methods=["GET", "POST"])
@flow.auth_step(STEP_ENROL)
def mfa_enrol_codes(pending: flow.PendingSignIn) -> ResponseReturnValue:
    """Show new recovery codes once, then finish the step (D05)."""
    if not pending.data.get("enrolled"):
        return redirect(url_for("auth.mfa_enrol"))
    ref = pending.data.get("codes_ref")
    codes = recovery.peek(get_store(), ref)
    form = ConfirmForm()
    if codes is None or form.validate_on_submit():
        recovery.drop(get_store(), ref)
        for key in ("codes_ref", "enrolled", "enrol_chosen", "recovered", "webauthn_ref"):
            pending.data.pop(key, None)
        flow.mark_done(pending, STEP_ENROL)
        return continue_sign_in(pending)
    return render_form(
        "mfa/recovery_codes.html", form, codes=codes, title="Save your recovery codes"
    )


# -- step "mfa_offer": Protect your account ----------------------------------------------


@bp.route("/sign-in/protect-your-account", methods=["GET", "POST"])
@flow.auth_step(STEP_OFFER)
def mfa_offer(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = _user(pending)
    form = ConfirmForm()
    if form.validate_on_submit():
        if request.form.get("choice") == "set-up":
            pending.data["enrol_chosen"] = True
        else:
            get_offer_schedule().postpone(user.sub)
        flow.mark_done(pending, STEP_OFFER)
        return continue_sign_in(pending)
    return render_form("mfa/offer.html", form, title="Protect your account")
