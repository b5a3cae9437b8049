"""Signing keys for ID tokens, access tokens and logout tokens.

Every key is a list entry with a state: ``next`` keys are published in the JWKS before they
sign, ``active`` keys sign, ``retired`` keys stay published until every token they signed has
expired (OIDC Core §10.1.1). Private parts are encrypted under the key-encryption key.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.models.base import Base, JSONType, str_enum, utcnow


class KeyState(enum.StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"


class SigningKey(Base):
    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[KeyState] = mapped_column(str_enum(KeyState, "key_state"), index=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONType)
    private_key_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)
    # After this, no token it signed can still be valid, so it may leave the JWKS.
    unpublish_after: Mapped[datetime | None] = mapped_column(default=None)
