"""The helpdesk admin's staff page (issue 8): who is on the helpdesk, give, change or remove a
role. The last-admin rule, the email and the audit record are in
:mod:`idp.services.helpdesk_staff`."""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue

from idp.console.admin_forms import AddStaffForm, ChangeStaffForm
from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_admin_required
from idp.models import StaffRole
from idp.services import helpdesk_staff
from idp.services.transaction import transaction
from idp.web.forms import render_form


def _staff_page(form: AddStaffForm) -> ResponseReturnValue:
    return render_form(
        "console/admin/staff.html",
        form,
        title="Helpdesk staff",
        staff=helpdesk_staff.list_staff(),
        role_names=helpdesk_staff.ROLE_NAMES,
        me=current_staff(),
    )


@helpdesk_bp.route("/admin/staff", methods=["GET", "POST"], endpoint="staff")
@helpdesk_admin_required
def staff_list() -> ResponseReturnValue:
    form = AddStaffForm()
    if form.validate_on_submit():
        try:
            with transaction():
                person = helpdesk_staff.give_role_by_email(
                    current_staff(), form.email.data or "", StaffRole(form.role.data)
                )
        except helpdesk_staff.StaffRoleError as error:
            form.email.errors = [str(error)]
        else:
            flash(f"{person.name} is now {helpdesk_staff.ROLE_NAMES[StaffRole(form.role.data)]}")
            return redirect(url_for("helpdesk.staff"), 303)
    return _staff_page(form)


@helpdesk_bp.route("/admin/staff/<sub>", methods=["GET", "POST"])
@helpdesk_admin_required
def staff_change(sub: str) -> ResponseReturnValue:
    person = helpdesk_staff.find_staff(sub)
    if person is None:
        abort(404)
    form = ChangeStaffForm()
    if not form.is_submitted() and person.staff_role is not None:
        form.role.data = person.staff_role.value
    elif form.validate_on_submit():
        role = None if form.role.data == "none" else StaffRole(form.role.data)
        try:
            with transaction():
                helpdesk_staff.set_role(current_staff(), person, role)
        except helpdesk_staff.StaffRoleError as error:
            form.role.errors = [str(error)]
            person = helpdesk_staff.find_staff(sub) or person
        else:
            flash(
                f"{person.name} is no longer on the helpdesk"
                if role is None
                else f"{person.name} is now {helpdesk_staff.ROLE_NAMES[role]}"
            )
            return redirect(url_for("helpdesk.staff"), 303)
    return render_form(
        "console/admin/staff_change.html", form, title=f"Change {person.name}'s role", person=person
    )
