"""An organisation's monthly report of helpdesk actions, for its data protection officer.

Issue 8 ("Audit"), K02: who on the helpdesk did what to whose account, when, why (the reason
or ticket) and, for an MFA reset, how the caller's identity was checked.

- A **helpdesk action** is an audit event whose actor is a person with a staff role and whose
  target is someone else.
- **People of the organisation** are its members *at report time*: someone who left the school
  before the report is run is not in it, and an agent who has since left the helpdesk is not
  counted as staff. The report page says so. (Recording the organisation in each event would
  remove this limitation; the events do not carry it today.)
- The month is a calendar month in UK time. The CSV uses the audit log's formula guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import select

from idp.extensions import db
from idp.models import Membership, Organisation, User
from idp.models.audit import AuditEvent
from idp.services.audit_log import (
    UK,
    csv_line,
    describe,
    people_for,
    person_label,
    uk_midnight,
    uk_time,
)

_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")


class InvalidMonth(ValueError):
    """A report month that is not ``yyyy-mm`` or is in the future."""


def parse_month(value: str, *, today: date | None = None) -> date:
    """The first day of the month ``yyyy-mm``; refuses nonsense and months yet to start."""
    match = _MONTH.match(value or "")
    if not match:
        raise InvalidMonth("Enter the month as a year and month, like 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 2000:
        raise InvalidMonth("Enter a real month, like 2026-11")
    first = date(year, month, 1)
    now = today or datetime.now(UK).date()
    if first > now:
        raise InvalidMonth("The month must not be in the future")
    return first


def _next_month(first: date) -> date:
    return date(first.year + (first.month == 12), first.month % 12 + 1, 1)


@dataclass(frozen=True)
class ReportRow:
    """One helpdesk action in a monthly report, in the words a DPO would read."""

    when: str
    agent: str
    person: str
    action: str
    outcome: str
    identity_check: str
    reason: str


@dataclass(frozen=True)
class MonthlyReport:
    organisation: Organisation
    month: date
    rows: list[ReportRow]

    @property
    def month_name(self) -> str:
        return self.month.strftime("%B %Y")


REPORT_HEADER: Final = (
    "When (UK time)",
    "Helpdesk agent",
    "Person affected",
    "Action",
    "Outcome",
    "How the caller's identity was checked",
    "Reason or ticket",
)


def _check_of(details: dict[str, Any] | None) -> str:
    details = details or {}
    for key in ("identity_check", "check", "verification"):
        value = details.get(key)
        if value:
            return str(value)
    return ""


def monthly_report(organisation: Organisation, month: date) -> MonthlyReport:
    """The helpdesk actions in ``month`` (UK calendar) on people of ``organisation``.

    A helpdesk action is an event whose actor is a person with a staff role and whose target
    is someone else; "people of the organisation" are its members now (see the module doc).
    """
    members = select(User.sub).join(Membership, Membership.user_id == User.id)
    members = members.where(Membership.organisation_id == organisation.id)
    staff = select(User.sub).where(User.staff_role.is_not(None))
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.target_id.in_(members.scalar_subquery()),
            AuditEvent.actor_id.in_(staff.scalar_subquery()),
            AuditEvent.actor_id != AuditEvent.target_id,
            AuditEvent.occurred_at >= uk_midnight(month),
            AuditEvent.occurred_at < uk_midnight(_next_month(month)),
        )
        .order_by(AuditEvent.occurred_at.asc(), AuditEvent.id.asc())
    )
    events = list(db.session.scalars(query))
    people = people_for(events)
    rows = [
        ReportRow(
            when=uk_time(e.occurred_at),
            agent=person_label(e.actor_id, people),
            person=person_label(e.target_id, people),
            action=describe(e.event),
            outcome=e.outcome,
            identity_check=_check_of(e.details),
            reason=e.reason or "",
        )
        for e in events
    ]
    return MonthlyReport(organisation=organisation, month=month, rows=rows)


def report_lines(report: MonthlyReport) -> Iterator[str]:
    """The report as CSV lines (header first), guarded like :func:`export_lines`."""
    yield csv_line(REPORT_HEADER)
    for row in report.rows:
        yield csv_line(
            (
                row.when,
                row.agent,
                row.person,
                row.action,
                row.outcome,
                row.identity_check,
                row.reason,
            )
        )


def find_organisation(public_id: str) -> Organisation | None:
    """The organisation with this public id (never the internal integer id)."""
    result: Organisation | None = db.session.scalar(
        select(Organisation).where(Organisation.public_id == public_id)
    )
    return result


def find_organisation_by_urn(urn: str) -> Organisation | None:
    """The establishment with this URN (unique in the register)."""
    result: Organisation | None = db.session.scalar(
        select(Organisation).where(Organisation.urn == urn)
    )
    return result
