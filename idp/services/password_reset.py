"""Forgot password: the request, the emailed link, and setting the new password.

C01 / OWASP Forgot Password cheat sheet: the web request only rate-limits and queues a job,
the same work whether or not the account exists, so neither the page nor its timing says
which. The worker looks the address up: an active account gets a reset link, an invited one
gets its invitation again, anything else gets nothing. C02: the link is single use, 30
minutes, superseded by a newer one and by any password change. C03: built on the configured
origin. C05: the token is verified again at the final POST. C06: everything is revoked.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from idp.config import Settings
from idp.models import OutboxMessage, TokenPurpose, User, UserStatus
from idp.models.base import utcnow
from idp.models.outbox import OutboxKind
from idp.services import account_tokens, audit, invitations, outbox, users
from idp.services.account_passwords import after_password_changed, check_new_password, set_password
from idp.services.crypto import keyed_hash
from idp.services.links import public_url
from idp.services.throttle import get_rate_limiter, ip_key

PER_EMAIL_LIMIT = 5
PER_IP_LIMIT = 20
WINDOW_SECONDS = 900
JOB_TEMPLATE = "password_reset_request"


def request_reset(email: str, *, ip: str | None) -> None:
    """Queue a reset for ``email`` (a canonical address). Silent when rate-limited (C01)."""
    limiter = get_rate_limiter()
    by_email = limiter.hit("reset-email:" + keyed_hash(email)[:32], PER_EMAIL_LIMIT, WINDOW_SECONDS)
    by_ip = limiter.hit("reset-" + ip_key(ip), PER_IP_LIMIT, WINDOW_SECONDS)
    if not (by_email.allowed and by_ip.allowed):
        audit.record("password_reset.rate_limited", actor=None, outcome=audit.DENIED)
        return
    outbox.enqueue(OutboxKind.JOB, "password-reset", JOB_TEMPLATE, {"email": email})


def handle_reset_job(message: OutboxMessage) -> None:
    """Worker side of :func:`request_reset`: send a link, an invitation, or nothing."""
    payload = outbox.payload_of(message)
    user = users.find_by_email(payload["email"])
    if user is None or user.status is UserStatus.DEACTIVATED:
        audit.record(
            "password_reset.requested",
            actor=None,
            outcome=audit.FAILURE,
            reason="no active account",
        )
        return
    if user.status is UserStatus.INVITED:
        invitations.invite(user, actor="password_reset")
        return
    send_reset_link(user)
    audit.record("password_reset.requested", actor=None, target=user.sub, target_type="user")


def send_reset_link(user: User, *, template: str = "password_reset") -> None:
    """Issue a fresh reset link (older ones stop working, C02) and queue ``template`` with it.

    The helpdesk sends one with ``template="helpdesk_password_reset"`` (K02: the helpdesk never
    sees or sets a password; the link goes only to the person's own address).
    """
    settings: Settings = current_app.extensions["settings"]
    lifetime = timedelta(minutes=settings.password_reset_lifetime_minutes)
    now = utcnow()
    raw = account_tokens.issue(user, TokenPurpose.PASSWORD_RESET, lifetime, now=now)
    outbox.enqueue_email(
        user.email,
        template,
        link=public_url("reset.reset_password", token=raw),
        expires_at=now + lifetime,
        valid_for=f"{settings.password_reset_lifetime_minutes} minutes",
    )


def user_for_link(raw_token: str) -> User:
    """The person a live reset link belongs to (TokenInvalid otherwise)."""
    return account_tokens.user_for(account_tokens.peek(raw_token, TokenPurpose.PASSWORD_RESET))


def reset_password(raw_token: str, password: str) -> User:
    """Set the new password. The link is checked and used up here, at the final step (C05)."""
    user = user_for_link(raw_token)
    check_new_password(user, password)
    account_tokens.redeem(raw_token, TokenPurpose.PASSWORD_RESET)
    set_password(user, password)
    after_password_changed(user, actor=user.sub, how="reset")
    return user
