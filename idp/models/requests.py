"""Requests that wait for a second person: access to a service, and a helpdesk MFA reset.

An :class:`AccessRequest` is made by a signed-in person who lacks access to a service at one of
their organisations; the organisation's approvers decide it, and one left undecided for
``access_request_escalation_days`` is escalated to the helpdesk (issue 7).

An :class:`MfaResetRequest` records a helpdesk agent's identity check before a user's second
factors are removed; for helpdesk and approver accounts a *different* helpdesk admin must
approve it before it takes effect (four eyes; security-requirements K02).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from idp.models.base import Base, JSONType, TimestampMixin, new_uuid, str_enum


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class AccessRequest(TimestampMixin, Base):
    """A person asks their organisation's approvers for access to one service."""

    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_access_requests_organisation_id_status", "organisation_id", "status"),
        Index("ix_access_requests_user_id_status", "user_id", "status"),
        # One pending request per person, organisation and service, even when two arrive at
        # once (the service checks first for a friendly message; this closes the race).
        Index(
            "uq_access_requests_one_pending",
            "user_id",
            "organisation_id",
            "service_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    #: Role codes the person asked for (the approver decides which to grant).
    requested_roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[RequestStatus] = mapped_column(
        str_enum(RequestStatus, "request_status"), default=RequestStatus.PENDING
    )
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_note: Mapped[str | None] = mapped_column(Text, default=None)
    #: When it was passed to the helpdesk for being left undecided too long.
    escalated_at: Mapped[datetime | None] = mapped_column(default=None)


class MfaResetRequest(TimestampMixin, Base):
    """A helpdesk MFA reset: who asked, how the caller's identity was checked, who approved."""

    __tablename__ = "mfa_reset_requests"
    __table_args__ = (Index("ix_mfa_reset_requests_status_created_at", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: How the caller was verified, e.g. "called back on the school's number from GIAS".
    identity_check: Mapped[str] = mapped_column(Text)
    #: The reason or ticket reference the agent gave.
    reason: Mapped[str] = mapped_column(Text)
    #: Whether a second helpdesk admin must approve (helpdesk and approver accounts).
    needs_approval: Mapped[bool] = mapped_column(default=False)
    status: Mapped[RequestStatus] = mapped_column(
        str_enum(RequestStatus, "request_status"), default=RequestStatus.PENDING
    )
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decision_note: Mapped[str | None] = mapped_column(Text, default=None)
