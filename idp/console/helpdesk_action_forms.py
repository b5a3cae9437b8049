"""Forms for the helpdesk's actions on a person, its MFA resets and its bulk actions (issue 8).

Every action form carries a reason (K02: who, when, *why*); the service layer checks it again
(:func:`idp.services.helpdesk_actions.clean_reason`), so a forged POST gains nothing.
There is deliberately no password field anywhere here (K02: the helpdesk never sets one).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length

from idp.auth.forms import MAX_EMAIL
from idp.services.helpdesk_actions import NAME_MAX, REASON_MAX
from idp.services.helpdesk_bulk import BULK_ACTIONS, BULK_LIMIT, LABELS
from idp.services.mfa_reset import CHECK_MAX

REASON_REQUIRED = "Enter a reason or a ticket reference"
REASON_TOO_LONG = f"The reason must be {REASON_MAX} characters or fewer"


def reason_field() -> TextAreaField:
    return TextAreaField(
        validators=[
            DataRequired(REASON_REQUIRED),
            Length(max=REASON_MAX, message=REASON_TOO_LONG),
        ]
    )


class ReasonForm(FlaskForm):
    """Confirm an action: the reason is all it needs."""

    reason = reason_field()


class ChangeEmailForm(FlaskForm):
    email = EmailField(
        validators=[
            DataRequired("Enter the new email address"),
            Length(max=MAX_EMAIL, message="Email address must be 320 characters or fewer"),
        ]
    )
    reason = reason_field()


class ChangeNameForm(FlaskForm):
    given_name = StringField(
        validators=[
            DataRequired("Enter the first name"),
            Length(max=NAME_MAX, message=f"The first name must be {NAME_MAX} characters or fewer"),
        ]
    )
    family_name = StringField(
        validators=[
            DataRequired("Enter the last name"),
            Length(max=NAME_MAX, message=f"The last name must be {NAME_MAX} characters or fewer"),
        ]
    )
    reason = reason_field()


class MfaResetForm(FlaskForm):
    """D07: how the caller's identity was checked, and why."""

    identity_check = TextAreaField(
        validators=[
            DataRequired("Enter how you checked who the caller is"),
            Length(
                max=CHECK_MAX,
                message=f"The identity check must be {CHECK_MAX} characters or fewer",
            ),
        ]
    )
    reason = reason_field()


class ApproveForm(FlaskForm):
    """Approving needs no reason of its own (the request has one); a note is kept if given."""

    note = TextAreaField(
        validators=[
            Length(max=REASON_MAX, message=f"The note must be {REASON_MAX} characters or fewer")
        ]
    )


class RejectForm(FlaskForm):
    note = TextAreaField(
        validators=[
            DataRequired("Enter why you are rejecting this reset"),
            Length(max=REASON_MAX, message=f"The note must be {REASON_MAX} characters or fewer"),
        ]
    )


#: (value, label) of each bulk action, in the order the radios show them.
BULK_CHOICES = [(action.value, LABELS[action]) for action in BULK_ACTIONS]


class BulkForm(FlaskForm):
    addresses = TextAreaField(
        validators=[
            DataRequired("Enter at least one email address"),
            # Room for 100 long addresses and separators; the count is checked by the service.
            Length(
                max=BULK_LIMIT * (MAX_EMAIL + 2),
                message=f"Enter {BULK_LIMIT} email addresses or fewer",
            ),
        ]
    )
    # The radios are drawn by the template (GOV.UK radios) from :data:`BULK_CHOICES`.
    action = StringField(
        validators=[
            InputRequired("Select what to do"),
            AnyOf([action.value for action in BULK_ACTIONS], message="Select what to do"),
        ]
    )
    reason = reason_field()
