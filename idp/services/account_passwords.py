"""Setting and changing a person's password, and what must follow a change.

After any password change every SSO session ends (and relying services are told through
back-channel logout), failed-attempt locks are lifted, outstanding reset links die, and the
person is emailed (C06, NIST SP 800-63B-4 §4.6). No one is signed in automatically by a
reset, and MFA is still asked at the next sign-in (C04).
"""

from __future__ import annotations

from idp.models import TokenPurpose, User
from idp.models.base import utcnow
from idp.services import account_tokens, audit, events, outbox
from idp.services.authentication import verify_for_signed_in_user
from idp.services.links import public_url
from idp.services.passwords import PasswordRejected, get_passwords
from idp.services.sso_sessions import get_sso_sessions
from idp.services.throttle import account_key_for, get_throttle


class CurrentPasswordWrong(ValueError):
    """The current password given to change it was not right."""


def context_words(user: User) -> list[str]:
    """Words a password must not simply be (A04): the person's names and email."""
    local = user.email.split("@", 1)[0]
    return [user.given_name, user.family_name, user.name, user.email, local]


def check_new_password(user: User, password: str) -> None:
    """Raise PasswordRejected with plain-English reasons if ``password`` breaks the policy."""
    get_passwords().check_new(password, context_words=context_words(user))


def set_password(user: User, password: str) -> None:
    """Check and store a new password (argon2id). The caller's unit of work commits."""
    check_new_password(user, password)
    user.password_hash = get_passwords().hash(password)
    user.password_changed_at = utcnow()
    user.password_compromised = False
    account_tokens.invalidate_all(user, TokenPurpose.PASSWORD_RESET)


def after_password_changed(user: User, *, actor: str, how: str) -> None:
    """End every session, lift locks, notify the person, and audit. Inside the unit of work."""
    ended = get_sso_sessions().end_all_for_user(user.sub)
    # Sent even when no SSO session was live: listeners also revoke refresh tokens (C06, G05).
    events.sessions_ended.send(user.sub, sessions=ended, reason="password_changed")
    get_throttle().unlock(account_key_for(user.email, sub=user.sub))  # B07
    outbox.enqueue_email(
        user.email,
        "password_changed",
        reset_link=public_url("reset.forgot_password"),
        changed_at=utcnow(),
    )
    audit.record(
        "password.changed",
        actor=actor,
        target=user.sub,
        target_type="user",
        how=how,
        sessions_ended=len(ended),
    )


def change_password(user: User, current: str, new: str) -> None:
    """A signed-in person changes their own password: the current one is required (A07).

    Call outside a unit of work: a wrong current password is recorded in its own.
    """
    if not verify_for_signed_in_user(user, current):  # throttled and audited there (B04)
        raise CurrentPasswordWrong("Your current password is not right")
    set_password(user, new)
    after_password_changed(user, actor=user.sub, how="changed")


__all__ = [
    "CurrentPasswordWrong",
    "PasswordRejected",
    "after_password_changed",
    "change_password",
    "check_new_password",
    "set_password",
]
