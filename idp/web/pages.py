"""Public pages that belong to no journey: the start page and static information."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("pages", __name__)


@bp.get("/")
def start() -> ResponseReturnValue:
    return render_template("pages/start.html")
