"""An approver's pages for their organisation's people (issue 7): list, invite, change access,
remove, promote or demote, resend an invitation.

Each view turns the request into one :mod:`idp.services.organisation_people` call. That module
checks that the signed-in person is an approver of *this* organisation and that the person
named in the URL belongs to it; when not, the page is "Page not found" (404) and the attempt is
audited, so a forged id reveals nothing about another school (D06 forced browsing).
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from idp.console.approver_staff_forms import AccessForm, ApproverForm, ConfirmForm, InviteForm
from idp.console.blueprints import approver_bp
from idp.console.guards import approver_required, current_staff
from idp.models import Organisation, UserStatus
from idp.services import organisation_people as people
from idp.services import users
from idp.services.organisation_people import (
    AccessError,
    ChangedMeanwhile,
    NotPermitted,
    PersonRow,
)
from idp.services.transaction import transaction
from idp.web.forms import render_form

TEMPLATES = "console/approver_staff"


def _not_found(org_id: str, sub: str | None = None) -> NoReturn:
    """Audit the refused attempt, then the plain not-found page."""
    with transaction():
        people.record_refusal(current_staff(), org_id, sub)
    abort(404)


def _organisation(org_id: str) -> Organisation:
    try:
        return people.organisation_for(current_staff(), org_id)
    except NotPermitted:
        _not_found(org_id)


def _person(organisation: Organisation, sub: str) -> PersonRow:
    try:
        return people.person(current_staff(), organisation, sub)
    except NotPermitted:
        _not_found(organisation.public_id, sub)


def _requests_url(organisation: Organisation) -> str | None:
    """The access-requests page, when that module is installed (issue 7, another page set)."""
    if "approver.requests" not in current_app.view_functions:
        return None
    # Whatever that page names its one URL argument (org_id or organisation_id).
    rules = list(current_app.url_map.iter_rules("approver.requests"))
    if len(rules) != 1 or len(rules[0].arguments) != 1:
        return None
    values: dict[str, Any] = {next(iter(rules[0].arguments)): organisation.public_id}
    return url_for("approver.requests", **values)


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) < 7 else 1


@approver_bp.get("/")
@approver_required
def organisations() -> ResponseReturnValue:
    """Where the signed-in person approves: one organisation goes straight to its people."""
    found = people.organisations_approved_by(current_staff())
    if not found:
        return (
            render_template(f"{TEMPLATES}/not_an_approver.html", title="You are not an approver"),
            403,
        )
    if len(found) == 1:
        return redirect(url_for("approver.people", org_id=found[0].public_id))
    return render_template(
        f"{TEMPLATES}/organisations.html", title="Your organisations", organisations=found
    )


@approver_bp.get("/<org_id>/people", endpoint="people")
@approver_required
def people_list(org_id: str) -> ResponseReturnValue:
    organisation = _organisation(org_id)
    search = request.args.get("q", "")[:200]
    page = people.list_people(current_staff(), organisation, search=search, page=_page_number())
    return render_template(
        f"{TEMPLATES}/people.html",
        title=f"People at {organisation.name}",
        organisation=organisation,
        page=page,
        search=search,
        requests_url=_requests_url(organisation),
        several=len(people.organisations_approved_by(current_staff())) > 1,
    )


@approver_bp.route("/<org_id>/people/invite", methods=["GET", "POST"])
@approver_required
def invite(org_id: str) -> ResponseReturnValue:
    organisation = _organisation(org_id)
    actor = current_staff()
    choices = people.grantable_services(actor, organisation)
    form = InviteForm()
    form.offer(choices)
    if form.validate_on_submit():
        try:
            with transaction():
                outcome = people.invite_person(
                    actor,
                    organisation,
                    email=form.email.data or "",
                    given_name=form.given_name.data or "",
                    family_name=form.family_name.data or "",
                    approver=form.approver.data == "yes",
                    services=form.chosen(),
                )
        except (users.InvalidEmail, users.RoleMailboxRefused) as error:
            form.email.errors.append(str(error))
        except AccessError as error:
            form.email.errors.append(str(error))
        else:
            # The same words whether or not they already had an account: the approver does not
            # need to know, and the person's email says which it was.
            flash(f"{outcome.user.name} has been added to {organisation.name} and sent an email")
            return redirect(url_for("approver.people", org_id=organisation.public_id))
    return render_form(
        f"{TEMPLATES}/invite.html",
        form,
        title=f"Invite someone to {organisation.name}",
        organisation=organisation,
        choices=choices,
    )


@approver_bp.route("/<org_id>/people/<sub>", methods=["GET", "POST"])
@approver_required
def person(org_id: str, sub: str) -> ResponseReturnValue:
    """The person's page: their access here (checkboxes), approver role, and actions."""
    organisation = _organisation(org_id)
    row = _person(organisation, sub)
    actor = current_staff()
    choices = people.grantable_services(actor, organisation)
    form = AccessForm()
    form.offer(choices)
    if request.method == "GET":
        form.show(row)
    elif form.validate_on_submit():
        try:
            with transaction():
                changed = people.change_access(
                    actor, organisation, sub, form.chosen(), expected_version=form.version.data
                )
        except ChangedMeanwhile as error:
            # Show what they have now, so the approver decides again from the truth.
            row = _person(organisation, sub)
            form = AccessForm(formdata=None)
            form.offer(choices)
            form.show(row)
            form.services.errors = [str(error)]
        except AccessError as error:
            form.services.errors.append(str(error))
        else:
            flash(
                f"{row.user.name}'s services have been changed and they have been sent an email"
                if changed
                else f"No changes were made to {row.user.name}'s services"
            )
            return redirect(url_for("approver.person", org_id=org_id, sub=sub))
    return render_form(
        f"{TEMPLATES}/person.html",
        form,
        title=f"{row.user.name} at {organisation.name}",
        organisation=organisation,
        row=row,
        choices=choices,
        approver_form=ApproverForm(formdata=None),
        confirm_form=ConfirmForm(formdata=None),
        invited=row.user.status is UserStatus.INVITED,
        error=None,
    )


