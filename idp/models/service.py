"""Relying services (OIDC clients), their roles, and who may use them for which organisation."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.models.base import Base, JSONType, TimestampMixin, str_enum


class ServiceStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class AccessPolicy(enum.StrEnum):
    GRANTED = "granted"
    OPEN = "open"


class Service(TimestampMixin, Base):
    """A registered OIDC client. Redirect URIs are stored verbatim and compared exactly."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    start_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    status: Mapped[ServiceStatus] = mapped_column(
        str_enum(ServiceStatus, "service_status"),
        default=ServiceStatus.ACTIVE,
    )
    redirect_uris: Mapped[list[str]] = mapped_column(JSONType, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSONType, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000), default=None)
    allowed_scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(32), default="client_secret_basic"
    )
    # Public keys for private_key_jwt client authentication, as a JWKS document.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    access_token_lifetime: Mapped[int] = mapped_column(default=600)
    id_token_lifetime: Mapped[int] = mapped_column(default=600)
    refresh_token_lifetime: Mapped[int] = mapped_column(default=86400)
    require_mfa: Mapped[bool] = mapped_column(default=False)
    first_party: Mapped[bool] = mapped_column(default=True)
    # Who may sign in to it: "granted" (only people an approver gave access, with roles) or
    # "open" (anyone with an active account, e.g. a public information service).
    access_policy: Mapped[AccessPolicy] = mapped_column(
        str_enum(AccessPolicy, "access_policy"),
        default=AccessPolicy.GRANTED,
        server_default=AccessPolicy.GRANTED.value,
    )

    secrets: Mapped[list[ServiceSecret]] = relationship(
        back_populates="service", cascade="all, delete-orphan"
    )
    roles: Mapped[list[ServiceRole]] = relationship(
        back_populates="service", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Service {self.client_id}>"


class ServiceSecret(Base):
    """One client secret, stored as an HMAC-SHA-256 keyed hash (never the secret itself).

    A service may hold several at once so that a secret can be rotated without downtime.
    """

    __tablename__ = "service_secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(128), unique=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    service: Mapped[Service] = relationship(back_populates="secrets")


class ServiceRole(Base):
    """A role a service defines, optionally limited to some organisation types."""

    __tablename__ = "service_roles"
    __table_args__ = (UniqueConstraint("service_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    # None: any organisation type may hold it; otherwise a list of OrganisationType values.
    organisation_types: Mapped[list[str] | None] = mapped_column(JSONType, default=None)

    service: Mapped[Service] = relationship(back_populates="roles")


access_grant_roles = Table(
    "access_grant_roles",
    Base.metadata,
    Column(
        "access_grant_id",
        ForeignKey("access_grants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("service_role_id", ForeignKey("service_roles.id", ondelete="CASCADE"), primary_key=True),
)


class AccessGrant(TimestampMixin, Base):
    """Permission for one user to use one service on behalf of one organisation."""

    __tablename__ = "access_grants"
    __table_args__ = (UniqueConstraint("user_id", "organisation_id", "service_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )

    roles: Mapped[list[ServiceRole]] = relationship(secondary=access_grant_roles)
