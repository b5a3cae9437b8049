"""The tables. Import from here so every model is registered on the metadata."""

from idp.models.account_token import AccountToken, TokenPurpose
from idp.models.audit import AuditEvent
from idp.models.base import Base
from idp.models.consent import Consent
from idp.models.keys import KeyState, SigningKey
from idp.models.mfa import RecoveryCode, TotpCredential, WebAuthnCredential
from idp.models.organisation import (
    Membership,
    MembershipRole,
    Organisation,
    OrganisationStatus,
    OrganisationType,
)
from idp.models.outbox import OutboxKind, OutboxMessage, OutboxStatus
from idp.models.requests import AccessRequest, MfaResetRequest, RequestStatus
from idp.models.search import search_key, text_key  # also declares the search indexes
from idp.models.service import (
    AccessGrant,
    AccessPolicy,
    Service,
    ServiceRole,
    ServiceSecret,
    ServiceStatus,
)
from idp.models.tokens import RefreshToken
from idp.models.user import StaffRole, User, UserStatus

__all__ = [
    "AccessGrant",
    "AccessPolicy",
    "AccessRequest",
    "AccountToken",
    "AuditEvent",
    "Base",
    "Consent",
    "KeyState",
    "Membership",
    "MembershipRole",
    "MfaResetRequest",
    "Organisation",
    "OrganisationStatus",
    "OrganisationType",
    "OutboxKind",
    "OutboxMessage",
    "OutboxStatus",
    "RecoveryCode",
    "RefreshToken",
    "RequestStatus",
    "Service",
    "ServiceRole",
    "ServiceSecret",
    "ServiceStatus",
    "SigningKey",
    "StaffRole",
    "TokenPurpose",
    "TotpCredential",
    "User",
    "UserStatus",
    "WebAuthnCredential",
    "search_key",
    "text_key",
]
