"""K01, K03: every console URL is guarded, proven by enumerating the routes.

Every rule under ``/helpdesk`` and ``/organisations`` is found in ``app.url_map`` (so a new page
is covered the moment it is registered), its URL built with dummy arguments, and requested
with each method it accepts (GET, POST with a valid CSRF token) by:

- nobody signed in: sent to sign in, for every console URL;
- a plain user, and an approver of a school: 403 on every helpdesk URL;
- a ``helpdesk`` agent (signed in with a security key): 403 on every helpdesk-admin URL.

A view without a ``console_guard`` (set by the guards in idp/console/guards.py) fails
:func:`test_every_console_view_has_a_guard`; a view whose guard lets the wrong person in
fails the refusals below. Approver pages check the organisation per page in the service
layer (tests/console/test_approver_*.py); here they must at least require a sign-in.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import AnyConverter, Rule

from idp.models import StaffRole
from tests.console.helpers import sign_in_staff
from tests.console.people import join, make_organisation
from tests.factories import SignIn, csrf_token, make_user

PREFIXES = ("/helpdesk", "/organisations")
GUARDS = {"helpdesk", "helpdesk_admin", "approver"}
METHODS = ("GET", "POST")


def console_rules(app: Flask) -> list[Rule]:
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if any(rule.rule == p or rule.rule.startswith(p + "/") for p in PREFIXES)
    ]
    assert rules, "no console routes found"
    return sorted(rules, key=lambda r: r.rule)


def guard_of(app: Flask, rule: Rule) -> str | None:
    return getattr(app.view_functions[rule.endpoint], "console_guard", None)


def dummy_url(app: Flask, rule: Rule) -> str:
    """The rule's URL with every argument filled with a value that matches nothing."""
    values: dict[str, object] = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]  # type: ignore[attr-defined]
        elif converter.regex == r"\d+":
            values[name] = 987654
        else:
            values[name] = "00000000-0000-4000-8000-000000000000"
    adapter = app.url_map.bind("localhost")
    return adapter.build(rule.endpoint, values, method=sorted(rule.methods or {"GET"})[0])


def requests_for(app: Flask, guards: set[str]) -> Iterator[tuple[str, str, str]]:
    """(method, url, endpoint) for every console rule with one of ``guards``."""
    for rule in console_rules(app):
        if guard_of(app, rule) not in guards:
            continue
        for method in METHODS:
            if method in (rule.methods or ()):
                yield method, dummy_url(app, rule), rule.endpoint


def admin_only_paths(app: Flask) -> list[str]:
    """The helpdesk-admin pages without URL arguments (for the navigation test)."""
    return [
        dummy_url(app, rule)
        for rule in console_rules(app)
        if guard_of(app, rule) == "helpdesk_admin" and not rule.arguments
    ]


def refusals(client: FlaskClient, app: Flask, guards: set[str], token_page: str) -> list[str]:
    """Request every URL with ``guards``; return those that did not answer 403."""
    token = csrf_token(client.get(token_page))
    wrong = []
    for method, url, endpoint in requests_for(app, guards):
        data = {"csrf_token": token, "reason": "permission test"} if method == "POST" else None
        response = client.open(url, method=method, data=data)
        if response.status_code != 403:
            wrong.append(f"{method} {url} ({endpoint}): {response.status_code}")
    return wrong


def test_every_console_view_has_a_guard(app: Flask) -> None:
    unguarded = [
        f"{rule.rule} ({rule.endpoint})"
        for rule in console_rules(app)
        if guard_of(app, rule) not in GUARDS
    ]
    assert unguarded == [], "console views without a guard from idp/console/guards.py"


def test_helpdesk_pages_use_a_helpdesk_guard(app: Flask) -> None:
    for rule in console_rules(app):
        if rule.rule.startswith("/helpdesk"):
            assert guard_of(app, rule) in {"helpdesk", "helpdesk_admin"}, rule.rule


def test_signed_out_is_sent_to_sign_in_everywhere(client: FlaskClient, app: Flask) -> None:
    token = csrf_token(client.get("/sign-in"))
    wrong = []
    for method, url, endpoint in requests_for(app, GUARDS):
        data = {"csrf_token": token} if method == "POST" else None
        response = client.open(url, method=method, data=data)
        location = response.headers.get("Location", "")
        if response.status_code not in (302, 303) or "/sign-in" not in location:
            wrong.append(f"{method} {url} ({endpoint}): {response.status_code} {location}")
    assert wrong == []


def test_plain_user_is_refused_every_helpdesk_page(client: FlaskClient, app: Flask) -> None:
    user = make_user()
    SignIn(client).completed(user.email)
    assert refusals(client, app, {"helpdesk", "helpdesk_admin"}, "/account/sessions") == []


def test_approver_is_refused_every_helpdesk_page(client: FlaskClient, app: Flask) -> None:
    approver = make_user()
    join(approver, make_organisation(), approver=True)
    SignIn(client).completed(approver.email)
    assert refusals(client, app, {"helpdesk", "helpdesk_admin"}, "/account/sessions") == []


def test_helpdesk_agent_is_refused_every_helpdesk_admin_page(
    client: FlaskClient, app: Flask
) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    assert refusals(client, app, {"helpdesk_admin"}, "/account/sessions") == []


@pytest.mark.parametrize("role", [StaffRole.HELPDESK, StaffRole.HELPDESK_ADMIN])
def test_helpdesk_staff_are_let_in(client: FlaskClient, app: Flask, role: StaffRole) -> None:
    """The refusals above mean something only if the right people do get in."""
    sign_in_staff(client, role)
    assert client.get("/helpdesk/").status_code == 200
    assert client.get("/helpdesk/search?q=anyone").status_code == 200
    for path in admin_only_paths(app):
        expected = 200 if role is StaffRole.HELPDESK_ADMIN else 403
        assert client.get(path).status_code == expected, path
