"""The helpdesk admin's view and edit of organisations (issue 8, "Services and organisations").

- :func:`search` is deliberately simple (name fragment, or an exact URN, UKPRN or LA code),
  paginated; the helpdesk's fast million-row search is the console search page's job.
- :func:`update` changes the name, status and GIAS identifiers. URN, LA code and group UID are
  unique: a clash is reported per field *before* writing (so the admin sees which one), and a
  race that slips past the check still fails on the database's unique constraint, caught and
  reported the same way, with nothing half-written.
- :func:`search` can flag or keep only organisations with people but no approver (nobody
  can decide their access requests), by the shared rule in :mod:`idp.services.access`
  (``has_live_members`` and not ``has_live_approver``), combined with the search text.

Every change is audited as ``organisation.updated`` with the fields that changed (K03).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from idp.extensions import db
from idp.models import Membership, MembershipRole, Organisation, StaffRole, User, UserStatus
from idp.models.organisation import OrganisationStatus
from idp.services import access, audit

PAGE_SIZE: Final = 50
#: Identifiers that must be unique, with their names for people.
UNIQUE_IDENTIFIERS: Final[dict[str, str]] = {
    "urn": "URN",
    "la_code": "local authority code",
    "group_uid": "group UID",
}
EDITABLE: Final[tuple[str, ...]] = ("name", "status", "urn", "ukprn", "la_code", "group_uid")


class NotHelpdeskAdmin(PermissionError):
    """Only an active helpdesk admin edits organisations."""


class OrganisationInvalid(ValueError):
    """An edit breaks a rule; ``problems`` maps each field to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.problems.items()))


@dataclass(frozen=True)
class OrganisationPage:
    organisations: list[Organisation]
    page: int
    has_more: bool
    without_approver: set[int]


def lacks_approver(organisation: Organisation) -> bool:
    """Whether the organisation has people but no (active) approver."""
    query = select(Organisation.id).where(
        Organisation.id == organisation.id, access.has_live_members(), ~access.has_live_approver()
    )
    return db.session.scalar(query) is not None


def search(
    text: str = "", *, page: int = 1, only_without_approver: bool = False
) -> OrganisationPage:
    """Organisations whose name contains ``text`` or whose URN, UKPRN or LA code is ``text``."""
    query = select(Organisation)
    text = text.strip()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                Organisation.name.ilike(pattern, escape="\\"),
                Organisation.urn == text,
                Organisation.ukprn == text,
                Organisation.la_code == text,
            )
        )
    if only_without_approver:
        query = query.where(access.has_live_members(), ~access.has_live_approver())
    page = max(1, page)
    rows = list(
        db.session.scalars(
            query.order_by(Organisation.name, Organisation.id)
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
    )
    shown = rows[:PAGE_SIZE]
    ids = [o.id for o in shown]
    flagged: set[int] = set()
    if ids:
        flagged = set(
            db.session.scalars(
                select(Organisation.id).where(
                    Organisation.id.in_(ids), access.has_live_members(), ~access.has_live_approver()
                )
            )
        )
    return OrganisationPage(shown, page, len(rows) > PAGE_SIZE, flagged)


def get(public_id: str) -> Organisation | None:
    result: Organisation | None = db.session.scalar(
        select(Organisation).where(Organisation.public_id == public_id)
    )
    return result


@dataclass(frozen=True)
class People:
    members: int
    approvers: list[User]


def people(organisation: Organisation) -> People:
    """How many members the organisation has, and who its approvers are."""
    count = db.session.scalar(
        select(func.count(Membership.id)).where(Membership.organisation_id == organisation.id)
    )
    approvers = db.session.scalars(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.organisation_id == organisation.id,
            Membership.role == MembershipRole.APPROVER,
        )
        .order_by(User.family_name, User.given_name)
    ).all()
    return People(int(count or 0), list(approvers))


def _clean(values: Mapping[str, str | None]) -> tuple[dict[str, Any], dict[str, str]]:
    cleaned: dict[str, Any] = {}
    problems: dict[str, str] = {}
    name = (values.get("name") or "").strip()
    if not name:
        problems["name"] = "Enter the organisation's name"
    elif len(name) > 255:
        problems["name"] = "Name must be 255 characters or fewer"
    cleaned["name"] = name
    try:
        cleaned["status"] = OrganisationStatus(values.get("status") or "")
    except ValueError:
        problems["status"] = "Choose the organisation's status"
    for key, label, limit in (
        ("urn", "URN", 16),
        ("ukprn", "UKPRN", 16),
        ("la_code", "Local authority code", 8),
        ("group_uid", "Group UID", 16),
    ):
        raw = (values.get(key) or "").strip()
        if raw and (not raw.isdigit() or len(raw) > limit):
            problems[key] = f"{label} must be digits only, at most {limit}"
        cleaned[key] = raw or None
    return cleaned, problems


def _clashes(organisation: Organisation, cleaned: Mapping[str, Any]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for key, label in UNIQUE_IDENTIFIERS.items():
        value = cleaned.get(key)
        if value is None or value == getattr(organisation, key):
            continue
        column = getattr(Organisation, key)
        other = db.session.scalar(
            select(Organisation.name).where(column == value, Organisation.id != organisation.id)
        )
        if other is not None:
            problems[key] = f"Another organisation ({other}) already has this {label}"
    return problems


def update(actor: User, organisation: Organisation, values: Mapping[str, str | None]) -> list[str]:
    """Apply an admin's edit; return the fields that changed (empty: nothing, no audit row).

    Raises :class:`OrganisationInvalid` (per-field messages) or :class:`NotHelpdeskAdmin`.
    """
    if actor.staff_role is not StaffRole.HELPDESK_ADMIN or actor.status is not UserStatus.ACTIVE:
        raise NotHelpdeskAdmin("Only a helpdesk admin can change organisations")
    cleaned, problems = _clean(values)
    if problems:
        raise OrganisationInvalid(problems)
    problems = _clashes(organisation, cleaned)
    if problems:
        raise OrganisationInvalid(problems)
    changed = {}
    for key in EDITABLE:
        before = getattr(organisation, key)
        if before != cleaned[key]:
            changed[key] = {"from": str(before) if before else None, "to": cleaned[key]}
            setattr(organisation, key, cleaned[key])
    if not changed:
        return []
    try:
        db.session.flush()
    except IntegrityError as error:
        # Someone else took the identifier since the check above; the caller's transaction
        # rolls the whole edit back.
        raise OrganisationInvalid(
            {
                key: f"Another organisation already has this {label}"
                for key, label in UNIQUE_IDENTIFIERS.items()
                if key in changed
            }
        ) from error
    audit.record(
        "organisation.updated",
        actor=actor.sub,
        target=organisation.public_id,
        target_type="organisation",
        changed={
            k: {"from": v["from"], "to": str(v["to"]) if v["to"] else None}
            for k, v in changed.items()
        },
    )
    return list(changed)
