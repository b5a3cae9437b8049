"""Reading the audit log: filtered pages and CSV export.

Security-requirements K02 and K03 make the helpdesk accountable: every action is recorded with
who, when, why and the target (:mod:`idp.services.audit`). This module lets helpdesk staff read
that record back (issue 8, "Audit"):

- :func:`page` returns one page of events, newest first, using **keyset pagination** on
  ``(occurred_at, id)``: each page is an index range scan of the existing indexes on
  ``target_id``/``actor_id``/``event`` + ``occurred_at`` (or ``occurred_at`` alone), so page
  5,000 costs what page 1 does, whatever the size of the table. Offsets would not.
- :func:`export_rows` streams the same filter as CSV rows in batches (never the whole result in
  memory), capped at :data:`EXPORT_CAP` rows. Every cell that a spreadsheet would read as a
  formula (``= + - @``, tab, carriage return) is prefixed with ``'`` (OWASP "CSV injection").
The organisation's monthly report of helpdesk actions is :mod:`idp.services.audit_report`.

Times are stored in UTC and shown in Europe/London; a date range is whole UK days.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, text, union

from idp.extensions import db
from idp.models import User
from idp.models.audit import AuditEvent
from idp.services import users

UK: Final = ZoneInfo("Europe/London")
PAGE_SIZE: Final = 50
#: The most rows one CSV export holds; narrow the filter for more.
EXPORT_CAP: Final = 100_000
_BATCH: Final = 1000
OUTCOMES: Final[tuple[str, ...]] = ("success", "failure", "denied")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

#: Plain words for the events we know; others are worded from their name (:func:`describe`).
DESCRIPTIONS: Final[dict[str, str]] = {
    "access.changed": "Access to a service changed",
    "access.granted": "Access to a service given",
    "access.removed": "Access to a service removed",
    "account.locked": "Account locked after wrong passwords",
    "api.rate_limited": "Service went over its API call limit",
    "audit.exported": "Audit log exported",
    "consent.granted": "Allowed a service to see account details",
    "consent.refused": "Did not allow a service to see account details",
    "consent.withdrawn": "Withdrew a service's permission to see account details",
    "email.changed": "Email address changed",
    "email_change.requested": "Email address change requested",
    "helpdesk.deactivated": "Account deactivated by the helpdesk",
    "helpdesk.email_changed": "Email address changed by the helpdesk",
    "helpdesk.invitation_resent": "Invitation sent again by the helpdesk",
    "helpdesk.mfa_reset_approved": "Security methods reset approved by a second admin",
    "helpdesk.mfa_reset_done": "Security methods reset by the helpdesk",
    "helpdesk.mfa_reset_rejected": "Security methods reset refused by a second admin",
    "helpdesk.mfa_reset_requested": "Security methods reset requested by the helpdesk",
    "helpdesk.name_changed": "Name changed by the helpdesk",
    "helpdesk.password_reset_sent": "Password reset link sent by the helpdesk",
    "helpdesk.reactivated": "Account reactivated by the helpdesk",
    "helpdesk.signed_out_everywhere": "Signed out everywhere by the helpdesk",
    "helpdesk.unlocked": "Account unlocked by the helpdesk",
    "invitation.accepted": "Invitation accepted",
    "invitation.sent": "Invitation sent",
    "membership.added": "Added to an organisation",
    "membership.removed": "Removed from an organisation",
    "membership.role_changed": "Organisation role changed",
    "mfa.failed": "Second factor check failed",
    "mfa.recovery_code.used": "Recovery code used",
    "mfa.recovery_codes.issued": "New recovery codes issued",
    "mfa.throttled": "Too many second factor attempts",
    "mfa.totp.added": "Authenticator app added",
    "mfa.totp.removed": "Authenticator app removed",
    "mfa.verified": "Second factor checked",
    "mfa.webauthn.added": "Security key or passkey added",
    "mfa.webauthn.removed": "Security key or passkey removed",
    "mfa.webauthn.renamed": "Security key or passkey renamed",
    "mfa.webauthn.sign_count_regressed": "Security key may have been copied",
    "oidc.client_auth_failed": "Service failed to authenticate",
    "oidc.code_issued": "Sign-in code issued to a service",
    "oidc.code_reuse_detected": "Sign-in code used twice",
    "oidc.token_issued": "Tokens issued to a service",
    "organisation.updated": "Organisation details changed",
    "organisations.imported": "Organisations imported",
    "password.changed": "Password changed",
    "password.check_failed": "Password check failed",
    "password.flagged_compromised": "Password found in a data breach",
    "password.rehashed": "Password storage upgraded",
    "password_reset.rate_limited": "Too many password reset requests",
    "password_reset.requested": "Password reset link sent",
    "reauthenticated": "Signed in again to confirm identity",
    "service.registered": "Service registered",
    "service.secret_added": "Service secret added",
    "service.secret_expiry_set": "Service secret set to expire",
    "service.secret_revoked": "Service secret revoked",
    "service.updated": "Service changed",
    "sessions.ended_by_staff": "Signed out everywhere by the helpdesk",
    "sessions.expired": "Sessions expired",
    "sign_in.failed": "Sign-in failed",
    "sign_in.throttled": "Too many sign-in attempts",
    "staff.role_changed": "Helpdesk role changed",
    "token.refresh_reuse_detected": "Refresh token used twice",
    "token.revoked": "Token revoked",
    "user.created": "Account created",
    "user.deactivated": "Account deactivated",
    "user.reactivated": "Account reactivated",
}


class InvalidCursor(ValueError):
    """A page link was altered; the caller shows the first page."""


def describe(event: str) -> str:
    """The event in plain words: "mfa.totp.added" -> "Authenticator app added"."""
    known = DESCRIPTIONS.get(event)
    if known:
        return known
    words = re.sub(r"[._]+", " ", event).strip()
    return words[:1].upper() + words[1:] if words else event


def uk_time(moment: datetime) -> str:
    """A stored (UTC) time as shown in the console: "24 Nov 2026, 13:05:09 GMT"."""
    return moment.astimezone(UK).strftime("%d %b %Y, %H:%M:%S %Z")


# -- filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What the helpdesk asked for; every field optional.

    ``user`` (email or sub) matches events *about* or *by* that person; ``actor`` matches only
    events by them (email, sub, a client id or "system"). Dates are whole UK days, inclusive.
    """

    user: str = ""
    actor: str = ""
    event: str = ""
    outcome: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def as_details(self) -> dict[str, str]:
        """The filter as audit details (who exported what), without empty fields."""
        values = {
            "user": self.user,
            "actor": self.actor,
            "event": self.event,
            "outcome": self.outcome,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
        }
        return {key: value for key, value in values.items() if value}


