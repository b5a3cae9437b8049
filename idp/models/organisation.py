"""Organisations (from the GIAS register) and people's memberships of them."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.models.base import Base, TimestampMixin, new_uuid, str_enum

if TYPE_CHECKING:
    from idp.models.user import User


class OrganisationType(enum.StrEnum):
    ESTABLISHMENT = "establishment"
    LOCAL_AUTHORITY = "local_authority"
    MULTI_ACADEMY_TRUST = "multi_academy_trust"
    DEPARTMENT = "department"


class OrganisationStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    PROPOSED_TO_OPEN = "proposed_to_open"
    PROPOSED_TO_CLOSE = "proposed_to_close"


class MembershipRole(enum.StrEnum):
    MEMBER = "member"
    APPROVER = "approver"


class Organisation(TimestampMixin, Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public identifier used in claims; the integer id never leaves the database.
    public_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    type: Mapped[OrganisationType] = mapped_column(str_enum(OrganisationType, "organisation_type"))
    name: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[OrganisationStatus] = mapped_column(
        str_enum(OrganisationStatus, "organisation_status"),
        default=OrganisationStatus.OPEN,
    )
    # GIAS identifiers. URN identifies an establishment; la_code identifies a local authority.
    urn: Mapped[str | None] = mapped_column(String(16), unique=True, default=None)
    ukprn: Mapped[str | None] = mapped_column(String(16), index=True, default=None)
    la_code: Mapped[str | None] = mapped_column(String(8), unique=True, default=None)
    group_uid: Mapped[str | None] = mapped_column(String(16), unique=True, default=None)
    establishment_type: Mapped[str | None] = mapped_column(String(120), default=None)
    postcode: Mapped[str | None] = mapped_column(String(16), default=None)
    # Parent links: a school sits under a local authority and possibly a trust.
    local_authority_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True, default=None
    )
    trust_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True, default=None
    )

    local_authority: Mapped[Organisation | None] = relationship(
        remote_side="Organisation.id", foreign_keys=[local_authority_id]
    )
    trust: Mapped[Organisation | None] = relationship(
        remote_side="Organisation.id", foreign_keys=[trust_id]
    )
    memberships: Mapped[list[Membership]] = relationship(back_populates="organisation")

    def __repr__(self) -> str:
        return f"<Organisation {self.type} {self.urn or self.la_code or self.public_id}>"


class Membership(TimestampMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organisation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[MembershipRole] = mapped_column(
        str_enum(MembershipRole, "membership_role"),
        default=MembershipRole.MEMBER,
    )

    user: Mapped[User] = relationship(back_populates="memberships")
    organisation: Mapped[Organisation] = relationship(back_populates="memberships")
