"""Forms for the helpdesk admin's pages: services, organisations and helpdesk staff."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from idp.auth.forms import MAX_EMAIL
from idp.models import StaffRole
from idp.models.organisation import OrganisationStatus
from idp.models.service import AccessPolicy
from idp.services import clients, service_admin

YES_NO = [SelectChoice("yes", "Yes"), SelectChoice("no", "No")]


def lines(text: str | None) -> list[str]:
    """One URI a line; blank lines and surrounding spaces ignored (never inside a URI)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class _UriFields:
    redirect_uris = TextAreaField(validators=[Length(max=20_000)])
    post_logout_redirect_uris = TextAreaField(validators=[Length(max=20_000)])
    backchannel_logout_uri = StringField(validators=[Optional(), Length(max=2000)])


class RegisterServiceForm(_UriFields, FlaskForm):
    name = StringField(validators=[DataRequired("Enter the service's name"), Length(max=120)])
    client_id = StringField(validators=[DataRequired("Enter a client ID"), Length(max=64)])
    allowed_scopes = SelectMultipleField(
        choices=[SelectChoice(s, s) for s in clients.SUPPORTED_SCOPES],
        default=list(clients.DEFAULT_SCOPES),
    )
    grant_types = SelectMultipleField(
        choices=[SelectChoice(g, g.replace("_", " ")) for g in clients.SUPPORTED_GRANT_TYPES],
        default=list(clients.DEFAULT_GRANT_TYPES),
    )
    token_endpoint_auth_method = RadioField(
        choices=[
            SelectChoice("client_secret_basic", "Client secret in the Authorization header"),
            SelectChoice("client_secret_post", "Client secret in the request body"),
        ],
        default="client_secret_basic",
        validators=[InputRequired("Choose how the service authenticates")],
    )
    require_mfa = RadioField(
        choices=YES_NO,
        default="no",
        validators=[InputRequired("Choose whether the service requires a second factor")],
    )
    access_policy = RadioField(
        choices=[
            SelectChoice(AccessPolicy.GRANTED.value, "Only people an approver gives access"),
            SelectChoice(AccessPolicy.OPEN.value, "Anyone with an active account"),
        ],
        default=AccessPolicy.GRANTED.value,
        validators=[InputRequired("Choose who may sign in")],
    )

    def registration(self) -> dict[str, Any]:
        """The fields as :func:`idp.services.clients.register_service` takes them."""
        return {
            "client_id": (self.client_id.data or "").strip(),
            "name": (self.name.data or "").strip(),
            "redirect_uris": lines(self.redirect_uris.data),
            "post_logout_redirect_uris": lines(self.post_logout_redirect_uris.data),
            "backchannel_logout_uri": (self.backchannel_logout_uri.data or "").strip() or None,
            "allowed_scopes": list(self.allowed_scopes.data or []),
            "grant_types": list(self.grant_types.data or []),
            "token_endpoint_auth_method": self.token_endpoint_auth_method.data,
            "require_mfa": self.require_mfa.data == "yes",
            "access_policy": self.access_policy.data,
        }


class EditUrisForm(_UriFields, FlaskForm):
    pass


class RotateSecretForm(FlaskForm):
    overlap_days = RadioField(
        choices=[
            SelectChoice(str(d), f"{d} day" + ("s" if d > 1 else ""))
            for d in service_admin.OVERLAP_DAYS
        ],
        default="7",
        validators=[InputRequired("Choose how long the old secret keeps working")],
    )


class OrganisationSearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(validators=[Optional(), Length(max=255)])
    no_approver = BooleanField()


class OrganisationEditForm(FlaskForm):
    name = StringField(validators=[DataRequired("Enter the organisation's name"), Length(max=255)])
    status = RadioField(
        choices=[
            SelectChoice(s.value, s.value.replace("_", " ").capitalize())
            for s in OrganisationStatus
        ],
        validators=[InputRequired("Choose the organisation's status")],
    )
    urn = StringField(
        validators=[Optional(), Length(max=16, message="URN must be digits only, at most 16")]
    )
    ukprn = StringField(
        validators=[Optional(), Length(max=16, message="UKPRN must be digits only, at most 16")]
    )
    la_code = StringField(
        validators=[
            Optional(),
            Length(max=8, message="Local authority code must be digits only, at most 8"),
        ]
    )
    group_uid = StringField(
        validators=[Optional(), Length(max=16, message="Group UID must be digits only, at most 16")]
    )


ROLE_CHOICES = [
    SelectChoice(StaffRole.HELPDESK.value, "Helpdesk: support actions on people's accounts"),
    SelectChoice(
        StaffRole.HELPDESK_ADMIN.value,
        "Helpdesk admin: also manages services, organisations and helpdesk staff",
    ),
]


class AddStaffForm(FlaskForm):
    email = EmailField(
        validators=[
            DataRequired("Enter the person's email address"),
            Length(max=MAX_EMAIL, message="Email address must be 320 characters or fewer"),
        ]
    )
    role = RadioField(choices=ROLE_CHOICES, validators=[InputRequired("Choose a role")])


class ChangeStaffForm(FlaskForm):
    role = RadioField(
        choices=[*ROLE_CHOICES, SelectChoice("none", "No role: remove them from the helpdesk")],
        validators=[InputRequired("Choose a role")],
    )
