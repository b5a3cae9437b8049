"""What the helpdesk console shows about one person or one organisation (issue 8, K02, D07).

Everything here is read-only. The person's page answers the questions a caller's problem
raises: is the account active, where do they work and with what access, which second factors
do they have (type and name only: never a secret, a public key or a code hash; D07), are they
locked out (the throttle's counters, B07), when did they last sign in, which browsers are
signed in (E06), and what happened to the account lately (the audit trail, by or about them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, select

from idp.extensions import db
from idp.models import (
    AccessGrant,
    AccessRequest,
    AuditEvent,
    Membership,
    MembershipRole,
    MfaResetRequest,
    Organisation,
    RecoveryCode,
    RequestStatus,
    Service,
    TotpCredential,
    User,
    WebAuthnCredential,
)
from idp.services.sso_sessions import SsoSession, get_sso_sessions
from idp.services.throttle import KindState, account_key_for, get_throttle
from idp.services.users import find_by_sub

AUDIT_TRAIL: Final = 50
ORGANISATION_PEOPLE: Final = 200


@dataclass(frozen=True)
class ServiceAccess:
    service: str
    roles: list[str]


@dataclass(frozen=True)
class OrganisationRole:
    public_id: str
    name: str
    urn: str | None
    approver: bool
    access: list[ServiceAccess]


@dataclass(frozen=True)
class SecondFactor:
    """One enrolled method: its kind and the name the person gave it. Nothing secret."""

    kind: str
    name: str
    added_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class PersonDetails:
    user: User
    organisations: list[OrganisationRole]
    factors: list[SecondFactor]
    recovery_codes_left: int
    locks: dict[str, KindState]
    sessions: list[SsoSession]
    audit: list[AuditEvent]

    @property
    def locked(self) -> bool:
        return any(state.locked for state in self.locks.values())


@dataclass(frozen=True)
class OrganisationDetails:
    organisation: Organisation
    approvers: list[User]
    people: list[tuple[User, bool]]  # (person, is approver), the first ORGANISATION_PEOPLE
    people_count: int


@dataclass(frozen=True)
class PendingWork:
    mfa_resets_awaiting_approval: int
    access_requests_escalated: int


def person(sub: str) -> PersonDetails | None:
    """Everything the person's page shows, or None if there is no such person."""
    user = find_by_sub(sub)
    if user is None:
        return None
    return PersonDetails(
        user=user,
        organisations=_organisations_of(user),
        factors=_factors_of(user),
        recovery_codes_left=db.session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0,
        locks=get_throttle().lock_state(account_key_for(user.email, sub=user.sub)),
        sessions=get_sso_sessions().list_for_user(user.sub),
        audit=audit_trail(user.sub),
    )


def _organisations_of(user: User) -> list[OrganisationRole]:
    grants: dict[int, list[ServiceAccess]] = {}
    for grant, service_name in db.session.execute(
        select(AccessGrant, Service.name)
        .join(Service, Service.id == AccessGrant.service_id)
        .where(AccessGrant.user_id == user.id)
        .order_by(Service.name)
    ):
        roles = sorted(role.name for role in grant.roles)
        grants.setdefault(grant.organisation_id, []).append(ServiceAccess(service_name, roles))
    rows = db.session.execute(
        select(Membership, Organisation)
        .join(Organisation, Organisation.id == Membership.organisation_id)
        .where(Membership.user_id == user.id)
        .order_by(Organisation.name)
    )
    return [
        OrganisationRole(
            public_id=organisation.public_id,
            name=organisation.name,
            urn=organisation.urn,
            approver=membership.role is MembershipRole.APPROVER,
            access=grants.get(organisation.id, []),
        )
        for membership, organisation in rows
    ]


def _factors_of(user: User) -> list[SecondFactor]:
    factors = [
        SecondFactor("Authenticator app", t.name, t.created_at, t.last_used_at)
        for t in db.session.scalars(
            select(TotpCredential)
            .where(TotpCredential.user_id == user.id, TotpCredential.confirmed_at.is_not(None))
            .order_by(TotpCredential.created_at)
        )
    ]
    factors += [
        SecondFactor(
            "Passkey" if w.discoverable else "Security key", w.name, w.created_at, w.last_used_at
        )
        for w in db.session.scalars(
            select(WebAuthnCredential)
            .where(WebAuthnCredential.user_id == user.id)
            .order_by(WebAuthnCredential.created_at)
        )
    ]
    return factors


def audit_trail(sub: str, limit: int = AUDIT_TRAIL) -> list[AuditEvent]:
    """The newest ``limit`` events done by or to ``sub``, newest first.

    Two queries, one per index (actor, occurred_at) and (target, occurred_at), merged: an OR
    across both columns would make the database read every event of a busy account.
    """
    by = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.actor_id == sub)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    about = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_id == sub)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    events = {e.id: e for e in [*by, *about]}
    newest = sorted(events.values(), key=lambda e: (e.occurred_at, e.id), reverse=True)
    return newest[:limit]


def organisation(public_id: str) -> OrganisationDetails | None:
    """An organisation's page: its details, approvers (flagged when none) and people."""
    found = db.session.scalar(select(Organisation).where(Organisation.public_id == public_id))
    if found is None:
        return None
    base = (
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organisation_id == found.id)
    )
    approvers = list(
        db.session.scalars(
            base.with_only_columns(User)
            .where(Membership.role == MembershipRole.APPROVER)
            .order_by(User.family_name, User.given_name, User.id)
        )
    )
    people = [
        (user, role is MembershipRole.APPROVER)
        for user, role in db.session.execute(
            base.order_by(User.family_name, User.given_name, User.id).limit(ORGANISATION_PEOPLE)
        )
    ]
    count = db.session.scalar(
        select(func.count()).select_from(Membership).where(Membership.organisation_id == found.id)
    )
    return OrganisationDetails(
        organisation=found, approvers=approvers, people=people, people_count=count or 0
    )


def pending_work() -> PendingWork:
    """Counts for the console's front page; each is one indexed count."""
    resets = db.session.scalar(
        select(func.count())
        .select_from(MfaResetRequest)
        .where(
            MfaResetRequest.status == RequestStatus.PENDING,
            MfaResetRequest.needs_approval.is_(True),
        )
    )
    escalated = db.session.scalar(
        select(func.count())
        .select_from(AccessRequest)
        .where(
            AccessRequest.status == RequestStatus.PENDING,
            AccessRequest.escalated_at.is_not(None),
        )
    )
    return PendingWork(
        mfa_resets_awaiting_approval=resets or 0, access_requests_escalated=escalated or 0
    )
