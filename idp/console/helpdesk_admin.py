"""The helpdesk console's pages for helpdesk admins (issue 8): registered services.

Register a service, rotate its secret, edit its redirect and logout URIs. Every rule (G04
secrets, F01/E03 URIs) and every audit record is the registry's
(:mod:`idp.services.clients`, through :mod:`idp.services.service_admin`); this module turns
forms into calls and the registry's problems into an error summary.

A new client secret appears once (``no-store``) and never again: it is not in the session
cookie, the database (only its keyed hash), a redirect URL or the logs. Registering and rotating
are Post/Redirect/Get: the POST registers or rotates and holds the secret
for one showing, bound to the admin's SSO session (:func:`service_admin.hold_for_showing`), and
redirects (303) to a page that shows it once; reloading that page neither rotates again nor
shows it again. Organisations and staff pages are in :mod:`.helpdesk_admin_orgs` and
:mod:`.helpdesk_admin_staff`.
"""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from wtforms import Field

from idp.auth.sso_cookie import current_sso_session
from idp.console.admin_forms import EditUrisForm, RegisterServiceForm, RotateSecretForm, lines
from idp.console.blueprints import helpdesk_bp
from idp.console.guards import current_staff, helpdesk_admin_required
from idp.models.service import Service
from idp.services import audit_log, clients, service_admin
from idp.services.transaction import transaction
from idp.store import get_store
from idp.web.forms import render_form

# Which form field a registry problem belongs to, by how the problem starts (first match).
_PROBLEM_FIELDS: tuple[tuple[str, str], ...] = (
    ("post_logout_redirect_uri", "post_logout_redirect_uris"),
    ("backchannel_logout_uri", "backchannel_logout_uri"),
    ("redirect_uri", "redirect_uris"),
    ("the authorization_code grant needs", "redirect_uris"),
    ("client_id", "client_id"),
    ("name", "name"),
    ("allowed_scopes", "allowed_scopes"),
    ("unsupported scopes", "allowed_scopes"),
    ("the offline_access scope", "allowed_scopes"),
    ("grant_types", "grant_types"),
    ("unsupported grant_types", "grant_types"),
    ("the refresh_token grant", "grant_types"),
    ("access_policy", "access_policy"),
    ("token_endpoint_auth_method", "token_endpoint_auth_method"),
)

_LABELS = {
    "post_logout_redirect_uri": "Sign-out return address",
    "backchannel_logout_uri": "Back-channel logout address",
    "redirect_uri": "Redirect URI",
}


def _plain(problem: str) -> str:
    """ "redirect_uri 'x': must use https" -> "Redirect URI 'x' must use https"."""
    for prefix, label in _LABELS.items():
        if problem.startswith(prefix + " "):
            problem = label + problem[len(prefix) :].replace("': ", "' ", 1)
            break
    return problem[:1].upper() + problem[1:]


def show_problems(form: RegisterServiceForm | EditUrisForm, problems: list[str]) -> None:
    """Put each registry problem on its field, so the error summary links to it."""
    fields: dict[str, Field] = {field.name: field for field in form}
    fallback = fields.get("client_id") or fields["redirect_uris"]
    for problem in problems:
        target = fallback
        for prefix, name in _PROBLEM_FIELDS:
            if problem.startswith(prefix) and name in fields:
                target = fields[name]
                break
        target.errors = [*list(target.errors), _plain(problem)]


def _no_store(body: str) -> ResponseReturnValue:
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _service(client_id: str) -> Service:
    service = clients.find_service(client_id, active_only=False)
    if service is None:
        abort(404)
    return service


@helpdesk_bp.get("/admin/services", endpoint="services")
@helpdesk_admin_required
def services_list() -> ResponseReturnValue:
    return render_template(
        "console/admin/services.html",
        title="Services",
        services=service_admin.list_services(),
    )


