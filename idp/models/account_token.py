"""Single-use links sent by email: invitations, password resets, email changes, MFA re-enrolment.

Only the SHA-256 of the random token is stored (C02). A token is bound to one user and one
purpose, expires, is used at most once, and is superseded by a newer token of the same purpose.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.models.base import Base, JSONType, str_enum, utcnow


class TokenPurpose(enum.StrEnum):
    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose name, not a password)
    EMAIL_CHANGE = "email_change"
    MFA_ENROLMENT = "mfa_enrolment"


class AccountToken(Base):
    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user_id_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose, "token_purpose"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    # Purpose-specific data that is not secret, e.g. the new address for an email change.
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
