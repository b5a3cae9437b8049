"""The helpdesk console's bulk actions on up to 100 people (issue 8).

One page: paste addresses, choose an action, give a reason; the result page shows each row's
outcome. The rules (the limit, which actions, one unit of work per row) are in
:mod:`idp.services.helpdesk_bulk`.
"""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_required
from idp.console.helpdesk_action_forms import BULK_CHOICES, BulkForm
from idp.services import helpdesk_bulk
from idp.services.helpdesk_actions import Action, ActionRefused
from idp.services.helpdesk_bulk import BULK_LIMIT, LABELS, Outcome
from idp.web.forms import render_form


@helpdesk_bp.route("/bulk", methods=["GET", "POST"])
@helpdesk_required
def bulk() -> ResponseReturnValue:
    form = BulkForm()
    if form.validate_on_submit():
        try:
            addresses = helpdesk_bulk.parse_addresses(form.addresses.data or "")
            action = Action(form.action.data)
            results = helpdesk_bulk.run(
                addresses, action, actor=current_staff(), reason=form.reason.data or ""
            )
        except (helpdesk_bulk.TooMany, ActionRefused, ValueError) as bad:
            form.addresses.errors = [str(bad)]
        else:
            return render_template(
                "console/actions/bulk_result.html",
                results=results,
                label=LABELS[action],
                done=sum(r.outcome is Outcome.DONE for r in results),
                Outcome=Outcome,
                title="Bulk action results",
            )
    return render_form(
        "console/actions/bulk.html",
        form,
        choices=BULK_CHOICES,
        limit=BULK_LIMIT,
        title="Bulk action",
    )
