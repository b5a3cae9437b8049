"""Sign in with an email address and password, then whatever steps policy adds, then finish.

The error for a wrong password, an unknown email, a deactivated account or one that was never
activated is deliberately the same (B05): the page, status and timing must not reveal which.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from idp.auth import flow
from idp.auth.forms import SignInForm
from idp.auth.sso_cookie import current_cookie_value, current_sso_session, set_cookie
from idp.models import User
from idp.models.base import utcnow
from idp.oidc.discovery import ACR_MFA, ACR_SINGLE_FACTOR
from idp.services import audit
from idp.services.authentication import SignInFailed, SignInThrottled, authenticate
from idp.services.sso_sessions import get_sso_sessions
from idp.services.transaction import transaction
from idp.store import get_store

bp = Blueprint("auth", __name__)

# One message for every failure, on purpose (B05). Do not make it more helpful.
VAGUE_FAILURE = "Enter a correct email address and password"
THROTTLED = (
    "You have tried to sign in too many times. Wait 15 minutes and try again, "
    "or reset your password"
)
#: Signing in with no service waiting lands on "Your services" (issue 7).
DEFAULT_LANDING = "services.overview"


def landing(pending: flow.PendingSignIn | None = None) -> str:
    if pending and pending.return_to:
        return pending.return_to
    return url_for(DEFAULT_LANDING)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    form = SignInForm()
    if request.method == "GET":
        return_to = flow.safe_return_to(request.args.get("next"))
        if current_sso_session() is not None and request.args.get("prompt") != "login":
            return redirect(return_to or url_for(DEFAULT_LANDING))
        pending = flow.load()
        if pending is None or return_to:
            flow.start(return_to=return_to)
        elif isinstance(hint := pending.data.get("login_hint"), str):
            form.email.data = hint  # OIDC login_hint, set by idp.oidc.endpoints
        return render_template("auth/sign_in.html", form=form, title="Sign in")

    status = 200
    if form.validate_on_submit():
        # Store round trips (issue 3's 1.2x budget): the pending sign-in is read with the
        # throttle check; the writes that need no answer (clearing the failure counter,
        # saving the pending sign-in) and the next steps' questions share one more.
        batch = get_store().pipeline(transaction=False)
        try:
            result = authenticate(
                form.email.data or "",
                form.password.data or "",
                ip=request.remote_addr,
                batch=batch,
                read_key=flow.pending_key(),
            )
        except SignInFailed:
            form.email.errors = [VAGUE_FAILURE]
            form.password.errors = [VAGUE_FAILURE]
        except SignInThrottled:
            form.email.errors = [THROTTLED]
            status = 429
        else:
            # The steps only read the person; the snapshot has what they ask and loads the
            # ORM User for anything else, so it stands in for one here (issue 3's budget).
            person = cast(User, result.user)
            pending = flow.parse(result.read_value) or flow.start(batch=batch)
            # Whoever signed in before in this browser, this is a fresh sign-in (E01).
            pending.sub = person.sub
            pending.done = []
            pending.amr = []
            flow.mark_done(pending, "password", amr=["pwd"], batch=batch)
            flow.request_cache()[flow.any_factor_key(person)] = result.has_any_factor
            flow.send_with_prefetch(pending, person, batch)
            return continue_sign_in(pending, person)
    if form.errors and status == 200:
        status = 400
    return render_template("auth/sign_in.html", form=form, title="Sign in"), status


def continue_sign_in(pending: flow.PendingSignIn, user: User | None = None) -> ResponseReturnValue:
    due = flow.next_step(pending, user)
    if due is not None:
        return redirect(url_for(due.endpoint), 303)
    return redirect(url_for("auth.finish"), 303)


@bp.get("/sign-in/finish")
def finish() -> ResponseReturnValue:
    """Every step is done: start a fresh SSO session (new cookie value, E01) and go on."""
    pending = flow.load()
    if pending is None or pending.sub is None:
        return redirect(url_for("auth.sign_in"))
    if flow.next_step(pending) is not None:
        return continue_sign_in(pending)
    user = pending.user()
    if user is None:
        flow.discard(pending)
        return redirect(url_for("auth.sign_in"))
    sessions = get_sso_sessions()
    old_cookie = current_cookie_value()
    current = current_sso_session()
    if pending.data.get("step_up") and old_cookie and current and current.sub == user.sub:
        # Step-up: the same session gains the new methods (same sid, new cookie value).
        acr = ACR_MFA if "mfa" in pending.amr else current.acr
        cookie, sso = sessions.reauthenticate(
            old_cookie, amr=pending.amr, acr=acr, staff=user.staff_role is not None
        )
        event = "sign_in.stepped_up"
    else:
        if old_cookie:
            sessions.end(old_cookie)  # never carry a previous session (or person) forward
        cookie, sso = sessions.create(
            user.sub,
            amr=pending.amr,
            acr=ACR_MFA if "mfa" in pending.amr else ACR_SINGLE_FACTOR,
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
            staff=user.staff_role is not None,  # K01: helpdesk staff get shorter timeouts
        )
        event = "sign_in.succeeded"
    with transaction():
        user.last_sign_in_at = utcnow()  # only a finished sign-in counts
        audit.record(
            event, actor=user.sub, target=user.sub, target_type="user", amr=pending.amr, sid=sso.sid
        )
    flow.discard(pending)
    g.sso_session = sso
    response: Response = redirect(landing(pending), 303)
    set_cookie(response, cookie)
    return response
