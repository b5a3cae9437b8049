"""Refresh tokens: hashed, rotated on every use, grouped in families for reuse detection.

RFC 9700 §4.14.2 / checklist G05: presenting a refresh token that was already used revokes its
whole family. A family has an absolute expiry however often it is refreshed. Authorization
codes and the access-token revocation list live in Redis (short-lived), not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.models.base import Base, JSONType, utcnow


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_user_id_revoked_at", "user_id", "revoked_at"),
        Index("ix_refresh_tokens_sid", "sid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The SSO session it was issued in; None for offline_access tokens once detached.
    sid: Mapped[str | None] = mapped_column(String(64), default=None)
    scope: Mapped[str] = mapped_column(Text)
    offline_access: Mapped[bool] = mapped_column(default=False)
    # The organisation chosen at sign-in, for the organisation and roles claims.
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), default=None
    )
    auth_time: Mapped[int] = mapped_column()
    amr: Mapped[list[str]] = mapped_column(JSONType, default=list)
    acr: Mapped[str | None] = mapped_column(String(64), default=None)
    claims: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When this token's family stops working, however often it is refreshed.
    family_expires_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