@helpdesk_bp.route("/admin/services/new", methods=["GET", "POST"])
@helpdesk_admin_required
def service_new() -> ResponseReturnValue:
    form = RegisterServiceForm()
    if form.validate_on_submit():
        try:
            with transaction():
                service, secret = service_admin.register(current_staff(), **form.registration())
        except clients.ServiceValidationError as error:
            show_problems(form, error.problems)
        except clients.ServiceExists:
            form.client_id.errors = ["A service with this client ID already exists"]
        else:
            if secret is None:  # private_key_jwt: nothing to show
                flash(f"{service.name} is registered")
                return redirect(url_for("helpdesk.service_page", client_id=service.client_id), 303)
            # Post/Redirect/Get, as for a rotation: a reload shows the page, never registers
            # again. No old secret, so no overlap (0 days tells the page it is a registration).
            service_admin.hold_for_showing(
                get_store(), _sid(), service.client_id, secret, overlap_days=0
            )
            return redirect(
                url_for("helpdesk.service_new_secret", client_id=service.client_id), 303
            )
    return render_form("console/admin/service_new.html", form, title="Register a service")


def _service_page(service: Service, rotate: RotateSecretForm | None = None) -> ResponseReturnValue:
    form = rotate or RotateSecretForm()
    return render_form(
        "console/admin/service.html",
        form,
        title=f"Service: {service.name}",
        service=service,
        secrets=sorted(service.secrets, key=lambda s: s.created_at, reverse=True),
        rotate=form,
        uk_time=audit_log.uk_time,
    )


@helpdesk_bp.get("/admin/services/<client_id>")
@helpdesk_admin_required
def service_page(client_id: str) -> ResponseReturnValue:
    return _service_page(_service(client_id))


@helpdesk_bp.route("/admin/services/<client_id>/uris", methods=["GET", "POST"])
@helpdesk_admin_required
def service_uris(client_id: str) -> ResponseReturnValue:
    service = _service(client_id)
    form = EditUrisForm()
    if not form.is_submitted():
        form.redirect_uris.data = "\n".join(service.redirect_uris)
        form.post_logout_redirect_uris.data = "\n".join(service.post_logout_redirect_uris)
        form.backchannel_logout_uri.data = service.backchannel_logout_uri or ""
    elif form.validate():
        try:
            with transaction():
                changed = service_admin.update_uris(
                    current_staff(),
                    service,
                    redirect_uris=lines(form.redirect_uris.data),
                    post_logout_redirect_uris=lines(form.post_logout_redirect_uris.data),
                    backchannel_logout_uri=(form.backchannel_logout_uri.data or "").strip(),
                )
        except clients.ServiceValidationError as error:
            service = _service(client_id)
            show_problems(form, error.problems)
        else:
            flash("Addresses saved" if changed else "Nothing changed")
            return redirect(url_for("helpdesk.service_page", client_id=client_id), 303)
    return render_form(
        "console/admin/service_uris.html",
        form,
        title=f"Change addresses for {service.name}",
        service=service,
    )


@helpdesk_bp.post("/admin/services/<client_id>/rotate")
@helpdesk_admin_required
def service_rotate(client_id: str) -> ResponseReturnValue:
    service = _service(client_id)
    form = RotateSecretForm()
    if not form.validate_on_submit():
        return _service_page(service, form)
    try:
        with transaction():
            secret = service_admin.rotate_secret(
                current_staff(), service, overlap_days=int(form.overlap_days.data)
            )
    except clients.ServiceValidationError as error:
        form.overlap_days.errors = [_plain(p) for p in error.problems]
        return _service_page(_service(client_id), form)
    service_admin.hold_for_showing(
        get_store(),
        _sid(),
        service.client_id,
        secret,
        overlap_days=int(form.overlap_days.data),
    )
    return redirect(url_for("helpdesk.service_new_secret", client_id=service.client_id), 303)


@helpdesk_bp.get("/admin/services/<client_id>/new-secret")
@helpdesk_admin_required
def service_new_secret(client_id: str) -> ResponseReturnValue:
    """Show the secret a registration or rotation made, once: a reload says it was shown."""
    service = _service(client_id)
    held = service_admin.take_for_showing(get_store(), _sid(), service.client_id)
    secret, days = held if held is not None else (None, None)
    if held is None:
        heading = f"The new secret for {service.name} has already been shown"
    elif days == 0:
        heading = f"{service.name} is registered"
    else:
        heading = f"New secret for {service.name}"
    return _no_store(
        render_template(
            "console/admin/service_secret.html",
            title=heading,
            heading=heading,
            service=service,
            secret=secret,
            overlap_days=days,
            shown_already=held is None,
        )
    )


def _sid() -> str:
    """The admin's SSO session id: the console guard has made sure there is one."""
    session = current_sso_session()
    if session is None:  # helpdesk_admin_required has refused this already
        abort(403)
    return session.sid
