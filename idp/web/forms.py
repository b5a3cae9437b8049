"""Template helpers shared by every form page."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from flask_wtf import FlaskForm


def form_error_list(form: FlaskForm) -> list[dict[str, Any]]:
    """The error summary's entries: the first error of each field, linking to that field."""
    entries = []
    for field in form:
        if field.errors:
            entries.append({"text": field.errors[0], "href": f"#{field.id}"})
    return entries


def init_app(app: Flask) -> None:
    app.jinja_env.globals["form_error_list"] = form_error_list


def render_form(template: str, form: FlaskForm, **context: Any) -> tuple[str, int]:
    """Render a form page: 400 when it is shown again with errors, 200 otherwise."""
    return render_template(template, form=form, **context), 400 if form.errors else 200
