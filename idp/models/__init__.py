"""The tables. Import from here so every model is registered on the metadata."""

from idp.models.audit import AuditEvent
from idp.models.base import Base
from idp.models.organisation import (
    Membership,
    MembershipRole,
    Organisation,
    OrganisationStatus,
    OrganisationType,
)
from idp.models.service import AccessGrant, Service, ServiceRole, ServiceSecret, ServiceStatus
from idp.models.user import StaffRole, User, UserStatus

__all__ = [
    "AccessGrant",
    "AuditEvent",
    "Base",
    "Membership",
    "MembershipRole",
    "Organisation",
    "OrganisationStatus",
    "OrganisationType",
    "Service",
    "ServiceRole",
    "ServiceSecret",
    "ServiceStatus",
    "StaffRole",
    "User",
    "UserStatus",
]
