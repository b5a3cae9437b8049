"""Who belongs to which organisation, and who may use which service there, with which roles.

The primitives every room shares (approver pages, access requests, the helpdesk, the import
from Authentix, the service-to-service API), so the rules hold whatever the door:

- A **membership** is user x organisation, as ``member`` or ``approver`` (DESIGN §3).
- An **access grant** is user x organisation x service with a set of the service's roles. A
  grant needs a membership of that organisation; a role may be limited to some organisation
  types (``ServiceRole.organisation_types``), e.g. a local-authority-only role.
- A service with ``access_policy = open`` admits every active account; ``granted`` (the
  default) admits only people with a grant (DfE Sign-in's model, reference/dfe-signin.md §2).

Every change is audited (K03) with the actor and, where given, the reason. These functions
add and flush inside the caller's unit of work and send no email (the caller knows which
message fits). Permission checks (is this actor an approver of this organisation?) are the
caller's service's job; :func:`is_approver` is the rule they use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import exists, func, select
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
    User,
    UserStatus,
)
from idp.services import audit


class AccessError(ValueError):
    """A change the rules forbid; the message is plain English, fit to show."""


def _record(
    event: str,
    user: User,
    organisation: Organisation,
    *,
    actor: str,
    reason: str | None,
    **details: Any,
) -> None:
    """Audit a change to ``user``'s place at ``organisation`` (K03)."""
    audit.record(
        event,
        actor=actor,
        target=user.sub,
        target_type="user",
        reason=reason,
        organisation=organisation.public_id,
        **details,
    )


def _refuse_last_approver(
    found: Membership, user: User, organisation: Organisation, *, then: str
) -> None:
    """Never leave an organisation with people but no approver (issue 7)."""
    if found.role is MembershipRole.APPROVER and count_approvers(organisation) <= 1:
        raise AccessError(
            f"{user.name} is the only approver for {organisation.name}. "
            f"Make someone else an approver {then}."
        )


# -- memberships ---------------------------------------------------------------------------------


def membership(user: User, organisation: Organisation) -> Membership | None:
    return db.session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.organisation_id == organisation.id
        )
    )


def memberships_of(user: User) -> list[Membership]:
    """The user's memberships, organisations loaded, by organisation name."""
    return list(
        db.session.scalars(
            select(Membership)
            .join(Organisation, Organisation.id == Membership.organisation_id)
            .where(Membership.user_id == user.id)
            .options(selectinload(Membership.organisation))
            .order_by(Organisation.name, Organisation.id)
        )
    )


def is_approver(user: User, organisation: Organisation) -> bool:
    found = membership(user, organisation)
    return found is not None and found.role is MembershipRole.APPROVER


def approvers_of(organisation: Organisation) -> list[User]:
    """Active approvers of ``organisation``, by name."""
    return list(
        db.session.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.organisation_id == organisation.id,
                Membership.role == MembershipRole.APPROVER,
                User.status == UserStatus.ACTIVE,
            )
            .order_by(User.family_name, User.given_name, User.id)
        )
    )


def count_approvers(organisation: Organisation) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Membership)
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.organisation_id == organisation.id,
                Membership.role == MembershipRole.APPROVER,
                User.status != UserStatus.DEACTIVATED,
            )
        )
        or 0
    )


def _live_membership_exists(*conditions: Any) -> Any:
    return exists(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.organisation_id == Organisation.id,
            User.status != UserStatus.DEACTIVATED,
            *conditions,
        )
    )


def has_live_members() -> Any:
    """SQL condition on ``Organisation``: someone whose account is not deactivated belongs."""
    return _live_membership_exists()


def has_live_approver() -> Any:
    """SQL condition on ``Organisation``: an approver whose account is not deactivated.

    With :func:`has_live_members` this is the rule "flagged for the helpdesk" (issue 7): an
    organisation with people but nobody live to approve them.
    """
    return _live_membership_exists(Membership.role == MembershipRole.APPROVER)


def add_membership(
    user: User,
    organisation: Organisation,
    *,
    role: MembershipRole = MembershipRole.MEMBER,
    actor: str,
    reason: str | None = None,
) -> Membership:
    """Add ``user`` to ``organisation`` (or change their role there if already a member)."""
    found = membership(user, organisation)
    if found is not None:
        if found.role is not role:
            set_membership_role(user, organisation, role, actor=actor, reason=reason)
        return found
    created = Membership(user_id=user.id, organisation_id=organisation.id, role=role)
    db.session.add(created)
    db.session.flush()
    _record("membership.added", user, organisation, actor=actor, reason=reason, role=str(role))
    return created


def set_membership_role(
    user: User,
    organisation: Organisation,
    role: MembershipRole,
    *,
    actor: str,
    reason: str | None = None,
) -> Membership:
    """Promote or demote; never leaves an organisation that had approvers with none."""
    found = membership(user, organisation)
    if found is None:
        raise AccessError(f"{user.name} is not a member of {organisation.name}")
    if found.role is role:
        return found
    _refuse_last_approver(found, user, organisation, then="first")
    previous = found.role
    found.role = role
    db.session.flush()
    _record(
        "membership.role_changed",
        user,
        organisation,
        actor=actor,
        reason=reason,
        previous_role=str(previous),
        role=str(role),
    )
    return found


