"""Changing the email address someone signs in with.

E05: only from a recent sign-in. The new address must prove it is reachable (a link sent
to it) before it replaces the old one, and the old address is told, so a hijacked session
cannot quietly move an account away from its owner.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from idp.config import Settings
from idp.extensions import db
from idp.models import TokenPurpose, User
from idp.models.base import utcnow
from idp.services import account_tokens, audit, outbox, users
from idp.services.links import public_url


def request_change(user: User, new_email: str) -> str:
    """Check ``new_email`` and send it a confirmation link. Returns the canonical address."""
    canonical = users.canonical_email(new_email)
    users.check_personal_email(canonical)
    if canonical == user.email:
        raise users.InvalidEmail("This is already your email address")
    if db.session.scalar(select(User.id).where(User.email == canonical)) is not None:
        # Telling the signed-in owner is not enumeration to an outsider, and they need to know.
        raise users.EmailAlreadyUsed("Another account already uses this email address")
    settings: Settings = current_app.extensions["settings"]
    now = utcnow()
    lifetime = timedelta(hours=settings.email_change_lifetime_hours)
    raw = account_tokens.issue(
        user, TokenPurpose.EMAIL_CHANGE, lifetime, data={"new_email": canonical}, now=now
    )
    outbox.enqueue_email(
        canonical,
        "email_change_confirm",
        link=public_url("account.confirm_email", token=raw),
        expires_at=now + lifetime,
    )
    audit.record("email_change.requested", actor=user.sub, target=user.sub, target_type="user")
    return canonical


def confirm_change(raw_token: str) -> User:
    """Use the link: the new address replaces the old, and the old address is told."""
    token = account_tokens.redeem(raw_token, TokenPurpose.EMAIL_CHANGE)
    user = account_tokens.user_for(token)
    new_email = str(token.data["new_email"])
    if db.session.scalar(select(User.id).where(User.email == new_email)) is not None:
        raise users.EmailAlreadyUsed("Another account already uses this email address")
    old_email = user.email
    user.email = new_email
    outbox.enqueue_email(
        old_email,
        "email_changed_notice",
        new_email=new_email,
        changed_at=utcnow(),
    )
    audit.record("email.changed", actor=user.sub, target=user.sub, target_type="user")
    return user
