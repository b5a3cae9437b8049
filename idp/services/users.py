"""Rules about people's accounts that do not belong to one journey: identity and email rules.

An account is one person. Shared role mailboxes (``office@``, ``admin@`` …) are refused as
account emails because the problem this service replaces is one shared password per school.
Emails are stored canonical (trimmed, lower-case) so uniqueness and look-ups ignore case.

Two people may create the same account at the same moment (two approvers, or an approver and a
service, inviting one new address). The unique constraint on ``users.email`` decides who wins;
the loser is told :class:`EmailAlreadyUsed` (or, through :func:`find_or_create`, handed the
winner's account), never a database error that would poison its whole unit of work.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select

from idp.config import Settings
from idp.extensions import db
from idp.models import StaffRole, User, UserStatus
from idp.services import audit
from idp.services.transaction import insert_or_nothing


class InvalidEmail(ValueError):
    """The address is not a valid email address. The message is fit to show a person."""


class RoleMailboxRefused(ValueError):
    """The address is a shared role mailbox, not a person's own."""


class EmailAlreadyUsed(ValueError):
    """Another account already uses this address."""


def canonical_email(raw: str) -> str:
    """Trim and lower-case an address, and check it is one (no DNS look-ups)."""
    text = (raw or "").strip()
    if not text:
        raise InvalidEmail("Enter an email address")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidEmail(
            "Enter an email address in the correct format, like name@school.sch.uk"
        ) from None
    return valid.normalized.lower()


def check_personal_email(email: str, settings: Settings | None = None) -> None:
    """Refuse shared role mailboxes, with a reason a school office worker understands."""
    settings = settings or current_app.extensions["settings"]
    local = email.split("@", 1)[0].lower()
    stripped = local.replace(".", "").replace("-", "").replace("_", "")
    refused = {
        m.replace(".", "").replace("-", "").replace("_", "")
        for m in settings.role_mailbox_local_parts
    }
    if stripped in refused:
        raise RoleMailboxRefused(
            "Use the person's own email address, not a shared mailbox like "
            f"{local}@. Each person needs their own account so we know who did what."
        )


def find_by_email(raw: str) -> User | None:
    try:
        email = canonical_email(raw)
    except InvalidEmail:
        return None
    return db.session.scalar(select(User).where(User.email == email))


def find_by_sub(sub: str) -> User | None:
    return db.session.scalar(select(User).where(User.sub == sub))


def create_user(
    email: str,
    given_name: str,
    family_name: str,
    *,
    actor: str,
    staff_role: StaffRole | None = None,
    status: UserStatus = UserStatus.INVITED,
) -> User:
    """Add a person (invited until they set a password). The caller's unit of work commits.

    Raises :class:`EmailAlreadyUsed` if the address is taken, including by an account another
    transaction created after any look-up the caller made (see :func:`_insert_unless_taken`).
    """
    canonical = canonical_email(email)
    check_personal_email(canonical)
    # No look-up first: the insert itself says whether the address is taken, race or not.
    user = _insert_unless_taken(
        email=canonical,
        given_name=given_name.strip(),
        family_name=family_name.strip(),
        staff_role=staff_role,
        status=status,
    )
    if user is None:
        raise EmailAlreadyUsed("An account with this email address already exists")
    audit.record(
        "user.created",
        actor=actor,
        target=user.sub,
        target_type="user",
        staff_role=staff_role.value if staff_role else None,
    )
    return user


def _insert_unless_taken(**values: object) -> User | None:
    """Insert the account, or nothing if its email is taken; the new account or None.

    When another transaction inserted the same address and has not committed yet, PostgreSQL
    waits for it and then inserts nothing (:func:`~idp.services.transaction.insert_or_nothing`),
    so the loser of the race carries on in a healthy transaction.
    """
    statement = insert_or_nothing(User, User.email).values(**values).returning(User)
    return db.session.scalars(statement).one_or_none()


def find_or_create(
    email: str, given_name: str, family_name: str, *, actor: str
) -> tuple[User, bool]:
    """The account for ``email``, creating an invited one if there is none: (account, created).

    If someone else creates it between our look-up and our insert, theirs is returned as if it
    had been there when we looked (two approvers inviting the same new person at once).
    """
    canonical = canonical_email(email)
    user = db.session.scalar(select(User).where(User.email == canonical))
    if user is not None:
        return user, False
    try:
        return create_user(canonical, given_name, family_name, actor=actor), True
    except EmailAlreadyUsed:
        # Theirs is committed: a new statement sees it (PostgreSQL READ COMMITTED; on SQLite
        # our snapshot began with the insert that found it).
        user = db.session.scalar(select(User).where(User.email == canonical))
        if user is None:  # taken and gone again (deleted at once): nothing sensible to offer
            raise
        return user, False
