"""Forms for the helpdesk's audit pages: the log's filter (a GET form) and the report chooser."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from idp.services import audit_log, audit_report

_DATE_MESSAGE = "Enter a real date, like 2026-11-24"


class AuditFilterForm(FlaskForm):
    """The log's filter. A GET form (the page is read-only and its URL is shareable): no CSRF."""

    class Meta:
        csrf = False

    user = StringField(validators=[Optional(), Length(max=320)])
    actor = StringField(validators=[Optional(), Length(max=320)])
    # Choices are the log's distinct event names (set by the view); any other value matches
    # nothing rather than failing, so an old bookmarked link still opens.
    event = SelectField(validators=[Optional()], validate_choice=False)
    outcome = SelectField(
        choices=[SelectChoice("", "Any outcome")]
        + [SelectChoice(o, o.capitalize()) for o in audit_log.OUTCOMES],
        validators=[Optional()],
    )
    date_from = DateField(validators=[Optional()], format="%Y-%m-%d")
    date_to = DateField(validators=[Optional()], format="%Y-%m-%d")

    def validate_date_to(self, field: DateField) -> None:
        if self.date_from.data and field.data and field.data < self.date_from.data:
            raise ValidationError("The end date must be the same as or after the start date")

    def validate(self, extra_validators: Any = None) -> bool:
        valid: bool = super().validate(extra_validators)
        # DateField's own parse error is "Not a valid date value.": say it in plain English.
        for field in (self.date_from, self.date_to):
            if field.errors and field.raw_data and field.data is None:
                field.errors[:] = [_DATE_MESSAGE]
        return valid

    def to_filter(self) -> audit_log.AuditFilter:
        return audit_log.AuditFilter(
            user=(self.user.data or "").strip(),
            actor=(self.actor.data or "").strip(),
            event=self.event.data or "",
            outcome=self.outcome.data or "",
            date_from=self.date_from.data,
            date_to=self.date_to.data,
        )


class ReportChooserForm(FlaskForm):
    """Which organisation (URN or public id) and which month. GET, so no CSRF."""

    class Meta:
        csrf = False

    organisation = StringField(
        validators=[DataRequired("Enter the organisation's URN or ID"), Length(max=64)]
    )
    month = StringField(validators=[DataRequired("Enter the month, like 2026-11")])

    def validate_month(self, field: StringField) -> None:
        try:
            audit_report.parse_month(field.data or "")
        except audit_report.InvalidMonth as error:
            raise ValidationError(str(error)) from None
