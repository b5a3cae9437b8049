"""The helpdesk console's front page."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_required


@helpdesk_bp.get("/")
@helpdesk_required
def home() -> ResponseReturnValue:
    return render_template("console/home.html", title="Helpdesk console", staff=current_staff())
