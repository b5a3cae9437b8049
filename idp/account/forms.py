"""Forms for the account pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Length

from idp.auth.forms import MAX_EMAIL, MAX_PASSWORD


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        validators=[DataRequired("Enter your current password"), Length(max=MAX_PASSWORD)]
    )
    new_password = PasswordField(
        validators=[DataRequired("Enter a new password"), Length(max=MAX_PASSWORD)]
    )


class ChangeEmailForm(FlaskForm):
    email = EmailField(
        validators=[
            DataRequired("Enter your new email address"),
            Length(max=MAX_EMAIL, message="Email address must be 320 characters or fewer"),
        ]
    )


class EndSessionForm(FlaskForm):
    sid = HiddenField(validators=[DataRequired(), Length(max=64)])


class SignOutEverywhereForm(FlaskForm):
    """Only a CSRF token."""
