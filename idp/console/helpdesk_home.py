"""The helpdesk console's front page, and the navigation every console page shows (K01).

The navigation lists the console's areas by endpoint name. Areas are built by separate page
modules (search here; actions, audit, import, services, organisations and bulk elsewhere), so
an area appears only once its endpoint exists, and the helpdesk-admin areas only to helpdesk
admins (their guards refuse everyone else anyway; K01 least privilege: do not offer them).
"""

from __future__ import annotations

from typing import Any, Final

from flask import current_app, g, render_template, request, url_for
from flask.typing import ResponseReturnValue

from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_required
from idp.models import StaffRole
from idp.services import helpdesk_people

#: (endpoint, link text, helpdesk admins only), in the order they are shown.
NAVIGATION: Final = (
    ("helpdesk.search", "Search", False),
    ("helpdesk.mfa_resets", "MFA resets", False),
    ("helpdesk.bulk", "Bulk actions", False),
    ("helpdesk.audit_log", "Audit log", False),
    ("helpdesk.import_staff", "Import from Authentix", False),
    ("helpdesk.services", "Services", True),
    ("helpdesk.organisations", "Organisations", True),
    ("helpdesk.staff", "Helpdesk staff", True),
)


@helpdesk_bp.context_processor
def console_navigation() -> dict[str, Any]:
    """``console_nav`` for console/layout.html: the areas this person may open."""
    user = g.get("console_user")
    if user is None:  # a refusal page: no console navigation for someone who cannot use it
        return {"console_nav": []}
    admin = user.staff_role is StaffRole.HELPDESK_ADMIN
    items = []
    for endpoint, text, admin_only in NAVIGATION:
        if endpoint not in current_app.view_functions or (admin_only and not admin):
            continue
        href = url_for(endpoint)
        # An area is current on its own page and every page under its path (its sub-pages).
        active = request.path == href or request.path.startswith(href.rstrip("/") + "/")
        items.append({"href": href, "text": text, "active": active})
    return {"console_nav": items}


@helpdesk_bp.get("/")
@helpdesk_required
def home() -> ResponseReturnValue:
    work = []
    pending = helpdesk_people.pending_work()
    if pending.mfa_resets_awaiting_approval:
        count = pending.mfa_resets_awaiting_approval
        work.append(
            {
                "text": f"{count} MFA reset{'s' if count != 1 else ''} waiting for a second "
                "helpdesk admin to approve",
                "href": url_for("helpdesk.mfa_resets")
                if "helpdesk.mfa_resets" in current_app.view_functions
                else None,
            }
        )
    if pending.access_requests_escalated:
        count = pending.access_requests_escalated
        work.append(
            {
                "text": f"{count} access request{'s' if count != 1 else ''} escalated because "
                "no approver answered",
                "href": None,
            }
        )
    return render_template(
        "console/home.html", title="Helpdesk console", staff=current_staff(), work=work
    )
