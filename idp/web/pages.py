"""Public pages that belong to no journey: the start page and static information."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template, send_from_directory
from flask.typing import ResponseReturnValue

bp = Blueprint("pages", __name__)


@bp.get("/")
def start() -> ResponseReturnValue:
    return render_template("pages/start.html")


@bp.get("/assets/<path:filename>")
def govuk_assets(filename: str) -> ResponseReturnValue:
    """GOV.UK Frontend's compiled CSS refers to its fonts and images under /assets/."""
    folder = Path(bp.root_path).parent / "static" / "govuk" / "assets"
    return send_from_directory(folder, filename, max_age=86400)
