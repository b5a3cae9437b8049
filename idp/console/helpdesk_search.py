"""The helpdesk console's search: one box for people and organisations (issue 8, K02).

A GET form, so a search has a URL an agent can share or go back to, and needs no CSRF token
(it changes nothing). The rules of what matches live in :mod:`idp.services.helpdesk_search`.
"""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from idp.console.blueprints import helpdesk_bp
from idp.console.guards import helpdesk_required
from idp.services import helpdesk_search


class SearchForm(FlaskForm):
    """The search box. GET, read-only: no CSRF."""

    class Meta:
        csrf = False

    q = StringField(
        validators=[
            DataRequired("Enter an email address, name, organisation, URN or UKPRN"),
            Length(max=helpdesk_search.MAX_QUERY, message="Enter 200 characters or fewer"),
        ]
    )


def _page(name: str) -> int:
    value = request.args.get(name, "1")
    return int(value) if value.isdigit() and len(value) < 6 else 1


@helpdesk_bp.get("/search")
@helpdesk_required
def search() -> ResponseReturnValue:
    form = SearchForm(request.args)
    results = None
    if "q" in request.args and form.validate():
        try:
            results = helpdesk_search.search(
                form.q.data or "",
                page=_page("page"),
                organisation_page=_page("organisation_page"),
            )
        except helpdesk_search.QueryTooShort:
            form.q.errors = [
                f"Enter at least {helpdesk_search.MIN_FRAGMENT} letters or numbers, "
                "or a whole URN or UKPRN"
            ]
    title = f'Search results for "{form.q.data}"' if results else "Search"
    return render_template(
        "console/search.html",
        title=title,
        form=form,
        search_form=form,
        results=results,
        max_results=helpdesk_search.MAX_RESULTS,
    )
