"""Forms for the sign-in journeys. Messages follow the GOV.UK Design System's error patterns."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

# Generous upper bounds: they stop abuse, never a real person (A02: at least 64 characters).
MAX_EMAIL = 320
MAX_PASSWORD = 1024


class SignInForm(FlaskForm):
    email = EmailField(
        validators=[
            DataRequired("Enter your email address"),
            Length(max=MAX_EMAIL, message="Email address must be 320 characters or fewer"),
        ]
    )
    password = PasswordField(
        validators=[
            DataRequired("Enter your password"),
            Length(max=MAX_PASSWORD, message="Password must be 1,024 characters or fewer"),
        ]
    )


class ConfirmPasswordForm(FlaskForm):
    password = PasswordField(
        validators=[
            DataRequired("Enter your password"),
            Length(max=MAX_PASSWORD, message="Password must be 1,024 characters or fewer"),
        ]
    )


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        validators=[
            DataRequired("Enter your email address"),
            Length(max=MAX_EMAIL, message="Email address must be 320 characters or fewer"),
        ]
    )


class NewPasswordForm(FlaskForm):
    """Setting a password (invitation or reset). The policy is checked by the service."""

    password = PasswordField(
        validators=[
            DataRequired("Enter a new password"),
            Length(max=MAX_PASSWORD, message="Password must be 1,024 characters or fewer"),
        ]
    )


class SignOutForm(FlaskForm):
    """Only a CSRF token: signing out is a state change (E07)."""