def _person_id(value: str) -> str | None:
    """An email becomes that person's sub (None when no one has it); anything else is an id."""
    value = value.strip()
    if "@" in value:
        user = users.find_by_email(value)
        return user.sub if user else None
    return value


def uk_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UK).astimezone(UTC)


@dataclass(frozen=True)
class _Plan:
    """A filter turned into SQL conditions; ``person`` is a sub matched as target *or* actor."""

    conditions: tuple[Any, ...]
    person: str | None = None


def _filtered(f: AuditFilter) -> _Plan | None:
    """The filter as conditions, or None when it can match nothing (an unknown email)."""
    conditions: list[Any] = []
    person = None
    if f.user.strip():
        person = _person_id(f.user)
        if person is None:
            return None
    if f.actor.strip():
        actor = _person_id(f.actor)
        if actor is None:
            return None
        conditions.append(AuditEvent.actor_id == actor)
    if f.event:
        conditions.append(AuditEvent.event == f.event)
    if f.outcome:
        conditions.append(AuditEvent.outcome == f.outcome)
    if f.date_from:
        conditions.append(AuditEvent.occurred_at >= uk_midnight(f.date_from))
    if f.date_to:
        conditions.append(AuditEvent.occurred_at < uk_midnight(f.date_to + timedelta(days=1)))
    return _Plan(tuple(conditions), person)


