"""Schools, services and approvers for the approver-pages tests, in the domain's words."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from idp.extensions import db
from idp.models import (
    AccessPolicy,
    MembershipRole,
    Organisation,
    OrganisationType,
    OutboxKind,
    OutboxMessage,
    Service,
    ServiceRole,
    User,
    UserStatus,
)
from idp.services import access, outbox
from idp.services.transaction import transaction
from tests.factories import make_user


def make_org(
    name: str, type_: OrganisationType = OrganisationType.ESTABLISHMENT, **fields: Any
) -> Organisation:
    org = Organisation(name=name, type=type_, **fields)
    db.session.add(org)
    db.session.commit()
    return org


def make_service(
    client_id: str = "pupil-data",
    name: str = "Pupil data",
    policy: AccessPolicy = AccessPolicy.GRANTED,
) -> Service:
    """A service with a role any school may hold and one for local authorities only."""
    service = Service(client_id=client_id, name=name, access_policy=policy)
    service.roles = [
        ServiceRole(code="viewer", name="Viewer"),
        ServiceRole(code="editor", name="Editor"),
        ServiceRole(code="la_admin", name="LA admin", organisation_types=["local_authority"]),
    ]
    db.session.add(service)
    db.session.commit()
    return service


def add_person(
    org: Organisation,
    *,
    approver: bool = False,
    email: str | None = None,
    given_name: str = "Ada",
    family_name: str = "Lovelace",
    status: UserStatus = UserStatus.ACTIVE,
    grants: dict[Service, list[str]] | None = None,
    user: User | None = None,
) -> User:
    """A person in ``org`` (a new one unless ``user`` is given), with access to ``grants``."""
    if user is None:
        user = make_user(
            email=email,
            given_name=given_name,
            family_name=family_name,
            status=status,
            password=None if status is UserStatus.INVITED else "correct horse battery staple river",
        )
    role = MembershipRole.APPROVER if approver else MembershipRole.MEMBER
    with transaction():
        access.add_membership(user, org, role=role, actor="test")
        for service, roles in (grants or {}).items():
            access.set_access(user, org, service, roles, actor="test")
    return user


def queued_emails(to: str) -> list[tuple[str, dict[str, Any]]]:
    """(template, values) of every email queued to ``to``, oldest first."""
    db.session.expire_all()
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.kind == OutboxKind.EMAIL, OutboxMessage.recipient == to)
        .order_by(OutboxMessage.id)
    )
    return [(row.template, outbox.payload_of(row)) for row in rows]


def queued_logouts() -> list[str]:
    """The client ids a back-channel Logout Token is queued for."""
    db.session.expire_all()
    return sorted(
        db.session.scalars(
            select(OutboxMessage.recipient).where(
                OutboxMessage.kind == OutboxKind.BACKCHANNEL_LOGOUT
            )
        )
    )


def roles_of(user: User, org: Organisation, service: Service) -> list[str] | None:
    """The person's role codes for ``service`` at ``org``, or None without access."""
    db.session.expire_all()
    grant = access.grant_for(user, org, service)
    return None if grant is None else sorted(role.code for role in grant.roles)
