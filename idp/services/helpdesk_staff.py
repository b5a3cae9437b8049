"""Who works on the helpdesk: giving, changing and removing the staff roles (issue 8).

Rules (security-requirements K01, K02, K03):

- Only a helpdesk admin may change staff roles; the console's guard checks the role and this
  module checks it again, so no URL can skip it.
- **The last helpdesk admin cannot be removed or demoted**: someone must always be able to
  manage the helpdesk. "Last" counts *active* admins other than the one being changed; on
  PostgreSQL the admins' rows are locked first, so two admins demoting each other at the same
  moment cannot both succeed.
- A person given a role must use a security key or passkey from their next sign-in (the MFA
  policy asks it of anyone with a ``staff_role``; the console guard refuses any session
  without one), and is told by email, as they are when it changes or is removed.
- Every change is audited as ``staff.role_changed`` with the old and new role.

Functions add and flush; the caller commits (:func:`idp.services.transaction.transaction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy import func, select

from idp.extensions import db
from idp.models import StaffRole, User, UserStatus
from idp.services import audit, outbox, users

ROLE_NAMES: Final[dict[StaffRole, str]] = {
    StaffRole.HELPDESK: "helpdesk",
    StaffRole.HELPDESK_ADMIN: "helpdesk admin",
}


class StaffRoleError(ValueError):
    """A staff-role change that is not allowed; the message is shown to the admin as it is."""


class NotAllowed(StaffRoleError):
    """The person asking is not a helpdesk admin."""


class PersonNotFound(StaffRoleError):
    """No account uses this email address."""


class LastHelpdeskAdmin(StaffRoleError):
    """The change would leave no active helpdesk admin."""


def list_staff() -> Sequence[User]:
    """Everyone with a staff role, admins first, then by name."""
    return db.session.scalars(
        select(User)
        .where(User.staff_role.is_not(None))
        .order_by(User.staff_role.desc(), User.family_name, User.given_name, User.id)
    ).all()


def active_admin_count() -> int:
    return int(
        db.session.scalar(
            select(func.count(User.id)).where(
                User.staff_role == StaffRole.HELPDESK_ADMIN, User.status == UserStatus.ACTIVE
            )
        )
        or 0
    )


def is_last_helpdesk_admin(person: User) -> bool:
    """Whether ``person`` is the only active helpdesk admin (issue 8: never remove the last).

    Locks every admin row (PostgreSQL; SQLite ignores FOR UPDATE and serialises writers) so the
    count cannot change between this check and the commit of the caller's unit of work. The
    helpdesk's deactivate action and the staff-role page both ask here.
    """
    if person.staff_role is not StaffRole.HELPDESK_ADMIN or person.status is not UserStatus.ACTIVE:
        return False
    others = db.session.scalars(
        select(User.id)
        .where(
            User.staff_role == StaffRole.HELPDESK_ADMIN,
            User.status == UserStatus.ACTIVE,
            User.id != person.id,
        )
        .with_for_update()
    ).all()
    return not others


def _check_not_last_admin(person: User) -> None:
    if is_last_helpdesk_admin(person):
        raise LastHelpdeskAdmin(
            f"{person.name} is the last helpdesk admin. Make someone else a helpdesk admin "
            "before you remove or change this role."
        )


def set_role(
    actor: User, person: User, role: StaffRole | None, *, reason: str | None = None
) -> bool:
    """Give ``person`` the staff ``role`` (None removes it); return whether anything changed.

    Raises :class:`NotAllowed` unless ``actor`` is a helpdesk admin, and
    :class:`LastHelpdeskAdmin` when the change would leave no active admin.
    """
    if actor.staff_role is not StaffRole.HELPDESK_ADMIN or actor.status is not UserStatus.ACTIVE:
        raise NotAllowed("Only a helpdesk admin can change helpdesk roles")
    before = person.staff_role
    if before is role:
        return False
    if before is StaffRole.HELPDESK_ADMIN and person.status is UserStatus.ACTIVE:
        _check_not_last_admin(person)
    person.staff_role = role
    db.session.flush()
    audit.record(
        "staff.role_changed",
        actor=actor.sub,
        target=person.sub,
        target_type="user",
        reason=reason,
        from_role=before.value if before else None,
        to_role=role.value if role else None,
    )
    outbox.enqueue_email(
        person.email,
        "staff_role_changed",
        change="removed" if role is None else "given",
        role_name=ROLE_NAMES[role] if role else ROLE_NAMES[before] if before else "helpdesk",
    )
    return True


def give_role_by_email(
    actor: User, email: str, role: StaffRole, *, reason: str | None = None
) -> User:
    """:func:`set_role` for the person with ``email``; :class:`PersonNotFound` if no one."""
    person = users.find_by_email(email)
    if person is None:
        raise PersonNotFound("No account uses this email address. Invite the person first.")
    if person.status is UserStatus.DEACTIVATED:
        raise StaffRoleError("This account is deactivated. Reactivate it first.")
    set_role(actor, person, role, reason=reason)
    return person


def find_staff(sub: str) -> User | None:
    """The person with ``sub`` if they hold a staff role."""
    person = users.find_by_sub(sub)
    return person if person is not None and person.staff_role is not None else None