@approver_bp.post("/<org_id>/people/<sub>/approver")
@approver_required
def change_approver(org_id: str, sub: str) -> ResponseReturnValue:
    organisation = _organisation(org_id)
    row = _person(organisation, sub)
    form = ApproverForm()
    if not form.validate_on_submit():
        abort(400)
    make = form.approver.data == "yes"
    try:
        with transaction():
            people.set_approver(current_staff(), organisation, sub, make)
    except AccessError as error:
        return _person_page_with_error(organisation, sub, str(error))
    flash(
        f"{row.user.name} is now an approver and has been sent an email"
        if make
        else f"{row.user.name} is no longer an approver and has been sent an email"
    )
    if not make and row.user.id == current_staff().id:
        return redirect(url_for("approver.organisations"))
    return redirect(url_for("approver.person", org_id=org_id, sub=sub))


@approver_bp.post("/<org_id>/people/<sub>/resend-invitation")
@approver_required
def resend_invitation(org_id: str, sub: str) -> ResponseReturnValue:
    organisation = _organisation(org_id)
    _person(organisation, sub)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        with transaction():
            user = people.resend_invitation(current_staff(), organisation, sub)
    except AccessError as error:
        return _person_page_with_error(organisation, sub, str(error))
    flash(f"A new invitation has been sent to {user.email}")
    return redirect(url_for("approver.person", org_id=org_id, sub=sub))


@approver_bp.route("/<org_id>/people/<sub>/remove", methods=["GET", "POST"])
@approver_required
def remove(org_id: str, sub: str) -> ResponseReturnValue:
    """Confirm, then remove; the result page says whether their account was closed."""
    organisation = _organisation(org_id)
    row = _person(organisation, sub)
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        try:
            with transaction():
                removal = people.remove_person(current_staff(), organisation, sub)
        except AccessError as refused:
            error = str(refused)
        else:
            return render_template(
                f"{TEMPLATES}/removed.html",
                title=f"{removal.user.name} has been removed from {organisation.name}",
                organisation=organisation,
                removal=removal,
                removed_self=removal.user.id == current_staff().id,
            )
    return (
        render_template(
            f"{TEMPLATES}/remove.html",
            title=f"Remove {row.user.name} from {organisation.name}",
            organisation=organisation,
            row=row,
            form=form,
            error=error,
            last_organisation=len(row.user.memberships) == 1,
        ),
        400 if error else 200,
    )


def _person_page_with_error(
    organisation: Organisation, sub: str, error: str
) -> ResponseReturnValue:
    """The person's page again, with a refusal (e.g. the last approver) at the top."""
    row = _person(organisation, sub)
    choices = people.grantable_services(current_staff(), organisation)
    form = AccessForm(formdata=None)
    form.offer(choices)
    form.show(row)
    return (
        render_template(
            f"{TEMPLATES}/person.html",
            title=f"{row.user.name} at {organisation.name}",
            organisation=organisation,
            row=row,
            choices=choices,
            form=form,
            approver_form=ApproverForm(formdata=None),
            confirm_form=ConfirmForm(formdata=None),
            invited=row.user.status is UserStatus.INVITED,
            error=error,
        ),
        400,
    )
