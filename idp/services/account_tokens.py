"""Single-use emailed links: issue, look up, and redeem exactly once.

C02 / RFC 6819 §5.1.4.2.2: 256 random bits, only the SHA-256 stored, bound to one account and
one purpose, expiring, single use, and superseded by a newer token of the same purpose. The
redeem step is one conditional UPDATE, so two concurrent redemptions cannot both succeed on
any back end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from idp.extensions import db
from idp.models import AccountToken, TokenPurpose, User
from idp.models.base import utcnow
from idp.services.crypto import new_token, token_hash


class TokenInvalid(ValueError):
    """Unknown, used, superseded or expired. One exception: the page says the same for all."""


def issue(
    user: User,
    purpose: TokenPurpose,
    lifetime: timedelta,
    *,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    """Create a token for ``user`` and return the raw value (to email; it is never stored)."""
    now = now or utcnow()
    # A newer link supersedes every older unused one of the same purpose.
    db.session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    raw = new_token()
    db.session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=token_hash(raw),
            created_at=now,
            expires_at=now + lifetime,
            data=data or {},
        )
    )
    db.session.flush()
    return raw


def invalidate_all(user: User, purpose: TokenPurpose, *, now: datetime | None = None) -> None:
    """Kill every unused token of ``purpose`` (e.g. reset links after a password change)."""
    db.session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now or utcnow())
    )


def peek(raw: str, purpose: TokenPurpose, *, now: datetime | None = None) -> AccountToken:
    """The live token for ``raw`` without using it (to show the form the link leads to)."""
    now = now or utcnow()
    if not raw or len(raw) > 128:
        raise TokenInvalid
    token = db.session.scalar(
        select(AccountToken).where(
            AccountToken.token_hash == token_hash(raw), AccountToken.purpose == purpose
        )
    )
    if token is None or token.used_at is not None or token.expires_at <= now:
        raise TokenInvalid
    return token


def redeem(raw: str, purpose: TokenPurpose, *, now: datetime | None = None) -> AccountToken:
    """Use the token: exactly one caller ever succeeds (C05: verified at the final POST)."""
    now = now or utcnow()
    token = peek(raw, purpose, now=now)
    claimed = db.session.execute(
        update(AccountToken)
        .where(
            AccountToken.id == token.id,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise TokenInvalid
    db.session.refresh(token)
    return token


def user_for(token: AccountToken) -> User:
    user = db.session.get(User, token.user_id)
    if user is None:
        raise TokenInvalid
    return user


__all__ = ["TokenInvalid", "TokenPurpose", "invalidate_all", "issue", "peek", "redeem", "user_for"]
