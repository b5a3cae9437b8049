"""What a person can use, and could ask for, at each of their organisations ("Your services").

Issue 7: signing in at the provider directly lands on one page listing the services the person
can use, grouped by organisation, each linking to the service's ``start_url`` from the registry,
plus the services they could request. This module works the list out; the page only shows it.

- A service they hold a grant for at an organisation is listed under that organisation with the
  roles they hold there (the same grants that feed the ``roles`` claim, idp.oidc.claims).
- An active ``granted`` service they lack at an organisation is "one you could request" there,
  marked when a request is already waiting (idp.services.access_requests).
- ``open`` services admit every active account, so they are listed once, not per organisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from idp.extensions import db
from idp.models import (
    AccessPolicy,
    AccessRequest,
    MembershipRole,
    Organisation,
    RequestStatus,
    Service,
    ServiceRole,
    ServiceStatus,
    User,
)
from idp.services import access


@dataclass(frozen=True)
class Usable:
    service: Service
    roles: list[ServiceRole]


@dataclass
class OrganisationServices:
    """One organisation's part of the page."""

    organisation: Organisation
    approver: bool
    usable: list[Usable] = field(default_factory=list)
    requestable: list[Service] = field(default_factory=list)
    #: Client ids of the requestable services with a request already waiting.
    requested: set[str] = field(default_factory=set)


@dataclass
class Catalogue:
    organisations: list[OrganisationServices]
    open_services: list[Service]


def _active_services() -> list[Service]:
    return list(
        db.session.scalars(
            select(Service)
            .where(Service.status == ServiceStatus.ACTIVE)
            .options(selectinload(Service.roles))
            .order_by(Service.name, Service.client_id)
        )
    )


def catalogue(user: User) -> Catalogue:
    """The person's services, per organisation by name, services by name."""
    services = _active_services()
    grants = access.grants_of(user)
    pending = {
        (row.organisation_id, row.service_id)
        for row in db.session.execute(
            select(AccessRequest.organisation_id, AccessRequest.service_id).where(
                AccessRequest.user_id == user.id, AccessRequest.status == RequestStatus.PENDING
            )
        )
    }
    groups: list[OrganisationServices] = []
    for membership in access.memberships_of(user):
        org = membership.organisation
        group = OrganisationServices(org, approver=membership.role is MembershipRole.APPROVER)
        held = {g.service_id: g for g in grants if g.organisation_id == org.id}
        for service in services:
            if service.access_policy is not AccessPolicy.GRANTED:
                continue
            if service.id in held:
                roles = sorted(held[service.id].roles, key=lambda role: role.name)
                group.usable.append(Usable(service, roles))
            else:
                group.requestable.append(service)
                if (org.id, service.id) in pending:
                    group.requested.add(service.client_id)
        groups.append(group)
    # Grants for services since disabled are not shown: ``services`` holds active ones only.
    open_services = [s for s in services if s.access_policy is AccessPolicy.OPEN]
    return Catalogue(groups, open_services)
