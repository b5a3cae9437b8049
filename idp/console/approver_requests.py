"""An approver's pages for access requests: list, approve, reject (issue 7).

``/organisations/<organisation public id>/requests`` lists the organisation's waiting requests;
each opens a page with an approve form (roles the organisation's type may hold for that service)
and a reject form (a reason the requester is told). Who may see and decide is checked in
:mod:`idp.services.access_requests`, not here: an organisation the signed-in person does not
approve for, or a request that is not that organisation's, is a 404 whatever id is forged, so
no page reveals another school's requests (security-requirements K02-style least privilege).
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from idp.console.blueprints import approver_bp
from idp.console.guards import approver_required, current_staff
from idp.services import access, access_requests
from idp.services.access_requests import AccessRequestError, RequestNotFound, RequestView
from idp.services.transaction import transaction


class ApproveForm(FlaskForm):
    roles = SelectMultipleField(
        "Roles",
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=True,
    )


class RejectForm(FlaskForm):
    reason = TextAreaField(
        validators=[
            DataRequired("Enter a reason for rejecting the request"),
            Length(
                max=access_requests.MAX_REASON_LENGTH,
                message="Reason must be 1,000 characters or fewer",
            ),
        ]
    )


def _find(organisation_id: str, request_id: str) -> RequestView:
    try:
        return access_requests.for_approver(current_staff(), organisation_id, request_id)
    except RequestNotFound:
        abort(404)


@approver_bp.get("/<organisation_id>/requests")
@approver_required
def requests(organisation_id: str) -> ResponseReturnValue:
    """The organisation's waiting requests, oldest first."""
    staff = current_staff()
    try:
        organisation = access_requests.organisation_for_approver(staff, organisation_id)
        waiting = access_requests.pending(staff, organisation)
    except RequestNotFound:
        abort(404)
    return render_template(
        "console/approver_requests.html",
        title=f"Access requests for {organisation.name}",
        organisation=organisation,
        waiting=waiting,
    )


def _decide_page(
    view: RequestView, approve_form: ApproveForm, reject_form: RejectForm
) -> tuple[str, int]:
    approve_form.roles.choices = [
        (role.code, role.name) for role in access.roles_allowed(view.service, view.organisation)
    ]
    if approve_form.roles.data is None:
        approve_form.roles.data = list(view.request.requested_roles or [])
    status = 400 if approve_form.errors or reject_form.errors else 200
    return (
        render_template(
            "console/approver_request.html",
            title=f"Request from {view.requester.name} for {view.service.name}",
            view=view,
            approve_form=approve_form,
            reject_form=reject_form,
            form=approve_form if approve_form.errors else reject_form,
        ),
        status,
    )


@approver_bp.get("/<organisation_id>/requests/<request_id>")
@approver_required
def request_detail(organisation_id: str, request_id: str) -> ResponseReturnValue:
    view = _find(organisation_id, request_id)
    return _decide_page(view, ApproveForm(), RejectForm(formdata=None))


def _back(view: RequestView, message: str) -> Response:
    flash(message)
    return redirect(url_for("approver.requests", organisation_id=view.organisation.public_id), 303)


@approver_bp.post("/<organisation_id>/requests/<request_id>/approve")
@approver_required
def approve_request(organisation_id: str, request_id: str) -> ResponseReturnValue:
    view = _find(organisation_id, request_id)
    form = ApproveForm()
    form.roles.choices = [
        (role.code, role.name) for role in access.roles_allowed(view.service, view.organisation)
    ]
    if form.validate_on_submit():
        try:
            with transaction():
                access_requests.approve(current_staff(), view, form.roles.data or [])
        except RequestNotFound:
            abort(404)
        except AccessRequestError as error:
            form.roles.errors = [str(error)]
        else:
            return _back(
                view,
                f"{view.requester.name} can now use {view.service.name}. We have emailed them.",
            )
    return _decide_page(view, form, RejectForm(formdata=None))


@approver_bp.post("/<organisation_id>/requests/<request_id>/reject")
@approver_required
def reject_request(organisation_id: str, request_id: str) -> ResponseReturnValue:
    view = _find(organisation_id, request_id)
    form = RejectForm()
    if form.validate_on_submit():
        try:
            with transaction():
                access_requests.reject(current_staff(), view, form.reason.data or "")
        except RequestNotFound:
            abort(404)
        except AccessRequestError as error:
            form.reason.errors = [str(error)]
        else:
            return _back(view, f"Request rejected. We have emailed {view.requester.name}.")
    return _decide_page(view, ApproveForm(formdata=None), form)
