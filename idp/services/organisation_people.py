"""An approver manages their own organisation's people (issue 7; dfe-signin.md §2 row 25).

Every function takes the acting approver and the organisation and starts by checking that the
actor is an *active approver of that organisation*; a person it acts on must be a member of it.
Either failure raises :class:`NotPermitted`, which pages turn into "Page not found" (404), so a
forged organisation or person id in a URL shows nothing about another school (forced browsing,
security-requirements D06 applied to the approver pages; DESIGN §1 "never seeing or managing
another organisation's people"). The check lives here, not in templates or guards, so every
door (page, test, future API) gets it.

Changes go through :mod:`idp.services.access` (which audits each one, K03) and the affected
person is emailed through the outbox. A person removed from their last organisation is a
*leaver*: their account is deactivated, which ends every SSO session and queues back-channel
logout to the services they were signed into (:func:`account_status.deactivate`).

These functions add and flush inside the caller's unit of work
(:func:`idp.services.transaction.transaction`); the caller commits.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import selectinload

from idp.extensions import db
from idp.models import (
    AccessGrant,
    AccessPolicy,
    Membership,
    MembershipRole,
    Organisation,
    Service,
    ServiceRole,
    ServiceStatus,
    User,
    UserStatus,
)
from idp.models.service import access_grant_roles
from idp.services import access, account_status, audit, invitations, outbox, users
from idp.services.access import AccessError
from idp.services.links import public_url

PER_PAGE = 50
T = TypeVar("T")

#: What an approver asks for: service client_id -> role codes at that service.
AccessChoice = Mapping[str, Sequence[str]]

__all__ = ["AccessError", "ChangedMeanwhile", "NotPermitted"]


class NotPermitted(LookupError):
    """The actor may not act here, or the person is not in this organisation (shown as 404)."""


class ChangedMeanwhile(AccessError):
    """Someone changed the person's access after the approver opened the page."""


# -- who may act ---------------------------------------------------------------------------------


def organisations_approved_by(actor: User) -> list[Organisation]:
    """The organisations ``actor`` is an approver of, by name (none if not active)."""
    if actor.status is not UserStatus.ACTIVE:
        return []
    return list(
        db.session.scalars(
            select(Organisation)
            .join(Membership, Membership.organisation_id == Organisation.id)
            .where(Membership.user_id == actor.id, Membership.role == MembershipRole.APPROVER)
            .order_by(Organisation.name, Organisation.id)
        )
    )


def organisation_for(actor: User, public_id: str) -> Organisation:
    """The organisation with ``public_id``, if ``actor`` is one of its active approvers."""
    organisation = db.session.scalar(
        select(Organisation).where(Organisation.public_id == str(public_id)[:36])
    )
    if organisation is None:
        raise NotPermitted("no such organisation")
    _require_approver(actor, organisation)
    return organisation


def _require_approver(actor: User, organisation: Organisation) -> None:
    if actor.status is not UserStatus.ACTIVE or not access.is_approver(actor, organisation):
        raise NotPermitted("not an approver of this organisation")


def member(actor: User, organisation: Organisation, sub: str) -> Membership:
    """The membership of the person with ``sub`` in ``organisation`` (actor checked first)."""
    _require_approver(actor, organisation)
    found = db.session.scalar(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organisation_id == organisation.id, User.sub == str(sub)[:36])
        .options(selectinload(Membership.user))
    )
    if found is None:
        raise NotPermitted("not a member of this organisation")
    return found


def record_refusal(actor: User, organisation_id: str, person: str | None = None) -> None:
    """Audit a refused attempt (a forged or stale id): the caller commits it."""
    audit.record(
        "approver.refused",
        actor=actor.sub,
        target=person,
        target_type="user" if person else None,
        outcome=audit.DENIED,
        organisation=str(organisation_id)[:64],
    )


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantView:
    service: Service
    roles: list[ServiceRole]


