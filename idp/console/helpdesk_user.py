"""The helpdesk console's page about one person, and about one organisation (issue 8, K02).

Read-only pages; the actions on a person (8b's :mod:`.helpdesk_actions` and
:mod:`.helpdesk_mfa_reset`) are linked from the ``console/_user_actions.html`` part of the
person's page. A ``sub`` or public id that matches nothing gets a 404 page.
"""

from __future__ import annotations

from flask import abort, current_app, render_template, url_for
from flask.typing import ResponseReturnValue

from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_required
from idp.models import StaffRole
from idp.services import audit_log, helpdesk_people
from idp.services.sso_sessions import get_sso_sessions


@helpdesk_bp.get("/users/<sub>")
@helpdesk_required
def user(sub: str) -> ResponseReturnValue:
    details = helpdesk_people.person(sub)
    if details is None:
        abort(404)
    store = get_sso_sessions()
    expiries = {s.sid: s.expires_at(store.idle, store.absolute) for s in details.sessions}
    return render_template(
        "console/user.html",
        title=f"Person: {details.user.name}",
        details=details,
        person=details.user,
        staff=current_staff(),
        session_expiries=expiries,
        view_names=current_app.view_functions,
        actors=audit_log.people_for(details.audit),
        person_label=audit_log.person_label,
    )


@helpdesk_bp.get("/organisations/<public_id>")
@helpdesk_required
def organisation(public_id: str) -> ResponseReturnValue:
    details = helpdesk_people.organisation(public_id)
    if details is None:
        abort(404)
    # Helpdesk admins may edit organisations (issue 8): link to that page where it exists.
    edit = "helpdesk.admin_organisation_edit"
    can_edit = (
        current_staff().staff_role is StaffRole.HELPDESK_ADMIN
        and edit in current_app.view_functions
    )
    return render_template(
        "console/organisation.html",
        title=f"Organisation: {details.organisation.name}",
        details=details,
        edit_url=url_for(edit, public_id=public_id) if can_edit else None,
    )
