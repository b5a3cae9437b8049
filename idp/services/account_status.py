"""Ending a person's sessions, and deactivating or reactivating their account, on someone's say.

One place for what the helpdesk ("sign out everywhere", "deactivate") and approvers (a leaver
removed from their last organisation) both do, so each path ends sessions the same way:
every SSO session ends, relying services hear through back-channel logout (E06, I04), refresh
tokens are revoked (the ``sessions_ended`` listener in :mod:`idp.oidc.tokens`, C06), and the
change is audited with actor and reason (K03). A deactivated person cannot sign in (they get
the vague sign-in message, A08) and their unused links (invitation, reset) stop working.

These functions run inside the caller's unit of work (:func:`idp.services.transaction.transaction`)
and send no email: the caller knows which message fits (helpdesk action, leaver, ...).
"""

from __future__ import annotations

from idp.models import TokenPurpose, User, UserStatus
from idp.services import account_tokens, audit, events
from idp.services.session_endings import record_sessions_ended
from idp.services.sso_sessions import SsoSession, get_sso_sessions


class StatusUnchanged(ValueError):
    """The account is already in the asked-for state."""


def end_all_sessions(
    user: User, *, actor: str, reason: str | None, cause: str = "helpdesk_ended_all"
) -> list[SsoSession]:
    """End every SSO session of ``user`` (with back-channel logout) and revoke refresh tokens.

    ``cause`` is the ``sessions_ended`` reason (see ``REVOKE_ALL_REASONS``); the event is sent
    even when no session was live so that refresh tokens are still revoked.
    """
    ended = get_sso_sessions().end_all_for_user(user.sub)
    record_sessions_ended(
        user.sub,
        ended,
        actor=actor,
        event="sessions.ended",
        how=cause,
        reason=cause,
    )
    if not ended:
        events.sessions_ended.send(user.sub, sessions=[], reason=cause)
    if reason:
        audit.record(
            "sessions.ended_by_staff",
            actor=actor,
            target=user.sub,
            target_type="user",
            reason=reason,
            count=len(ended),
        )
    return ended


def deactivate(user: User, *, actor: str, reason: str | None) -> list[SsoSession]:
    """Deactivate ``user``: no more sign-ins, every session ended, every emailed link void."""
    if user.status is UserStatus.DEACTIVATED:
        raise StatusUnchanged("This account is already deactivated")
    previous = user.status
    user.status = UserStatus.DEACTIVATED
    for purpose in (
        TokenPurpose.INVITATION,
        TokenPurpose.PASSWORD_RESET,
        TokenPurpose.EMAIL_CHANGE,
        TokenPurpose.MFA_ENROLMENT,
    ):
        account_tokens.invalidate_all(user, purpose)
    ended = end_all_sessions(user, actor=actor, reason=None, cause="deactivated")
    audit.record(
        "user.deactivated",
        actor=actor,
        target=user.sub,
        target_type="user",
        reason=reason,
        previous_status=str(previous),
        sessions_ended=len(ended),
    )
    return ended


def reactivate(user: User, *, actor: str, reason: str | None) -> None:
    """Let a deactivated person sign in again: active if they had set a password, else invited
    (they then need a fresh invitation, which the caller sends)."""
    if user.status is not UserStatus.DEACTIVATED:
        raise StatusUnchanged("This account is not deactivated")
    user.status = UserStatus.ACTIVE if user.password_hash else UserStatus.INVITED
    audit.record(
        "user.reactivated",
        actor=actor,
        target=user.sub,
        target_type="user",
        reason=reason,
        status=str(user.status),
    )
