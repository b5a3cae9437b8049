"""Counting second-factor attempts: one throttle counter per method (B01 "Also", B04, D04).

Each method is its own authenticator kind on the shared :class:`~idp.services.throttle.Throttle`
(``"totp"``, ``"recovery_code"``, ``"webauthn"``), keyed by the account's ``sub`` (B02):

    key = attempts.check(throttle, user, Method.TOTP)   # refused before evaluating (B01)
    if ok: attempts.succeeded(throttle, key, Method.TOTP)  # resets this method only
    else:  attempts.failed(throttle, user, key, Method.TOTP)

A password success never resets these counters, and a TOTP success does not reset the
password's (keycloak#46164).
"""

from __future__ import annotations

from idp.models import User
from idp.services import audit
from idp.services.account_lock import report_lock
from idp.services.mfa.common import Method, MfaThrottled
from idp.services.throttle import Throttle, account_key_for
from idp.services.transaction import transaction


def check(throttle: Throttle, user: User, method: Method) -> str:
    """Allow (and count) one attempt, or raise :class:`MfaThrottled`. Returns the counter key."""
    key = account_key_for(user.email, sub=user.sub)
    decision = throttle.check(key, method.value)
    if not decision.allowed:
        with transaction():
            audit.record(
                "mfa.throttled",
                actor=None,
                target=user.sub,
                target_type="user",
                outcome=audit.DENIED,
                method=method.value,
            )
        raise MfaThrottled(decision.retry_after)
    return key


def succeeded(throttle: Throttle, key: str, method: Method) -> None:
    throttle.record_success(key, method.value)


def failed(throttle: Throttle, user: User, key: str, method: Method) -> None:
    """Count a wrong second factor and commit its audit record now, like a wrong password:
    the caller is about to report the failure, and its own unit of work may roll back.

    A newly locked method is audited once and the person is told by email, since whoever was
    guessing already knew their password (D04, B01).
    """
    failure = throttle.record_failure(key, method.value)
    with transaction():
        audit.record(
            "mfa.failed",
            actor=None,
            target=user.sub,
            target_type="user",
            outcome=audit.FAILURE,
            method=method.value,
        )
        if failure.newly_locked:
            report_lock(
                user,
                failure,
                f"too many failed {method.value.replace('_', ' ')} attempts",
                method=method.value,
            )
