"""A sign-in step: replace a password known to be compromised before going on (A05).

Passwords never expire on a schedule (NIST SP 800-63B-4 §3.1.1.2 item 6). A change is forced
only when the password is known to be compromised: the helpdesk flagged it, or it turned out
to be on the breached-password list when it was typed at sign-in.
"""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from idp.auth import flow
from idp.auth.forms import NewPasswordForm
from idp.auth.sign_in import bp, continue_sign_in
from idp.services import audit
from idp.services.account_passwords import set_password
from idp.services.passwords import PasswordRejected
from idp.services.transaction import transaction
from idp.web.forms import render_form

STEP = "compromised_password"

flow.register_step(
    flow.Step(
        STEP, "auth.replace_password", applies=lambda _pending, user: user.password_compromised
    )
)


@bp.route("/sign-in/new-password", methods=["GET", "POST"])
@flow.auth_step(STEP)
def replace_password(pending: flow.PendingSignIn) -> ResponseReturnValue:
    user = pending.user()
    assert user is not None  # auth_step guarantees a signed-in-so-far person
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            with transaction():
                set_password(user, form.password.data or "")
                audit.record(
                    "password.changed",
                    actor=user.sub,
                    target=user.sub,
                    target_type="user",
                    how="replaced compromised password",
                )
        except PasswordRejected as rejected:
            form.password.errors = [" ".join(rejected.reasons)]
        else:
            flow.mark_done(pending, STEP)
            return continue_sign_in(pending)
    return render_form("auth/replace_password.html", form, title="You need to change your password")
