"""Inviting a person and accepting the invitation.

A09: an invitation is a random, single-use, expiring link (7 days by default), superseded by a
newer one, stored only as a hash; it can never become a long-term password. The person sets
their own password from it; nobody else ever knows it.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from idp.config import Settings
from idp.models import TokenPurpose, User, UserStatus
from idp.models.base import utcnow
from idp.services import account_tokens, audit, outbox
from idp.services.account_passwords import set_password
from idp.services.links import public_url


class AlreadyActive(ValueError):
    """The account is active already: send a password reset instead."""


def invite(
    user: User,
    *,
    actor: str,
    organisation_name: str | None = None,
    inviter_name: str | None = None,
) -> None:
    """Email ``user`` a fresh invitation link (older links stop working)."""
    if user.status is not UserStatus.INVITED:
        raise AlreadyActive("This person has already set up their account")
    settings: Settings = current_app.extensions["settings"]
    lifetime = timedelta(hours=settings.invitation_lifetime_hours)
    now = utcnow()
    raw = account_tokens.issue(user, TokenPurpose.INVITATION, lifetime, now=now)
    outbox.enqueue_email(
        user.email,
        "invitation",
        link=public_url("invitation.accept", token=raw),
        expires_at=now + lifetime,
        organisation_name=organisation_name,
        inviter_name=inviter_name,
    )
    audit.record("invitation.sent", actor=actor, target=user.sub, target_type="user")


def accept(raw_token: str, password: str) -> User:
    """Redeem the link and set the first password. Raises TokenInvalid or PasswordRejected."""
    token = account_tokens.peek(raw_token, TokenPurpose.INVITATION)
    user = account_tokens.user_for(token)
    set_password(user, password)  # the policy is checked before the link is used up
    account_tokens.redeem(raw_token, TokenPurpose.INVITATION)
    user.status = UserStatus.ACTIVE
    audit.record("invitation.accepted", actor=user.sub, target=user.sub, target_type="user")
    return user