def _fetch(plan: _Plan, edge: Any | None, *, newest_first: bool, limit: int) -> list[AuditEvent]:
    """Up to ``limit`` events of ``plan`` beyond ``edge`` (a keyset condition), in order.

    "About or by this person" is two index-ordered scans (``target_id``, ``actor_id`` +
    ``occurred_at``), each stopped at ``limit``, merged: an ``OR`` of the two columns would
    make PostgreSQL read all of a busy person's events, or walk the time index, first.
    """
    if newest_first:
        order = (AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    else:
        order = (AuditEvent.occurred_at.asc(), AuditEvent.id.asc())
    conditions = [*plan.conditions, *([edge] if edge is not None else [])]
    if plan.person is None:
        query = select(AuditEvent).where(*conditions)
    else:
        branches = [
            select(AuditEvent.id)
            .where(column == plan.person, *conditions)
            .order_by(*order)
            .limit(limit)
            .subquery()
            for column in (AuditEvent.target_id, AuditEvent.actor_id)
        ]
        ids = union(*(select(branch.c.id) for branch in branches))
        query = select(AuditEvent).where(AuditEvent.id.in_(ids))
    return list(db.session.scalars(query.order_by(*order).limit(limit)))


def event_names() -> list[str]:
    """Every distinct event name in the log, sorted.

    A "loose index scan" (one index probe per distinct name, through the ``event`` index) rather
    than ``SELECT DISTINCT``, which would read every row of a table of many millions. The
    recursive query runs unchanged on PostgreSQL and SQLite.
    """
    rows = db.session.execute(
        text(
            "WITH RECURSIVE names(event) AS ("
            " SELECT min(event) FROM audit_events"
            " UNION ALL"
            " SELECT (SELECT min(a.event) FROM audit_events a WHERE a.event > names.event)"
            " FROM names WHERE names.event IS NOT NULL"
            ") SELECT event FROM names WHERE event IS NOT NULL"
        )
    )
    return [row[0] for row in rows]


# -- keyset pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in the log: the (occurred_at, id) of an event at a page's edge."""

    occurred_at: datetime
    id: int

    def encode(self) -> str:
        raw = f"{self.occurred_at.astimezone(UTC).isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            moment, _, number = raw.partition("|")
            at = datetime.fromisoformat(moment)
            if at.tzinfo is None:
                raise ValueError("naive time")
            return cls(at, int(number))
        except (ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise InvalidCursor("this page link is not valid") from error

    @classmethod
    def of(cls, event: AuditEvent) -> Cursor:
        return cls(event.occurred_at, event.id)


@dataclass
class AuditPage:
    """One page of events, newest first, with cursors for the older and newer pages."""

    events: list[AuditEvent]
    older: str | None = None
    newer: str | None = None
    people: dict[str, User] = field(default_factory=dict)


def _older_than(cursor: Cursor) -> Any:
    # The redundant "<=" gives the planner an index range on occurred_at; the OR alone would
    # make it read (and discard) every newer row first.
    return and_(
        AuditEvent.occurred_at <= cursor.occurred_at,
        or_(AuditEvent.occurred_at < cursor.occurred_at, AuditEvent.id < cursor.id),
    )


def _newer_than(cursor: Cursor) -> Any:
    return and_(
        AuditEvent.occurred_at >= cursor.occurred_at,
        or_(AuditEvent.occurred_at > cursor.occurred_at, AuditEvent.id > cursor.id),
    )


def page(
    f: AuditFilter,
    *,
    before: str | None = None,
    after: str | None = None,
    size: int = PAGE_SIZE,
) -> AuditPage:
    """One page of events matching ``f``: the newest, or those just older than ``before``, or
    just newer than ``after`` (a "previous page" link). Raises :class:`InvalidCursor`."""
    plan = _filtered(f)
    if plan is None:
        return AuditPage(events=[])
    if after:
        rows = _fetch(plan, _newer_than(Cursor.decode(after)), newest_first=False, limit=size + 1)
    else:
        edge = _older_than(Cursor.decode(before)) if before else None
        rows = _fetch(plan, edge, newest_first=True, limit=size + 1)
    more = len(rows) > size
    rows = rows[:size]
    if after:
        rows.reverse()
    result = AuditPage(events=rows, people=people_for(rows))
    if rows and after:
        # Going back towards the newest: older rows exist (we came from them).
        result.older = Cursor.of(rows[-1]).encode()
        result.newer = Cursor.of(rows[0]).encode() if more else None
    elif rows:
        result.older = Cursor.of(rows[-1]).encode() if more else None
        result.newer = Cursor.of(rows[0]).encode() if before else None
    return result


def people_for(events: Iterable[AuditEvent]) -> dict[str, User]:
    """The people named (as actor or target) in ``events``, by sub: one query."""
    subs = {e.actor_id for e in events if e.actor_id} | {e.target_id for e in events if e.target_id}
    if not subs:
        return {}
    found = db.session.scalars(select(User).where(User.sub.in_(subs)))
    return {user.sub: user for user in found}


def person_label(identifier: str | None, people: dict[str, User]) -> str:
    """ "Grace Hopper (grace@school.example)" for a person, the raw id otherwise."""
    if not identifier:
        return ""
    person = people.get(identifier)
    return f"{person.name} ({person.email})" if person else identifier


# -- CSV -------------------------------------------------------------------------------------


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will show as text, never run as a formula (CSV injection)."""
    text_value = "" if value is None else str(value)
    return "'" + text_value if text_value.startswith(_FORMULA_START) else text_value


def csv_line(cells: Sequence[object]) -> str:
    """One CSV record (RFC 4180 quoting, CRLF), every cell guarded by :func:`safe_cell`."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()


EXPORT_HEADER: Final = (
    "Time (UK)",
    "Event",
    "Description",
    "Outcome",
    "Actor",
    "Actor name",
    "Target type",
    "Target",
    "Target name",
    "Reason",
    "IP address",
    "Request id",
)


def _batches(f: AuditFilter, cap: int) -> Iterator[list[AuditEvent]]:
    plan = _filtered(f)
    if plan is None:
        return
    cursor: Cursor | None = None
    left = cap
    while left > 0:
        edge = _older_than(cursor) if cursor is not None else None
        rows = _fetch(plan, edge, newest_first=True, limit=min(_BATCH, left))
        if not rows:
            return
        yield rows
        left -= len(rows)
        cursor = Cursor.of(rows[-1])
        # Rows already written are not needed again: keep memory flat on a long export.
        db.session.expunge_all()


def export_lines(f: AuditFilter, *, cap: int = EXPORT_CAP) -> Iterator[str]:
    """The CSV of ``f``, header first, newest first, one line at a time (at most ``cap`` rows)."""
    yield csv_line(EXPORT_HEADER)
    for batch in _batches(f, cap):
        people = {sub: (u.name, u.email) for sub, u in people_for(batch).items()}
        for e in batch:
            actor = people.get(e.actor_id or "")
            target = people.get(e.target_id or "")
            yield csv_line(
                (
                    uk_time(e.occurred_at),
                    e.event,
                    describe(e.event),
                    e.outcome,
                    e.actor_id,
                    f"{actor[0]} ({actor[1]})" if actor else "",
                    e.target_type,
                    e.target_id,
                    f"{target[0]} ({target[1]})" if target else "",
                    e.reason,
                    e.ip,
                    e.request_id,
                )
            )
