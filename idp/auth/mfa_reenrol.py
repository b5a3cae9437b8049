"""The link emailed after a helpdesk MFA reset leads to sign-in and then to set-up (D07).

Sign-in policy already makes staff, and anyone a service or ``acr_values`` requires MFA of,
set up a factor when they have none. This link does it for everyone else whose factors the
helpdesk removed: it starts a sign-in in this browser marked with the person's ``sub``
(:data:`idp.auth.mfa.REENROL`), so once *that* person has given their password the
``mfa_enrol`` step applies and cannot be skipped. Marking the pending sign-in, rather than
asking the database at every sign-in, keeps the sign-in path free of an extra query.

The link is not a way in (C07: email is never an authentication factor): it checks that the
enrolment link is live and shows the way to sign in; the password is still needed, and a
different person signing in in the same browser is not affected.
"""

from __future__ import annotations

from flask import render_template, url_for
from flask.typing import ResponseReturnValue

from idp.auth import flow
from idp.auth.mfa import REENROL
from idp.auth.sign_in import bp
from idp.models import TokenPurpose
from idp.services import account_tokens


@bp.get("/set-up-security/<token>")
def mfa_reenrol(token: str) -> ResponseReturnValue:
    try:
        user = account_tokens.user_for(account_tokens.peek(token, TokenPurpose.MFA_ENROLMENT))
    except account_tokens.TokenInvalid:
        return render_template(
            "auth/mfa_reenrol_invalid.html", title="This set-up link does not work"
        ), 404
    pending = flow.start()
    pending.data[REENROL] = user.sub
    pending.data["login_hint"] = user.email  # the sign-in page fills the address in
    flow.save(pending)
    return render_template(
        "auth/mfa_reenrol.html",
        title="Set up a new way to prove it's you",
        sign_in_url=url_for("auth.sign_in", prompt="login"),
    )
