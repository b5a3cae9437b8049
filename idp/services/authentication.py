"""Checking a person's email and password, with throttling and without enumeration.

- B05 / ASVS 6.3.8: unknown, wrong, deactivated and not-yet-activated accounts all get the
  same exception, and an unknown account still costs one argon2id verification (against a
  dummy hash), so neither the answer nor its timing tells which case it was.
- B01-B03 / NIST SP 800-63B-4 §3.2.2: the failure counter is keyed by the canonical account
  (the user's sub, or a keyed hash of the canonical email when there is no such account, so
  unknown accounts throttle exactly like known ones), checked *before* the password is
  evaluated, and updated atomically in Redis.
- B06: the per-IP limit uses the address Werkzeug's ProxyFix settled on from the configured
  hop count; whatever string a client sends in X-Forwarded-For, a limit still applies.
- A08: a successful sign-in re-hashes the password when the argon2 parameters have changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from idp.models import User, UserStatus
from idp.models.base import utcnow
from idp.services import audit, outbox
from idp.services.links import public_url
from idp.services.mfa.factors import find_by_email_with_any_factor
from idp.services.passwords import get_passwords
from idp.services.throttle import Outcome, account_key_for, get_throttle, ip_key
from idp.services.transaction import transaction
from idp.store import Store

PASSWORD = "password"  # noqa: S105 (the authenticator kind, not a password)
IP_LIMIT = 100  # sign-in attempts per IP per window: generous for a school behind one NAT
IP_WINDOW_SECONDS = 900


class SignInFailed(Exception):
    """Wrong email or password, or an account that cannot sign in. Deliberately vague."""


class SignInThrottled(Exception):
    """Too many attempts for this account or from this address. Deliberately vague too."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    user: User
    #: Whether the person has a second factor (so the MFA step applies), found by the same
    #: query as the account, to save the sign-in POST a round trip.
    has_any_factor: bool = False
    #: The value at ``authenticate``'s ``read_key`` (None when unset or not asked for).
    read_value: bytes | str | None = None


def authenticate(
    identifier: str,
    password: str,
    *,
    ip: str | None,
    batch: Store | None = None,
    read_key: str | None = None,
) -> SignedIn:
    """Return the signed-in user, or raise SignInFailed / SignInThrottled.

    ``batch``: a store pipeline the caller executes after its own writes; the success
    bookkeeping is queued there to save a round trip (issue 3's 1.2x budget).
    ``read_key``: a store key the caller needs on success (the pending sign-in), read in the
    throttle's round trip for every attempt alike, and returned as ``read_value``.
    """
    throttle = get_throttle()
    user, has_factor = find_by_email_with_any_factor(identifier)
    key = account_key_for(identifier, sub=user.sub if user else None)
    # The per-IP limit (B06) and the per-account check (B01) in one atomic round trip; a
    # refused IP is not counted against the account. The look-up above happens for unknown
    # and known accounts alike, so the order reveals nothing (B05).
    decision, read_value = throttle.check_after_limit_reading(
        key,
        PASSWORD,
        limit_key="signin-" + ip_key(ip),
        limit=IP_LIMIT,
        window_seconds=IP_WINDOW_SECONDS,
        read_key=read_key,
    )
    if decision.outcome is Outcome.LIMITED:
        raise SignInThrottled(decision.retry_after)
    if not decision.allowed:
        # Refused without evaluating the password (B01).
        with transaction():
            audit.record(
                "sign_in.throttled",
                actor=None,
                target=user.sub if user else None,
                target_type="user",
                outcome=audit.DENIED,
            )
        raise SignInThrottled(decision.retry_after)

    passwords = get_passwords()
    stored = user.password_hash if user else None
    valid = passwords.verify(stored, password)  # dummy hash when stored is None (B05)
    can_sign_in = user is not None and user.status is UserStatus.ACTIVE

    if not (valid and can_sign_in):
        failure = throttle.record_failure(key, PASSWORD)
        with transaction():
            audit.record(
                "sign_in.failed",
                actor=None,
                target=user.sub if user else None,
                target_type="user",
                outcome=audit.FAILURE,
                reason="unknown account"
                if user is None
                else ("wrong password" if not valid else f"account {user.status.value}"),
            )
            if failure.newly_locked and user is not None:
                audit.record(
                    "account.locked",
                    actor=None,
                    target=user.sub,
                    target_type="user",
                    outcome=audit.DENIED,
                    reason="too many failed sign-in attempts",
                )
                outbox.enqueue_email(
                    user.email,
                    "account_locked",
                    reset_link=public_url("reset.forgot_password"),
                    # No time when the lock lasts until a reset or the helpdesk lifts it.
                    unlock_at=(utcnow() + timedelta(seconds=failure.retry_after))
                    if failure.retry_after
                    else None,
                )
        raise SignInFailed

    assert user is not None
    throttle.record_success(key, PASSWORD, batch=batch)
    compromised = not user.password_compromised and passwords.is_blocklisted(password)
    rehash = passwords.needs_rehash(stored or "")
    if compromised or rehash:  # usually neither: the common path writes nothing here
        with transaction():
            if compromised:
                # A05: a breached-list hit at sign-in forces a change before the sign-in ends.
                user.password_compromised = True
                audit.record(
                    "password.flagged_compromised",
                    actor=None,
                    target=user.sub,
                    target_type="user",
                    reason="on the breached-password list",
                )
            if rehash:
                user.password_hash = passwords.hash(password)
                audit.record(
                    "password.rehashed", actor=user.sub, target=user.sub, target_type="user"
                )
    return SignedIn(user=user, has_any_factor=has_factor, read_value=read_value)


def verify_for_signed_in_user(user: User, password: str) -> bool:
    """Check a signed-in person's password (change password, confirm before a change).

    B04: every place that checks a password counts failures on the same per-account counter
    and refuses a locked account without evaluating the guess.
    """
    throttle = get_throttle()
    key = account_key_for(user.email, sub=user.sub)
    decision = throttle.check(key, PASSWORD)
    if not decision.allowed:
        raise SignInThrottled(decision.retry_after)
    if get_passwords().verify(user.password_hash, password):
        throttle.record_success(key, PASSWORD)
        return True
    failure = throttle.record_failure(key, PASSWORD)
    with transaction():
        audit.record(
            "password.check_failed",
            actor=user.sub,
            target=user.sub,
            target_type="user",
            outcome=audit.FAILURE,
        )
        if failure.newly_locked:
            audit.record(
                "account.locked",
                actor=None,
                target=user.sub,
                target_type="user",
                outcome=audit.DENIED,
                reason="too many failed password checks",
            )
    return False
