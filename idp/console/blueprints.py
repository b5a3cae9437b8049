"""The console's blueprints. Page modules import these and add routes to them."""

from __future__ import annotations

from flask import Blueprint

#: The helpdesk console: helpdesk staff only, signed in with a security key or passkey.
helpdesk_bp = Blueprint("helpdesk", __name__, url_prefix="/helpdesk")

#: An organisation's approver pages: approvers of that organisation only.
approver_bp = Blueprint("approver", __name__, url_prefix="/organisations")