@dataclass(frozen=True)
class PersonRow:
    user: User
    role: MembershipRole
    grants: list[GrantView] = field(default_factory=list)

    @property
    def is_approver(self) -> bool:
        return self.role is MembershipRole.APPROVER

    @property
    def access_version(self) -> str:
        """A fingerprint of the person's access here. The access form carries it, so a save
        from a page opened before someone else's change is refused, not silently undone
        (dfe-signin.md §5.3: approver flows that are safe across tabs and approvers)."""
        held = sorted(
            (view.service.client_id, sorted(role.code for role in view.roles))
            for view in self.grants
        )
        return hashlib.sha256(json.dumps(held).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    pages: int
    total: int


def _paginate(query: Select[*tuple[Any, ...]], page: int, per_page: int) -> tuple[int, int, int]:
    """(total, pages, the page clamped to 1..pages): a page past the end shows the last one."""
    total = int(db.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = max(1, math.ceil(total / per_page))
    return total, pages, min(max(1, page), pages)


def list_people(
    actor: User,
    organisation: Organisation,
    *,
    search: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page[PersonRow]:
    """One page of the organisation's people, by family then given name, with their access.

    Three queries whatever the page size (people, their grants with roles, the services), so a
    school of 300 staff costs the same as one of 3.
    """
    _require_approver(actor, organisation)
    query = (
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organisation_id == organisation.id)
    )
    text = search.strip().lower()[:200]
    if text:
        full_name = func.lower(User.given_name + " " + User.family_name)
        query = query.where(
            or_(
                full_name.contains(text, autoescape=True),
                func.lower(User.family_name).contains(text, autoescape=True),
                User.email.contains(text, autoescape=True),
            )
        )
    total, pages, page = _paginate(query, page, per_page)
    found = db.session.execute(
        query.order_by(User.family_name, User.given_name, User.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    grants = _grants_by_user(organisation, [user.id for user, _ in found])
    rows = [PersonRow(user, role, grants.get(user.id, [])) for user, role in found]
    return Page(rows, page, pages, total)


def _grants_by_user(organisation: Organisation, user_ids: list[int]) -> dict[int, list[GrantView]]:
    """Everyone's grants at ``organisation`` in two light queries: (person, service, role) rows,
    then the few services involved with their roles. No ORM object per grant, so a page of 50
    people with 150 grants costs about what a page with none does."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(AccessGrant.user_id, AccessGrant.service_id, access_grant_roles.c.service_role_id)
        .outerjoin(access_grant_roles, access_grant_roles.c.access_grant_id == AccessGrant.id)
        .where(
            AccessGrant.organisation_id == organisation.id,
            AccessGrant.user_id.in_(user_ids),
        )
    ).all()
    if not rows:
        return {}
    services = {
        service.id: service
        for service in db.session.scalars(
            select(Service)
            .where(Service.id.in_({row.service_id for row in rows}))
            .options(selectinload(Service.roles))
        )
    }
    roles = {role.id: role for service in services.values() for role in service.roles}
    held: dict[tuple[int, int], list[ServiceRole]] = {}
    for user_id, service_id, role_id in rows:
        chosen = held.setdefault((user_id, service_id), [])
        if role_id is not None:
            chosen.append(roles[role_id])
    by_user: dict[int, list[GrantView]] = {}
    for (user_id, service_id), chosen in held.items():
        chosen.sort(key=lambda role: (role.name, role.code))
        by_user.setdefault(user_id, []).append(GrantView(services[service_id], chosen))
    for views in by_user.values():
        views.sort(key=lambda view: (view.service.name, view.service.client_id))
    return by_user


def person(actor: User, organisation: Organisation, sub: str) -> PersonRow:
    """One member of the organisation with their access there."""
    found = member(actor, organisation, sub)
    grants = _grants_by_user(organisation, [found.user_id]).get(found.user_id, [])
    return PersonRow(found.user, found.role, grants)


@dataclass(frozen=True)
class ServiceChoice:
    service: Service
    roles: list[ServiceRole]


def grantable_services(actor: User, organisation: Organisation) -> list[ServiceChoice]:
    """Services an approver may give access to: active, ``granted`` policy (an ``open`` service
    needs no grant), each with only the roles this organisation's type may hold."""
    _require_approver(actor, organisation)
    services = db.session.scalars(
        select(Service)
        .where(
            Service.status == ServiceStatus.ACTIVE,
            Service.access_policy == AccessPolicy.GRANTED,
        )
        .options(selectinload(Service.roles))
        .order_by(Service.name, Service.client_id)
    )
    return [ServiceChoice(s, access.roles_allowed(s, organisation)) for s in services]


# -- changing ------------------------------------------------------------------------------------


def _apply_access(
    actor: User, organisation: Organisation, user: User, wanted: AccessChoice
) -> bool:
    """Make ``user``'s grants at ``organisation`` exactly ``wanted``; True if anything changed.

    Only grantable services are touched: a grant for a service the approver cannot give (an
    ``open`` or disabled one, set by the helpdesk) is left as it is.
    """
    choices = {c.service.client_id: c for c in grantable_services(actor, organisation)}
    unknown = sorted(set(wanted) - choices.keys())
    if unknown:
        raise AccessError("Choose from the services listed")
    current = {
        view.service.client_id: sorted(role.code for role in view.roles)
        for view in _grants_by_user(organisation, [user.id]).get(user.id, [])
    }
    changed = False
    for client_id, choice in choices.items():
        before = current.get(client_id)
        if client_id in wanted:
            after = sorted(set(wanted[client_id]))
            if before != after:
                access.set_access(user, organisation, choice.service, after, actor=actor.sub)
                changed = True
        elif before is not None:
            access.remove_access(user, organisation, choice.service, actor=actor.sub)
            changed = True
    return changed


def describe_access(user: User, organisation: Organisation) -> str:
    """The person's access at the organisation as plain-English lines, for emails."""
    views = _grants_by_user(organisation, [user.id]).get(user.id, [])
    if not views:
        return "You do not have access to any services for this organisation."
    lines = []
    for view in views:
        roles = ", ".join(role.name for role in view.roles)
        lines.append(f"- {view.service.name}" + (f" ({roles})" if roles else ""))
    return "\n".join(lines)


@dataclass(frozen=True)
class InviteOutcome:
    user: User
    new_account: bool


def invite_person(
    actor: User,
    organisation: Organisation,
    *,
    email: str,
    given_name: str,
    family_name: str,
    approver: bool = False,
    services: AccessChoice | None = None,
) -> InviteOutcome:
    """Invite someone to the organisation with access to ``services``.

    A new address gets an invited account and an invitation email naming the organisation and
    the inviter; an existing account is added and told by email (it needs no invitation). A
    shared role mailbox is refused (users.RoleMailboxRefused), as everywhere.

    Two inviters of the same new address at the same moment: the one whose account is created
    first wins, and the other goes on as if the account had been there when it looked (added
    to its organisation and told by email, or "already in" when it is the same organisation).
    """
    _require_approver(actor, organisation)
    canonical = users.canonical_email(email)
    users.check_personal_email(canonical)
    user, new_account = users.find_or_create(canonical, given_name, family_name, actor=actor.sub)
    if user.status is UserStatus.DEACTIVATED:
        raise AccessError(
            "The account for this email address has been deactivated. "
            "Ask the helpdesk to reactivate it, then add them again."
        )
    if not new_account and access.membership(user, organisation) is not None:
        raise AccessError(f"{user.name} is already in {organisation.name}")
    role = MembershipRole.APPROVER if approver else MembershipRole.MEMBER
    access.add_membership(user, organisation, role=role, actor=actor.sub)
    _apply_access(actor, organisation, user, services or {})
    if new_account:
        invitations.invite(
            user, actor=actor.sub, organisation_name=organisation.name, inviter_name=actor.name
        )
    else:
        outbox.enqueue_email(
            user.email,
            "added_to_organisation",
            organisation_name=organisation.name,
            added_by=actor.name,
            services=describe_access(user, organisation),
            approver="yes" if approver else "no",
            link=public_url("pages.start"),
        )
    return InviteOutcome(user, new_account)


def resend_invitation(actor: User, organisation: Organisation, sub: str) -> User:
    """A fresh invitation link for a member who has not yet set up their account."""
    user = member(actor, organisation, sub).user
    if user.status is not UserStatus.INVITED:
        raise AccessError(f"{user.name} has already set up their account")
    invitations.invite(
        user, actor=actor.sub, organisation_name=organisation.name, inviter_name=actor.name
    )
    return user


def change_access(
    actor: User,
    organisation: Organisation,
    sub: str,
    services: AccessChoice,
    *,
    expected_version: str | None = None,
) -> bool:
    """Set the person's services and roles here; they are emailed if anything changed.

    With ``expected_version`` (:attr:`PersonRow.access_version` when the page was opened), a
    change made meanwhile by another approver or tab raises :class:`ChangedMeanwhile`. The
    change applies at their next sign-in or token refresh (issue 7, "Claims and tokens").
    """
    current = person(actor, organisation, sub)
    user = current.user
    if expected_version is not None and expected_version != current.access_version:
        raise ChangedMeanwhile(
            f"{user.name}'s services were changed by someone else after you opened this page. "
            "Check them and save again."
        )
    changed = _apply_access(actor, organisation, user, services)
    if changed:
        outbox.enqueue_email(
            user.email,
            "access_changed",
            organisation_name=organisation.name,
            changed_by=actor.name,
            services=describe_access(user, organisation),
        )
    return changed


def _lock_approvers(organisation: Organisation) -> None:
    """Serialise changes to one organisation's approvers until the caller commits.

    Two approvers demoting (or removing) each other at the same moment would each count two
    approvers and both succeed, leaving none. Locking the organisation's row first makes the
    second wait and then count again. SQLite serialises writers anyway (FOR UPDATE is a no-op).
    """
    db.session.execute(
        select(Organisation.id).where(Organisation.id == organisation.id).with_for_update()
    )


def set_approver(actor: User, organisation: Organisation, sub: str, approver: bool) -> bool:
    """Make the person an approver or a member; never leaves the organisation without an
    approver (AccessError). Returns whether anything changed."""
    _lock_approvers(organisation)
    found = member(actor, organisation, sub)
    role = MembershipRole.APPROVER if approver else MembershipRole.MEMBER
    if found.role is role:
        return False
    access.set_membership_role(found.user, organisation, role, actor=actor.sub)
    outbox.enqueue_email(
        found.user.email,
        "approver_changed",
        organisation_name=organisation.name,
        change="made" if approver else "removed",
        changed_by=actor.name,
    )
    return True


@dataclass(frozen=True)
class Removal:
    user: User
    #: They had no organisation left, so their account was deactivated.
    deactivated: bool
    #: How many of their sign-in sessions were ended.
    sessions_ended: int


def remove_person(actor: User, organisation: Organisation, sub: str) -> Removal:
    """Remove the person from the organisation, with all their access there.

    A leaver (no organisation left) is deactivated: every session ends and each service they
    were signed into hears through back-channel logout (issue 7 "Leavers"; I04). Helpdesk staff
    accounts are never deactivated by a school: only the helpdesk may do that (K02).
    """
    _lock_approvers(organisation)
    user = member(actor, organisation, sub).user
    access.remove_membership(user, organisation, actor=actor.sub, reason="removed by approver")
    left = db.session.scalar(
        select(func.count()).select_from(Membership).where(Membership.user_id == user.id)
    )
    deactivated, ended = False, 0
    if not left and user.staff_role is None and user.status is not UserStatus.DEACTIVATED:
        ended = len(
            account_status.deactivate(
                user, actor=actor.sub, reason=f"left {organisation.name}: no organisations left"
            )
        )
        deactivated = True
    outbox.enqueue_email(
        user.email,
        "removed_from_organisation",
        organisation_name=organisation.name,
        removed_by=actor.name,
        deactivated="yes" if deactivated else "no",
    )
    return Removal(user, deactivated, ended)


# -- for the helpdesk ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganisationWithoutApprover:
    organisation: Organisation
    #: Members whose account is not deactivated: the people who have nobody to ask.
    members: int


def organisations_without_approver(
    *, page: int = 1, per_page: int = PER_PAGE
) -> Page[OrganisationWithoutApprover]:
    """Organisations with people but no approver (issue 7: flagged for the helpdesk), by name.

    An organisation nobody belongs to is not listed: most of the GIAS register has no users yet
    and nobody there is waiting. An approver whose account is deactivated does not count.
    """
    members = (
        select(func.count())
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organisation_id == Organisation.id, User.status != UserStatus.DEACTIVATED)
        .scalar_subquery()
    )
    query = select(Organisation, members.label("members")).where(
        access.has_live_members(), ~access.has_live_approver()
    )
    total, pages, page = _paginate(query, page, per_page)
    found = db.session.execute(
        query.order_by(Organisation.name, Organisation.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page([OrganisationWithoutApprover(org, int(n)) for org, n in found], page, pages, total)
