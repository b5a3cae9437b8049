"""Telling about an account lock: one audit record and one email, the same from every door.

B04: every place that checks a credential (the sign-in password, a signed-in person's
password check, each second factor) counts failures on the same per-account counter
(:mod:`idp.services.throttle`), which says ``newly_locked`` exactly once per lock. Whichever
check tipped it over, the lock is audited as ``account.locked`` (K03) and the person is emailed
with a link to reset their password, and when the lock lifts by itself (NIST SP 800-63B-4
§3.2.2: a locked-out subscriber must learn how to recover).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from idp.models import User
from idp.models.base import utcnow
from idp.services import audit, outbox
from idp.services.links import public_url
from idp.services.throttle import Decision


def report_lock(user: User, failure: Decision, reason: str, **details: Any) -> None:
    """Audit the lock ``failure`` just caused and email ``user`` (in the caller's unit of work)."""
    audit.record(
        "account.locked",
        actor=None,
        target=user.sub,
        target_type="user",
        outcome=audit.DENIED,
        reason=reason,
        **details,
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
