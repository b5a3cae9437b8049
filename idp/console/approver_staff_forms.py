"""Forms for an approver's people pages (issue 7).

Services and roles are checkboxes: ``services`` holds service client ids, ``roles`` holds
``client_id:role_code`` pairs. The choices are the services this approver may give at this
organisation (:func:`organisation_people.grantable_services`), so a forged value fails
validation with a message rather than reaching the service layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, RadioField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length

from idp.auth.forms import MAX_EMAIL
from idp.services.organisation_people import PersonRow, ServiceChoice

MAX_NAME = 100


def _role_value(client_id: str, code: str) -> str:
    return f"{client_id}:{code}"


class AccessForm(FlaskForm):
    """Which services and roles the person has at this organisation."""

    services = SelectMultipleField(choices=[], coerce=str, default=[])
    roles = SelectMultipleField(choices=[], coerce=str, default=[])
    #: The person's access when the page was opened (PersonRow.access_version), so a stale
    #: save from another tab is refused rather than undoing someone else's change.
    version = HiddenField(validators=[Length(max=64)])

    def offer(self, choices: Sequence[ServiceChoice]) -> None:
        self.services.choices = [SelectChoice(c.service.client_id, c.service.name) for c in choices]
        self.roles.choices = [
            SelectChoice(_role_value(c.service.client_id, role.code), role.name)
            for c in choices
            for role in c.roles
        ]

    def chosen(self) -> dict[str, list[str]]:
        """client_id -> role codes. Ticking a role implies its service."""
        wanted: dict[str, list[str]] = {cid: [] for cid in self.services.data or []}
        for value in self.roles.data or []:
            client_id, _, code = value.partition(":")
            wanted.setdefault(client_id, []).append(code)
        return wanted

    def show(self, row: PersonRow) -> None:
        """Tick what the person has now, and remember it (for the first view of the page)."""
        self.services.data = [view.service.client_id for view in row.grants]
        self.roles.data = [
            _role_value(view.service.client_id, role.code)
            for view in row.grants
            for role in view.roles
        ]
        self.version.data = row.access_version

    def validate(self, extra_validators=None) -> bool:  # type: ignore[no-untyped-def]
        # WTForms' message for a value outside the choices is technical; a forged value gets ours.
        ok: bool = super().validate(extra_validators)
        for field in (self.services, self.roles):
            if field.errors:
                field.errors[:] = ["Choose from the services and roles listed"]
        return ok


class InviteForm(AccessForm):
    email = EmailField(
        validators=[
            DataRequired("Enter their email address"),
            Length(max=MAX_EMAIL, message="Email address must be 320 characters or fewer"),
        ]
    )
    given_name = StringField(
        validators=[
            DataRequired("Enter their first name"),
            Length(max=MAX_NAME, message=f"First name must be {MAX_NAME} characters or fewer"),
        ]
    )
    family_name = StringField(
        validators=[
            DataRequired("Enter their last name"),
            Length(max=MAX_NAME, message=f"Last name must be {MAX_NAME} characters or fewer"),
        ]
    )
    approver = RadioField(
        choices=[SelectChoice("no", "No"), SelectChoice("yes", "Yes")],
        validators=[InputRequired("Select whether they will be an approver")],
        default="no",
    )

    # Field order for the error summary: the page's order, not the class hierarchy's.
    _order = ("email", "given_name", "family_name", "approver", "services", "roles")

    def __iter__(self):  # type: ignore[no-untyped-def]
        fields = {field.name: field for field in super().__iter__()}
        yield from (fields[name] for name in ("csrf_token", *self._order) if name in fields)


class ConfirmForm(FlaskForm):
    """Only a CSRF token: a confirmation button."""


class ApproverForm(FlaskForm):
    approver = RadioField(
        choices=[SelectChoice("yes", "Yes"), SelectChoice("no", "No")], validators=[InputRequired()]
    )
