"""Your services: what you can use at each of your organisations, and asking for more.

Issue 7: signing in at the provider directly (no service waiting) lands here
(:data:`idp.auth.sign_in.DEFAULT_LANDING`). Each service links to its ``start_url`` from the
registry (through :func:`open_service`, which first remembers the organisation the link was
under), which starts that service's own sign-in, so one click signs the person straight in
through their live SSO session, acting for that organisation. Services they could use but lack
link to the request form, which is also where the no-access page (:mod:`idp.oidc.endpoints`)
posts its "Request access" button. The rules (who may ask, one pending request, who is
emailed) live in :mod:`idp.services.access_requests`; this module only shows pages.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint, abort, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from idp.account.guards import login_required
from idp.account.views import current_user
from idp.auth.sso_cookie import current_sso_session
from idp.models import Organisation, Service, User
from idp.services import access, access_requests, organisation_choice, service_catalogue
from idp.services.clients import find_service
from idp.services.transaction import transaction
from idp.web.forms import render_form

bp = Blueprint("services", __name__, url_prefix="/services")


class RequestAccessForm(FlaskForm):
    """Which of your organisations, and (optionally) why."""

    organisation = RadioField(
        "Which organisation do you need it for?",
        validators=[DataRequired("Select the organisation you need access for")],
        validate_choice=True,
    )
    reason = TextAreaField(
        validators=[
            Optional(),
            Length(
                max=access_requests.MAX_REASON_LENGTH,
                message="Reason must be 1,000 characters or fewer",
            ),
        ]
    )

    @classmethod
    def for_organisations(cls, organisations: Sequence[Organisation]) -> RequestAccessForm:
        form = cls()
        form.organisation.choices = [(o.public_id, o.name) for o in organisations]
        if len(organisations) == 1 and not form.organisation.data:
            form.organisation.data = organisations[0].public_id
        return form


@bp.get("")
@login_required
def overview() -> ResponseReturnValue:
    """The person's services per organisation, and the ones they could ask for."""
    user = current_user()
    return render_template(
        "account/services.html",
        title="Your services",
        user=user,
        catalogue=service_catalogue.catalogue(user),
    )


@bp.get("/<client_id>/open/<organisation_id>")
@login_required
def open_service(client_id: str, organisation_id: str) -> ResponseReturnValue:
    """Go to the service's start page acting for this organisation.

    The choice is remembered for this SSO session and service first
    (:mod:`idp.services.organisation_choice`), so the service's sign-in that follows does not
    ask again which organisation: the link the person clicked already said.
    """
    user = current_user()
    service = find_service(client_id)
    organisations = [m.organisation for m in access.memberships_of(user)]
    organisation = organisation_choice.find(organisations, organisation_id)
    sso = current_sso_session()
    if (
        service is None
        or not service.start_url
        or organisation is None
        or sso is None
        or not access.has_access(user, service, organisation)
    ):
        abort(404)
    organisation_choice.remember(sso.sid, service.client_id, organisation)
    return redirect(service.start_url, 303)


def _requestable_at(user: User, service: Service) -> list[Organisation]:
    return [
        m.organisation
        for m in access.memberships_of(user)
        if access_requests.can_request(user, m.organisation, service)
    ]


@bp.route("/<client_id>/request-access", methods=["GET", "POST"])
@login_required
def request_access(client_id: str) -> ResponseReturnValue:
    """Ask an organisation's approvers for ``client_id``; GET shows the form (optionally
    pre-selecting ``?organisation=<public id>``), POST sends it."""
    user = current_user()
    service = find_service(client_id)
    if service is None:
        abort(404)
    organisations = _requestable_at(user, service)
    form = RequestAccessForm.for_organisations(organisations)
    wanted = request.args.get("organisation")
    if request.method == "GET" and any(o.public_id == wanted for o in organisations):
        form.organisation.data = wanted
    context = {
        "title": f"Request access to {service.name}",
        "service": service,
        "approvers": {o.public_id: access.approvers_of(o) for o in organisations},
    }
    if not organisations:
        return render_template(
            "account/request_access_unavailable.html",
            title=f"You cannot request access to {service.name}",
            service=service,
        )
    if form.validate_on_submit():
        organisation = next(o for o in organisations if o.public_id == form.organisation.data)
        try:
            with transaction():
                access_requests.create(user, organisation, service, reason=form.reason.data)
        except access_requests.AlreadyRequested:
            already = True
        except access_requests.AccessRequestError as error:
            form.organisation.errors = [str(error)]
            return render_form("account/request_access.html", form, **context)
        else:
            already = False
        return render_template(
            "account/request_sent.html",
            title="Access already requested" if already else "Access requested",
            service=service,
            organisation=organisation,
            already=already,
            approvers=access.approvers_of(organisation),
        )
    return render_form("account/request_access.html", form, **context)
