"""The helpdesk console's actions on one person, each with a reason (issue 8, K02).

Each action is a confirmation page (GET) and a POST with a required reason. The view checks the
form, calls one service in one unit of work (:mod:`idp.services.helpdesk_actions`, which holds
every rule, audits and emails), and goes back to the person's page with a message. A refused
action (not applicable, not permitted) is shown on the same page; nothing is half-done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from flask import abort, current_app, flash, redirect, url_for
from flask.typing import ResponseReturnValue

from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_required
from idp.console.helpdesk_action_forms import ChangeEmailForm, ChangeNameForm, ReasonForm
from idp.models import User
from idp.services import helpdesk_actions, users
from idp.services.helpdesk_actions import Action, ActionRefused, NotPermitted
from idp.services.transaction import transaction
from idp.web.forms import render_form


@dataclass(frozen=True)
class ActionPage:
    """How one reason-only action is worded on its confirmation page."""

    title: str  # the heading, "... for <name>" is added to the page title
    explain: str  # what will happen, in the person's terms
    button: str
    done: str  # the message shown afterwards; {email} is the person's address
    run: Callable[..., object]
    warning: bool = False


PAGES: Final = {
    Action.SEND_RESET: ActionPage(
        "Send a password reset link",
        "We will email a link to {email}. The person uses it to choose a new password. "
        "You will not see or set the password.",
        "Send reset link",
        "Password reset link sent to {email}",
        helpdesk_actions.send_password_reset,
    ),
    Action.RESEND_INVITATION: ActionPage(
        "Resend the invitation",
        "We will email a new invitation link to {email}. Older invitation links will stop working.",
        "Resend invitation",
        "Invitation sent again to {email}",
        helpdesk_actions.resend_invitation,
    ),
    Action.UNLOCK: ActionPage(
        "Unlock this account",
        "The person can try to sign in again straight away. We will email them to say so.",
        "Unlock account",
        "Account unlocked for {email}",
        helpdesk_actions.unlock,
    ),
    Action.SIGN_OUT: ActionPage(
        "Sign out everywhere",
        "The person will be signed out of Secure Access and every service on every device. "
        "We will email them to say so.",
        "Sign out everywhere",
        "{email} has been signed out everywhere",
        helpdesk_actions.sign_out_everywhere,
        warning=True,
    ),
    Action.DEACTIVATE: ActionPage(
        "Deactivate this account",
        "The person will be signed out everywhere and will not be able to sign in. Links we "
        "have emailed them will stop working. We will email them to say so.",
        "Deactivate account",
        "Account deactivated for {email}",
        helpdesk_actions.deactivate,
        warning=True,
    ),
    Action.REACTIVATE: ActionPage(
        "Reactivate this account",
        "The person will be able to sign in again. If they never set a password, we will "
        "send them a new invitation.",
        "Reactivate account",
        "Account reactivated for {email}",
        helpdesk_actions.reactivate,
    ),
}


def find_target(sub: str) -> User:
    """The person in the URL, or 404 (a sub is a UUID: anything longer is not one)."""
    user = users.find_by_sub(sub) if len(sub) <= 36 else None
    if user is None:
        abort(404)
    return user


def person_page(sub: str) -> str:
    """The person's page (issue 8's user page), or the console's front page without it."""
    if "helpdesk.user" in current_app.view_functions:
        return url_for("helpdesk.user", sub=sub)
    return url_for("helpdesk.home")


def _refused_status(error: ActionRefused) -> int:
    return 403 if isinstance(error, NotPermitted) else 409


@helpdesk_bp.route(
    "/users/<sub>/actions/<any(send_reset,resend_invitation,unlock,sign_out,"
    "deactivate,reactivate):action>",
    methods=["GET", "POST"],
)
@helpdesk_required
def action(sub: str, action: str) -> ResponseReturnValue:
    target = find_target(sub)
    page = PAGES[Action(action)]
    form = ReasonForm()
    problem, status = None, 200
    if form.validate_on_submit():
        try:
            with transaction():
                page.run(target, actor=current_staff(), reason=form.reason.data or "")
        except ActionRefused as refused:
            problem, status = str(refused), _refused_status(refused)
        else:
            flash(page.done.format(email=target.email))
            return redirect(person_page(sub), 303)
    body, form_status = render_form(
        "console/actions/confirm.html",
        form,
        target=target,
        page=page,
        explain=page.explain.format(email=target.email),
        problem=problem,
        back=person_page(sub),
        title=f"{page.title}: {target.name}",
    )
    return body, (status if problem else form_status)


@helpdesk_bp.route("/users/<sub>/actions/change_email", methods=["GET", "POST"])
@helpdesk_required
def change_email(sub: str) -> ResponseReturnValue:
    target = find_target(sub)
    form = ChangeEmailForm()
    problem, status = None, 200
    if form.validate_on_submit():
        try:
            with transaction():
                new = helpdesk_actions.change_email(
                    target,
                    form.email.data or "",
                    actor=current_staff(),
                    reason=form.reason.data or "",
                )
        except (users.InvalidEmail, users.RoleMailboxRefused, users.EmailAlreadyUsed) as bad:
            form.email.errors = [str(bad)]
        except ActionRefused as refused:
            problem, status = str(refused), _refused_status(refused)
        else:
            flash(f"Email address changed to {new}. We have told both addresses")
            return redirect(person_page(sub), 303)
    body, form_status = render_form(
        "console/actions/change_email.html",
        form,
        target=target,
        problem=problem,
        back=person_page(sub),
        title=f"Change email address: {target.name}",
    )
    return body, (status if problem else form_status)


@helpdesk_bp.route("/users/<sub>/actions/change_name", methods=["GET", "POST"])
@helpdesk_required
def change_name(sub: str) -> ResponseReturnValue:
    target = find_target(sub)
    form = ChangeNameForm()
    if not form.is_submitted():
        form.given_name.data, form.family_name.data = target.given_name, target.family_name
    problem, status = None, 200
    if form.validate_on_submit():
        try:
            with transaction():
                helpdesk_actions.change_name(
                    target,
                    form.given_name.data or "",
                    form.family_name.data or "",
                    actor=current_staff(),
                    reason=form.reason.data or "",
                )
        except ActionRefused as refused:
            problem, status = str(refused), _refused_status(refused)
        else:
            flash(f"Name changed to {target.name}")
            return redirect(person_page(sub), 303)
    body, form_status = render_form(
        "console/actions/change_name.html",
        form,
        target=target,
        problem=problem,
        back=person_page(sub),
        title=f"Change name: {target.name}",
    )
    return body, (status if problem else form_status)
