"""Signing out of Secure Access in this browser.

GET asks for confirmation and POST (with CSRF, E07) does it, so a link or image on another
site cannot sign someone out. Relying services hear about it through back-channel logout.
"""

from __future__ import annotations

from flask import make_response, render_template
from flask.typing import ResponseReturnValue

from idp.auth import flow
from idp.auth.forms import SignOutForm
from idp.auth.sign_in import bp
from idp.auth.sso_cookie import clear_cookie, current_cookie_value, current_sso_session
from idp.services.session_endings import record_sessions_ended
from idp.services.sso_sessions import get_sso_sessions
from idp.services.transaction import transaction


@bp.get("/sign-out")
def sign_out_confirm() -> ResponseReturnValue:
    signed_in = current_sso_session() is not None
    return render_template(
        "auth/sign_out.html", form=SignOutForm(), signed_in=signed_in, title="Sign out"
    )


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    form = SignOutForm()
    if not form.validate_on_submit():
        return render_template(
            "auth/sign_out.html", form=form, signed_in=True, title="Sign out"
        ), 400
    sso = current_sso_session()
    cookie = current_cookie_value()
    if sso is not None and cookie:
        get_sso_sessions().end(cookie)
        with transaction():
            record_sessions_ended(
                sso.sub,
                [sso],
                actor=sso.sub,
                event="sign_out",
                how="this browser",
                reason="sign_out",
            )
    flow.discard()
    response = make_response(render_template("auth/signed_out.html", title="You have signed out"))
    clear_cookie(response)
    return response
