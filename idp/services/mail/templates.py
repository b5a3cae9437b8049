"""The messages we send, what each one needs, and their plain-English text.

Each message has a name (``password_reset``), a :class:`MessageSpec` saying which values the
caller must give, and a Jinja template ``idp/templates/email/<name>.txt`` whose first line is
the subject. Callers pass links already built from ``settings.public_base_url`` (never from the
request's Host header), so a forged Host can never put someone else's domain in an email.

Three steps, at different times:

- :func:`normalise` runs when the message is queued, inside the caller's unit of work. It
  checks the name and the values, so a programming mistake fails the action there and then
  rather than a day later in the worker, and turns times into ISO strings for storage.
- :func:`personalisation` runs when the message is sent. It formats times for people
  ("3:30pm on 5 December 2026", UK time) and fills every optional value, so GOV.UK Notify,
  which rejects a message with a missing placeholder, always gets the full set.
- :func:`render` produces our own subject and body from the same values (SMTP and the
  development outbox). Notify keeps its own copy of each template, using the same
  placeholder names as these files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "email"

try:
    _UK = ZoneInfo("Europe/London")
except ZoneInfoNotFoundError:  # pragma: no cover - only on hosts without a time-zone database
    # Better a time an hour out in summer than no email at all; production images have tzdata.
    _UK = ZoneInfo("UTC")


class UnknownMessage(ValueError):
    """The caller asked for a message we do not have."""


class InvalidPersonalisation(ValueError):
    """A required value is missing, an unexpected one was given, or a value has the wrong form."""


@dataclass(frozen=True)
class MessageSpec:
    """The values one message takes.

    ``times`` are aware datetimes, shown in UK time. ``choices`` restricts a value to a fixed
    set (the templates word the sentence around it). ``defaults`` fill optional values that
    have a sensible wording when not given.
    """

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    times: frozenset[str] = frozenset()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional


MESSAGES: dict[str, MessageSpec] = {
    "invitation": MessageSpec(
        required=("link", "expires_at"),
        optional=("inviter_name", "organisation_name"),
        times=frozenset({"expires_at"}),
    ),
    "password_reset": MessageSpec(
        required=("link", "expires_at"),
        optional=("valid_for",),
        times=frozenset({"expires_at"}),
        defaults={"valid_for": "30 minutes"},
    ),
    "password_changed": MessageSpec(
        required=("reset_link",),
        optional=("changed_at",),
        times=frozenset({"changed_at"}),
    ),
    "email_change_confirm": MessageSpec(
        required=("link", "expires_at"),
        times=frozenset({"expires_at"}),
    ),
    # No reset link here: a reset link goes to the *new* address, which may be the attacker's.
    "email_changed_notice": MessageSpec(
        required=(),
        optional=("new_email", "changed_at"),
        times=frozenset({"changed_at"}),
    ),
    "account_locked": MessageSpec(
        required=("reset_link",),
        optional=("unlock_at",),
        times=frozenset({"unlock_at"}),
    ),
    "mfa_changed": MessageSpec(
        required=("change", "method", "reset_link"),
        optional=("changed_at",),
        times=frozenset({"changed_at"}),
        choices={"change": ("added", "removed")},
    ),
    # Helpdesk staff roles (issue 8): told when given or removed; a role needs a security key.
    "staff_role_changed": MessageSpec(
        required=("change", "role_name"),
        choices={"change": ("given", "removed")},
    ),
    # Access requests (issue 7): to each approver, then the outcome to the requester, and to
    # the helpdesk when nobody can or did decide in time.
    "access_requested": MessageSpec(
        required=("requester_name", "requester_email", "service_name", "organisation_name", "link"),
        optional=("reason",),
    ),
    "access_request_approved": MessageSpec(
        required=("service_name", "organisation_name"),
        optional=("roles", "link", "approver_name"),
    ),
    "access_request_rejected": MessageSpec(
        required=("service_name", "organisation_name"),
        optional=("reason", "approver_name"),
    ),
    "access_request_escalated": MessageSpec(
        required=(
            "why",
            "requester_name",
            "requester_email",
            "service_name",
            "organisation_name",
            "requested_at",
        ),
        optional=("reason", "days"),
        times=frozenset({"requested_at"}),
        choices={"why": ("overdue", "no_approver")},
    ),
    # Helpdesk actions (issue 8, K02: the person is told of every action on their account).
    "helpdesk_password_reset": MessageSpec(
        required=("link", "expires_at"),
        optional=("valid_for",),
        times=frozenset({"expires_at"}),
        defaults={"valid_for": "30 minutes"},
    ),
    "helpdesk_action": MessageSpec(
        required=("action", "reset_link"),
        optional=("new_email", "new_name"),
        choices={
            "action": (
                "unlocked",
                "signed_out",
                "deactivated",
                "reactivated",
                "email_changed",
                "name_changed",
            )
        },
    ),
    "mfa_reset": MessageSpec(
        required=("link", "expires_at"),
        times=frozenset({"expires_at"}),
    ),
    # Approver pages (issue 7): the affected person is told of every change an approver makes.
    # ``services`` is the person's access at the organisation after the change, one per line.
    "added_to_organisation": MessageSpec(
        required=("organisation_name", "services", "link"),
        optional=("added_by", "approver"),
        choices={"approver": ("yes", "no")},
        defaults={"approver": "no"},
    ),
    "access_changed": MessageSpec(
        required=("organisation_name", "services"),
        optional=("changed_by",),
    ),
    "approver_changed": MessageSpec(
        required=("organisation_name", "change"),
        optional=("changed_by",),
        choices={"change": ("made", "removed")},
    ),
    "removed_from_organisation": MessageSpec(
        required=("organisation_name",),
        optional=("removed_by", "deactivated"),
        choices={"deactivated": ("yes", "no")},
        defaults={"deactivated": "no"},
    ),
    # The service-to-service API (issue 7, idp.services.service_api): a relying service gave an
    # existing account access to itself. ``roles`` lists the role names, comma-separated.
    "service_access_granted": MessageSpec(
        required=("service_name", "organisation_name", "link"),
        optional=("roles",),
    ),
}

MESSAGE_NAMES: tuple[str, ...] = tuple(MESSAGES)


def spec_for(name: str) -> MessageSpec:
    try:
        return MESSAGES[name]
    except KeyError:
        raise UnknownMessage(f"no email message called {name!r}") from None


def normalise(name: str, values: Mapping[str, object]) -> dict[str, str]:
    """Check ``values`` against the message's spec and return them as storable strings."""
    spec = spec_for(name)
    missing = [key for key in spec.required if values.get(key) in (None, "")]
    unexpected = sorted(set(values) - set(spec.fields))
    if missing or unexpected:
        raise InvalidPersonalisation(
            f"{name}: missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}"
        )
    stored: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key in spec.times:
            stored[key] = _as_utc(name, key, value).isoformat()
        elif isinstance(value, str):
            stored[key] = value
        else:
            raise InvalidPersonalisation(f"{name}: {key} must be text")
        allowed = spec.choices.get(key)
        if allowed is not None and stored[key] not in allowed:
            raise InvalidPersonalisation(f"{name}: {key} must be one of {allowed}")
    return stored


