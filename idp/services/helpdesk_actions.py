"""What the helpdesk may do to one person's account, and the rules around each action (issue 8).

K02: the helpdesk sends a reset link, resends an invitation, unlocks, ends sessions,
deactivates and reactivates, corrects an email address or a name. It never sees or sets a
password. Every action:

- is made by helpdesk staff (checked here, whatever page asked: :func:`check_actor`);
- carries a reason (free text or a ticket reference, :data:`REASON_MAX` characters at most);
- is audited as ``helpdesk.<action>`` with the actor's sub, the target, the reason and the
  outcome (K03), next to whatever the underlying service records;
- tells the person by email (K02, D07 "Also", NIST SP 800-63B-4 §4.6), through the outbox,
  in the caller's unit of work, so the email exists if and only if the change committed.

Safety rules (DESIGN §1: "an action with no record" must never happen, nor a lock-out of the
helpdesk itself): nobody deactivates themselves; the last active ``helpdesk_admin`` cannot be
deactivated; only a ``helpdesk_admin`` may deactivate, reactivate or re-address a staff account.

Each function runs inside the caller's :func:`idp.services.transaction.transaction`; a raised
:class:`ActionRefused` leaves nothing behind. MFA resets live in :mod:`idp.services.mfa_reset`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from sqlalchemy import select

from idp.extensions import db
from idp.models import StaffRole, TokenPurpose, User, UserStatus
from idp.models.base import utcnow
from idp.services import account_status, account_tokens, audit, invitations, outbox, users
from idp.services.helpdesk_staff import is_last_helpdesk_admin
from idp.services.links import public_url
from idp.services.password_reset import send_reset_link
from idp.services.throttle import account_key_for, get_throttle

#: The longest reason kept (a sentence or a ticket reference, not an essay).
REASON_MAX: Final = 500
#: The longest given or family name (the column's width).
NAME_MAX: Final = 100
HELPDESK_ROLES: Final = frozenset({StaffRole.HELPDESK, StaffRole.HELPDESK_ADMIN})


class Action(StrEnum):
    """The actions, by the name used in URLs, audit events and the bulk form."""

    SEND_RESET = "send_reset"
    RESEND_INVITATION = "resend_invitation"
    UNLOCK = "unlock"
    SIGN_OUT = "sign_out"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    CHANGE_EMAIL = "change_email"
    CHANGE_NAME = "change_name"


#: The audit event of each action.
EVENTS: Final = {
    Action.SEND_RESET: "helpdesk.password_reset_sent",
    Action.RESEND_INVITATION: "helpdesk.invitation_resent",
    Action.UNLOCK: "helpdesk.unlocked",
    Action.SIGN_OUT: "helpdesk.signed_out_everywhere",
    Action.DEACTIVATE: "helpdesk.deactivated",
    Action.REACTIVATE: "helpdesk.reactivated",
    Action.CHANGE_EMAIL: "helpdesk.email_changed",
    Action.CHANGE_NAME: "helpdesk.name_changed",
}


class ActionRefused(ValueError):
    """The action does not apply to this person, or this actor may not take it.

    The message is fit to show the agent (and as a bulk row's "why").
    """


class NotApplicable(ActionRefused):
    """The action makes no sense for this account as it is (not invited, not locked, ...)."""


class NotPermitted(ActionRefused):
    """This actor may not take this action on this person."""


# -- shared rules ---------------------------------------------------------------------------


def check_actor(actor: User) -> None:
    """Only active helpdesk staff act through the console (K01; the guards check it too)."""
    if actor.staff_role not in HELPDESK_ROLES or actor.status is not UserStatus.ACTIVE:
        raise NotPermitted("Only helpdesk staff can do this")


def clean_reason(reason: str | None) -> str:
    """The reason as typed, trimmed; required and at most :data:`REASON_MAX` characters."""
    text = (reason or "").strip()
    if not text:
        raise ActionRefused("Enter a reason or a ticket reference")
    if len(text) > REASON_MAX:
        raise ActionRefused(f"The reason must be {REASON_MAX} characters or fewer")
    return text


def _check_staff_target(actor: User, target: User, what: str) -> None:
    if target.staff_role is not None and actor.staff_role is not StaffRole.HELPDESK_ADMIN:
        raise NotPermitted(f"Only a helpdesk admin can {what} a helpdesk account")


def _record(action: Action, actor: User, target: User, reason: str, **details: Any) -> None:
    audit.record(
        EVENTS[action],
        actor=actor.sub,
        target=target.sub,
        target_type="user",
        reason=reason,
        **details,
    )


def _tell(user: User, action: str, *, to: str | None = None, **values: str) -> None:
    outbox.enqueue_email(
        to or user.email,
        "helpdesk_action",
        action=action,
        reset_link=public_url("reset.forgot_password"),
        **values,
    )


# -- the actions ------------------------------------------------------------------------------


def send_password_reset(target: User, *, actor: User, reason: str) -> None:
    """Email the person a reset link (C02 link; K02: the helpdesk never sets a password)."""
    check_actor(actor)
    reason = clean_reason(reason)
    if target.status is UserStatus.INVITED:
        raise NotApplicable(
            "This person has not set up their account yet. Resend their invitation instead"
        )
    if target.status is UserStatus.DEACTIVATED:
        raise NotApplicable("This account is deactivated. Reactivate it first")
    send_reset_link(target, template="helpdesk_password_reset")
    _record(Action.SEND_RESET, actor, target, reason)


def resend_invitation(target: User, *, actor: User, reason: str) -> None:
    """Send a fresh invitation link (the old one stops working) to someone still invited."""
    check_actor(actor)
    reason = clean_reason(reason)
    if target.status is not UserStatus.INVITED:
        raise NotApplicable(
            "This person has already set up their account, so there is no invitation to resend"
            if target.status is UserStatus.ACTIVE
            else "This account is deactivated. Reactivate it first"
        )
    invitations.invite(target, actor=actor.sub)
    _record(Action.RESEND_INVITATION, actor, target, reason)


def unlock_keys(target: User) -> tuple[str, str]:
    """Both counters sign-in may have used: by sub, and by the address as typed (B02)."""
    return account_key_for(target.email, sub=target.sub), account_key_for(target.email)


def is_locked(target: User) -> bool:
    throttle = get_throttle()
    return any(throttle.is_locked(key) for key in unlock_keys(target))


def unlock(target: User, *, actor: User, reason: str) -> None:
    """Lift the sign-in lock and clear the failure counters (B07).

    The store is changed last, after the audit row and the email are in the unit of work, so a
    refusal or a database failure leaves the lock as it was.
    """
    check_actor(actor)
    reason = clean_reason(reason)
    if not is_locked(target):
        raise NotApplicable("This account is not locked")
    _record(Action.UNLOCK, actor, target, reason)
    _tell(target, "unlocked")
    db.session.flush()
    throttle = get_throttle()
    for key in unlock_keys(target):
        throttle.unlock(key)


def sign_out_everywhere(target: User, *, actor: User, reason: str) -> int:
    """End every session, with back-channel logout and refresh tokens revoked (E06)."""
    check_actor(actor)
    reason = clean_reason(reason)
    ended = account_status.end_all_sessions(target, actor=actor.sub, reason=None)
    _record(Action.SIGN_OUT, actor, target, reason, sessions_ended=len(ended))
    _tell(target, "signed_out")
    return len(ended)


def deactivate(target: User, *, actor: User, reason: str) -> None:
    """No more sign-ins, every session ended, every emailed link void (E06)."""
    check_actor(actor)
    reason = clean_reason(reason)
    if target.id == actor.id:
        raise NotPermitted("You cannot deactivate your own account")
    _check_staff_target(actor, target, "deactivate")
    if target.status is UserStatus.DEACTIVATED:
        raise NotApplicable("This account is already deactivated")
    if is_last_helpdesk_admin(target):
        raise NotPermitted("This is the last helpdesk admin. Make someone else an admin first")
    ended = account_status.deactivate(target, actor=actor.sub, reason=reason)
    _record(Action.DEACTIVATE, actor, target, reason, sessions_ended=len(ended))
    _tell(target, "deactivated")


def reactivate(target: User, *, actor: User, reason: str) -> None:
    """Let the person sign in again; someone who never set a password gets a new invitation."""
    check_actor(actor)
    reason = clean_reason(reason)
    _check_staff_target(actor, target, "reactivate")
    if target.status is not UserStatus.DEACTIVATED:
        raise NotApplicable("This account is not deactivated")
    account_status.reactivate(target, actor=actor.sub, reason=reason)
    status = _status_of(target)  # reactivate() chose active or invited
    _record(Action.REACTIVATE, actor, target, reason, status=str(status))
    if status is UserStatus.INVITED:
        invitations.invite(target, actor=actor.sub)
    else:
        _tell(target, "reactivated")


def _status_of(user: User) -> UserStatus:
    return user.status


def change_email(target: User, new_email: str, *, actor: User, reason: str) -> str:
    """Correct the address someone signs in with; both addresses are told (E05 spirit).

    The new address must be valid, a person's own (not a role mailbox) and unused. Links
    already sent to the old address stop working; someone still invited gets their invitation
    again, at the new address. Raises :class:`users.InvalidEmail`,
    :class:`users.RoleMailboxRefused` or :class:`users.EmailAlreadyUsed` for a bad address.
    """
    check_actor(actor)
    reason = clean_reason(reason)
    _check_staff_target(actor, target, "change the email address of")
    canonical = users.canonical_email(new_email)
    users.check_personal_email(canonical)
    if canonical == target.email:
        raise users.InvalidEmail("This is already the person's email address")
    if db.session.scalar(select(User.id).where(User.email == canonical)) is not None:
        # The agent is staff, not an outsider: saying so is not enumeration (and they need it).
        raise users.EmailAlreadyUsed("Another account already uses this email address")
    old = target.email
    target.email = canonical
    for purpose in (
        TokenPurpose.PASSWORD_RESET,
        TokenPurpose.EMAIL_CHANGE,
        TokenPurpose.MFA_ENROLMENT,
    ):
        account_tokens.invalidate_all(target, purpose)
    db.session.flush()
    _record(Action.CHANGE_EMAIL, actor, target, reason, old_email=old, new_email=canonical)
    outbox.enqueue_email(old, "email_changed_notice", new_email=canonical, changed_at=utcnow())
    if target.status is UserStatus.INVITED:
        invitations.invite(target, actor=actor.sub)
    else:
        _tell(target, "email_changed", new_email=canonical)
    return canonical


def clean_name(name: str | None, what: str) -> str:
    text = " ".join((name or "").split())
    if not text:
        raise ActionRefused(f"Enter the {what}")
    if len(text) > NAME_MAX:
        raise ActionRefused(f"The {what} must be {NAME_MAX} characters or fewer")
    return text


def change_name(
    target: User, given_name: str, family_name: str, *, actor: User, reason: str
) -> None:
    """Correct someone's name (it reaches services in the ``name`` claims)."""
    check_actor(actor)
    reason = clean_reason(reason)
    given = clean_name(given_name, "first name")
    family = clean_name(family_name, "last name")
    if (given, family) == (target.given_name, target.family_name):
        raise NotApplicable("This is already the person's name")
    old = target.name
    target.given_name, target.family_name = given, family
    db.session.flush()
    _record(Action.CHANGE_NAME, actor, target, reason, old_name=old, new_name=target.name)
    _tell(target, "name_changed", new_name=target.name)
