"""Organisations, memberships and grants for the issue 7 tests, in the domain's words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from idp.extensions import db
from idp.models import MembershipRole, Organisation, OrganisationType, Service, User
from idp.models.service import AccessPolicy, ServiceRole
from idp.services import access
from idp.services.clients import get_service
from idp.services.transaction import transaction
from tests.factories import make_user


def school(name: str, urn: str, **fields: Any) -> Organisation:
    org = Organisation(name=name, type=OrganisationType.ESTABLISHMENT, urn=urn, **fields)
    db.session.add(org)
    db.session.commit()
    return org


def pupil_data(
    *roles: ServiceRole, policy: AccessPolicy = AccessPolicy.GRANTED, **fields: Any
) -> Service:
    """The "Pupil data" service (``pupil-data``), committed, with ``roles``: by default a
    viewer role any organisation may hold and an LA-admin role for local authorities only."""
    service = Service(client_id="pupil-data", name="Pupil data", access_policy=policy, **fields)
    service.roles = list(roles) or [
        ServiceRole(code="viewer", name="Viewer"),
        ServiceRole(code="la_admin", name="LA admin", organisation_types=["local_authority"]),
    ]
    db.session.add(service)
    db.session.commit()
    return service


class TwoSchools(NamedTuple):
    """Two schools, each with an approver; Ada is a plain member of Hill Top."""

    hilltop: Organisation
    riverside: Organisation
    ada: User
    sam: User  # approver at Hill Top
    rita: User  # approver at Riverside


def two_schools() -> TwoSchools:
    """Hill Top Primary (Ada, member; Sam, approver) and Riverside Academy (Rita, approver)."""
    hilltop = school("Hill Top Primary", "100001")
    riverside = school("Riverside Academy", "100002")
    ada = make_user(email="ada@hilltop.example")
    sam = make_user(email="sam@hilltop.example", given_name="Sam", family_name="Patel")
    rita = make_user(email="rita@riverside.example", given_name="Rita", family_name="Roe")
    member(ada, hilltop)
    member(sam, hilltop, approver=True)
    member(rita, riverside, approver=True)
    return TwoSchools(hilltop, riverside, ada, sam, rita)


def member(user: User, org: Organisation, *, approver: bool = False, actor: str = "test") -> None:
    role = MembershipRole.APPROVER if approver else MembershipRole.MEMBER
    with transaction():
        access.add_membership(user, org, role=role, actor=actor)


def grant(user: User, org: Organisation, service: Service | str, roles: Sequence[str] = ()) -> None:
    """Membership of ``org`` (if missing) and access to ``service`` there with ``roles``."""
    if isinstance(service, str):
        service = get_service(service)
    with transaction():
        if access.membership(user, org) is None:
            access.add_membership(user, org, actor="test")
        access.set_access(user, org, service, roles, actor="test")
