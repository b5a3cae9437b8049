"""The helpdesk admin's organisation pages (issue 8): list and search, view, edit.

Under ``/helpdesk/admin/organisations`` (the helpdesk's read-only organisation page, from the
search, lives elsewhere). Rules, uniqueness checks and the audit record are in
:mod:`idp.services.organisation_admin`.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from idp.console.admin_forms import OrganisationEditForm, OrganisationSearchForm
from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_admin_required
from idp.models import Organisation
from idp.services import organisation_admin
from idp.services.transaction import transaction
from idp.web.forms import render_form


def _organisation(public_id: str) -> Organisation:
    organisation = organisation_admin.get(public_id)
    if organisation is None:
        abort(404)
    return organisation


@helpdesk_bp.get("/admin/organisations", endpoint="organisations")
@helpdesk_admin_required
def organisations_list() -> ResponseReturnValue:
    form = OrganisationSearchForm(request.args)
    form.validate()
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    result = organisation_admin.search(
        form.q.data or "", page=page, only_without_approver=bool(form.no_approver.data)
    )
    filters = {k: v for k, v in request.args.items() if k in ("q", "no_approver") and v}
    return render_template(
        "console/admin/organisations.html",
        title="Organisations",
        form=form,
        result=result,
        filters=filters,
    )


@helpdesk_bp.get("/admin/organisations/<public_id>")
@helpdesk_admin_required
def admin_organisation(public_id: str) -> ResponseReturnValue:
    organisation = _organisation(public_id)
    return render_template(
        "console/admin/organisation.html",
        title=f"Organisation: {organisation.name}",
        organisation=organisation,
        people=organisation_admin.people(organisation),
        lacks_approver=organisation_admin.lacks_approver(organisation),
    )


@helpdesk_bp.route("/admin/organisations/<public_id>/edit", methods=["GET", "POST"])
@helpdesk_admin_required
def admin_organisation_edit(public_id: str) -> ResponseReturnValue:
    organisation = _organisation(public_id)
    form = OrganisationEditForm(obj=None if request.method == "POST" else organisation)
    if request.method == "GET":
        form.status.data = organisation.status.value
    if form.validate_on_submit():
        try:
            with transaction():
                changed = organisation_admin.update(
                    current_staff(),
                    organisation,
                    {name: form[name].data for name in organisation_admin.EDITABLE},
                )
        except organisation_admin.OrganisationInvalid as error:
            for name, message in error.problems.items():
                form[name].errors = [message]
            organisation = _organisation(public_id)
        else:
            flash("Organisation saved" if changed else "Nothing changed")
            return redirect(url_for("helpdesk.admin_organisation", public_id=public_id), 303)
    return render_form(
        "console/admin/organisation_edit.html",
        form,
        title=f"Change {organisation.name}",
        organisation=organisation,
    )