def remove_membership(
    user: User, organisation: Organisation, *, actor: str, reason: str | None = None
) -> bool:
    """Remove ``user`` from ``organisation`` with every grant they held there.

    Returns whether they were a member. Refuses to remove the last approver. The caller
    handles a leaver (no organisations left: see :mod:`idp.services.account_status`).
    """
    found = membership(user, organisation)
    if found is None:
        return False
    _refuse_last_approver(found, user, organisation, then="before removing them")
    for grant in grants_of(user, organisation):
        db.session.delete(grant)
    db.session.delete(found)
    db.session.flush()
    _record("membership.removed", user, organisation, actor=actor, reason=reason)
    return True


# -- access grants -------------------------------------------------------------------------------


def grant_for(user: User, organisation: Organisation, service: Service) -> AccessGrant | None:
    return db.session.scalar(
        select(AccessGrant)
        .where(
            AccessGrant.user_id == user.id,
            AccessGrant.organisation_id == organisation.id,
            AccessGrant.service_id == service.id,
        )
        .options(selectinload(AccessGrant.roles))
    )


def grants_of(user: User, organisation: Organisation | None = None) -> list[AccessGrant]:
    """The user's grants (at one organisation, or everywhere), roles loaded."""
    query = (
        select(AccessGrant)
        .where(AccessGrant.user_id == user.id)
        .options(selectinload(AccessGrant.roles))
        .order_by(AccessGrant.organisation_id, AccessGrant.service_id)
    )
    if organisation is not None:
        query = query.where(AccessGrant.organisation_id == organisation.id)
    return list(db.session.scalars(query))


def has_access(user: User, service: Service, organisation: Organisation | None = None) -> bool:
    """May ``user`` sign in to ``service`` (at ``organisation``, or at any of theirs)?"""
    if user.status is not UserStatus.ACTIVE:
        return False
    if service.access_policy is AccessPolicy.OPEN:
        return True
    query = select(AccessGrant.id).where(
        AccessGrant.user_id == user.id, AccessGrant.service_id == service.id
    )
    if organisation is not None:
        query = query.where(AccessGrant.organisation_id == organisation.id)
    return db.session.scalar(query.limit(1)) is not None


def roles_allowed(service: Service, organisation: Organisation) -> list[ServiceRole]:
    """The service's roles an organisation of this type may hold, by name."""
    return sorted(
        (
            role
            for role in service.roles
            if role.organisation_types is None or str(organisation.type) in role.organisation_types
        ),
        key=lambda role: (role.name, role.code),
    )


def _resolve_roles(
    service: Service, organisation: Organisation, role_codes: Iterable[str]
) -> list[ServiceRole]:
    wanted = set(role_codes)
    by_code = {role.code: role for role in service.roles}
    unknown = sorted(wanted - by_code.keys())
    if unknown:
        raise AccessError(f"{service.name} has no role called {', '.join(unknown)}")
    allowed = {role.code for role in roles_allowed(service, organisation)}
    refused = sorted(wanted - allowed)
    if refused:
        names = ", ".join(by_code[code].name for code in refused)
        raise AccessError(f"{organisation.name} cannot hold the {service.name} role {names}")
    return sorted((by_code[code] for code in wanted), key=lambda role: role.code)


def set_access(
    user: User,
    organisation: Organisation,
    service: Service,
    role_codes: Sequence[str] = (),
    *,
    actor: str,
    reason: str | None = None,
) -> AccessGrant:
    """Give ``user`` access to ``service`` at ``organisation`` with exactly ``role_codes``.

    Creates or updates the grant. The user must be a member of the organisation, and every role
    must exist and be allowed for the organisation's type (AccessError otherwise).
    """
    if membership(user, organisation) is None:
        raise AccessError(f"{user.name} is not a member of {organisation.name}")
    roles = _resolve_roles(service, organisation, role_codes)
    grant = grant_for(user, organisation, service)
    created = grant is None
    if grant is None:
        grant = AccessGrant(user_id=user.id, organisation_id=organisation.id, service_id=service.id)
        db.session.add(grant)
    previous = sorted(role.code for role in grant.roles) if not created else []
    grant.roles = roles
    db.session.flush()
    _record(
        "access.granted" if created else "access.changed",
        user,
        organisation,
        actor=actor,
        reason=reason,
        service=service.client_id,
        roles=[role.code for role in roles],
        previous_roles=previous,
    )
    return grant


def remove_access(
    user: User,
    organisation: Organisation,
    service: Service,
    *,
    actor: str,
    reason: str | None = None,
) -> bool:
    """Take away ``user``'s access to ``service`` at ``organisation``; False if they had none."""
    grant = grant_for(user, organisation, service)
    if grant is None:
        return False
    db.session.delete(grant)
    db.session.flush()
    _record(
        "access.removed", user, organisation, actor=actor, reason=reason, service=service.client_id
    )
    return True
