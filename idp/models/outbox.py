"""The durable outbox: every email and back-channel logout is a row here before it is sent.

A worker sends pending rows with retries, so a mail provider or relying-service outage delays
a message but never loses it. Payloads can carry one-time links, so they are stored encrypted.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.models.base import Base, str_enum, utcnow


class OutboxKind(enum.StrEnum):
    EMAIL = "email"
    BACKCHANNEL_LOGOUT = "backchannel_logout"
    # Work that must not run in the web request, e.g. looking up a forgot-password address
    # (doing it in the request would let response timing reveal whether the account exists).
    JOB = "job"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # gave up after the last retry; kept for the audit trail


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OutboxKind] = mapped_column(str_enum(OutboxKind, "outbox_kind"))
    # Who it goes to: an email address, or a relying service's client_id.
    recipient: Mapped[str] = mapped_column(String(320))
    # What it is: a message template name, or the logout event.
    template: Mapped[str] = mapped_column(String(64))
    # The message's data (personalisation, logout token claims), encrypted at rest.
    payload_ciphertext: Mapped[str] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
