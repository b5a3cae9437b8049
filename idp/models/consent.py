"""What a person has allowed a service that is not first-party to know about them (F11).

One row per person and service, holding every scope they have allowed it so far (a later
consent to more scopes widens the row, it never narrows it). Withdrawing deletes the row; the
audit log keeps the history (``consent.granted``, ``consent.withdrawn``). The rules live in
:mod:`idp.services.consents`.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.models.base import Base, JSONType, TimestampMixin
from idp.models.service import Service


class Consent(TimestampMixin, Base):
    """``user`` allowed ``service`` the scopes in ``scopes`` (``created_at``: first allowed)."""

    __tablename__ = "consents"
    # One row per person and service: its unique index also serves lookups by person.
    __table_args__ = (UniqueConstraint("user_id", "service_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    #: The scope values allowed, sorted (``openid``, ``profile``, ``offline_access``, ...).
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)

    service: Mapped[Service] = relationship()
