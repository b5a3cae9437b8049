"""Services you have allowed: see and withdraw the consents given to services (F11).

Security requirement F11 (ASVS 10.7.2, 10.7.3): "Users can view and revoke grants." The page
lists every service that is not first-party the person has allowed
(:func:`idp.services.consents.consents_of`), what each may see or do, and when it was allowed,
with a "Withdraw" button per service (a CSRF-protected POST, E07). Withdrawing deletes the
consent and revokes the person's refresh tokens at that service in the same unit of work
(:func:`idp.services.consents.withdraw`; the revocation is :mod:`idp.oidc.consent`'s), so
the service cannot keep reading; it will ask again the next time they use it. The outcome is
a success banner on the same page (303 after the POST, RFC 9700 §4.12).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from idp.account.guards import login_required
from idp.account.views import current_user
from idp.services import consents
from idp.services.clients import find_service
from idp.services.transaction import transaction

bp = Blueprint("allowed_services", __name__, url_prefix="/account/allowed-services")


class WithdrawForm(FlaskForm):
    """Only a CSRF token: the service is in the URL."""


@bp.get("")
@login_required
def overview() -> ResponseReturnValue:
    """Each allowed service, what it may see, since when, and a "Withdraw" button."""
    user = current_user()
    return render_template(
        "account/allowed_services.html",
        title="Services you have allowed",
        allowed=[
            (consent, consents.abilities(consent.scopes, consent.service.name))
            for consent in consents.consents_of(user)
        ],
        form=WithdrawForm(),
    )


@bp.post("/<client_id>/withdraw")
@login_required
def withdraw(client_id: str) -> ResponseReturnValue:
    """Withdraw the consent to ``client_id``; its refresh tokens go with it."""
    form = WithdrawForm()
    user = current_user()
    service = find_service(client_id, active_only=False)
    if form.validate_on_submit() and service is not None:
        with transaction():
            withdrawn = consents.withdraw(user, service)
        if withdrawn:
            flash(
                f"You have withdrawn {service.name}'s access to your account. "
                "It will ask you again if you use it."
            )
    return redirect(url_for("allowed_services.overview"), 303)