def personalisation(name: str, stored: Mapping[str, str]) -> dict[str, str]:
    """Every placeholder of the message, formatted for people; absent optional ones are ""."""
    spec = spec_for(name)
    shown: dict[str, str] = {}
    for key in spec.fields:
        value = stored.get(key)
        if value is None:
            shown[key] = spec.defaults.get(key, "")
        elif key in spec.times:
            shown[key] = format_time(datetime.fromisoformat(value))
        else:
            shown[key] = value
    return shown


def render(name: str, stored: Mapping[str, str]) -> tuple[str, str]:
    """Our own (subject, body) for the message: the template's first line is the subject."""
    text = _environment().get_template(f"{name}.txt").render(**personalisation(name, stored))
    subject, _, body = text.strip().partition("\n")
    # Optional paragraphs leave blank lines behind; one blank line between paragraphs is enough.
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in body.splitlines()))
    return subject.strip(), body.strip() + "\n"


def format_time(moment: datetime) -> str:
    """GOV.UK style: "3:30pm on 5 December 2026", "10am on ...", "midday on ...", in UK time."""
    local = moment.astimezone(_UK)
    if (local.hour, local.minute) == (12, 0):
        clock = "midday"
    elif (local.hour, local.minute) == (0, 0):
        clock = "midnight"
    else:
        hour = local.hour % 12 or 12
        minutes = f":{local.minute:02d}" if local.minute else ""
        clock = f"{hour}{minutes}{'am' if local.hour < 12 else 'pm'}"
    return f"{clock} on {local.day} {local:%B %Y}"


def _as_utc(name: str, key: str, value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidPersonalisation(f"{name}: {key} is not a time") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidPersonalisation(f"{name}: {key} must be an aware datetime")
    return value.astimezone(UTC)


@cache
def _environment() -> Environment:
    # Plain-text email: there is no HTML to escape into, so autoescaping would only corrupt
    # ampersands in links. StrictUndefined turns a misspelt placeholder into an error.
    return Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=False,  # noqa: S701 - plain text, see above
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
