"""People who sign in: school and local-authority staff, approvers and helpdesk staff."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.models.base import Base, TimestampMixin, new_uuid, str_enum

if TYPE_CHECKING:
    from idp.models.organisation import Membership


class UserStatus(enum.StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class StaffRole(enum.StrEnum):
    """Roles inside Secure Access itself (not roles in a relying service)."""

    HELPDESK = "helpdesk"
    HELPDESK_ADMIN = "helpdesk_admin"


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The OIDC subject: opaque, stable, never reassigned and never the email (OIDC Core §5.7).
    sub: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    # Stored canonical (trimmed, lower-case) so uniqueness is case-insensitive on every back end.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[UserStatus] = mapped_column(
        str_enum(UserStatus, "user_status"),
        default=UserStatus.INVITED,
    )
    staff_role: Mapped[StaffRole | None] = mapped_column(
        str_enum(StaffRole, "staff_role"), default=None
    )
    # argon2id PHC string; None until the person sets a password from their invitation.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set when a password is known to be compromised: the next sign-in must change it (A05).
    password_compromised: Mapped[bool] = mapped_column(default=False)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(default=None)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}".strip()

    def __repr__(self) -> str:
        return f"<User {self.sub} {self.status}>"
