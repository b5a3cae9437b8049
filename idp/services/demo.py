"""Demo data for ``make run``: organisations, people and the six departmental services.

Every demo service is ``granted`` (issue 7): people use it only where an approver gave them
access. Alex Jones belongs to two schools with different Collect roles (the choose-organisation
journey) and has no access to Get Information about Schools (the no-access and request-access
journey).

Safe to run again: everything is looked up before it is created. Development only: the
demo password and the demo services' client secrets are published in the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from idp.extensions import db
from idp.models import (
    AccessGrant,
    Membership,
    MembershipRole,
    Organisation,
    OrganisationType,
    Service,
    ServiceRole,
    StaffRole,
    User,
    UserStatus,
)
from idp.services import clients, invitations, users
from idp.services.account_passwords import set_password

DEMO_PASSWORD = "paper lantern orchard ribbon"  # noqa: S105 (published demo credential)


@dataclass(frozen=True)
class DemoService:
    client_id: str
    name: str
    port: int
    description: str
    roles: tuple[tuple[str, str, tuple[str, ...] | None], ...]
    require_mfa: bool = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret(self) -> str:
        return f"insecure-demo-client-secret-for-{self.client_id}"


SERVICES = (
    DemoService(
        "collect",
        "Collect",
        5101,
        "Send statutory data returns to the Department for Education.",
        (("submitter", "Data submitter", None), ("approver", "Return approver", None)),
    ),
    DemoService(
        "school-to-school",
        "School-to-School",
        5102,
        "Send pupil records securely to another school.",
        (("s2s_user", "School-to-School user", None),),
    ),
    DemoService(
        "key-to-success",
        "Key to Success",
        5103,
        "See pupils' unique pupil numbers and attainment records.",
        (("viewer", "Viewer", None),),
    ),
    DemoService(
        "analyse-school-performance",
        "Analyse School Performance",
        5104,
        "Analyse your school's performance data.",
        (
            ("asp_viewer", "Viewer", None),
            ("la_analyst", "Local authority analyst", ("local_authority",)),
        ),
    ),
    DemoService(
        "teacher-pensions",
        "Teacher Pensions",
        5105,
        "Manage teachers' pension records as an employer.",
        (("tp_admin", "Employer administrator", None),),
        require_mfa=True,
    ),
    DemoService(
        "get-information-about-schools",
        "Get Information about Schools",
        5106,
        "Keep your school's details in the register up to date.",
        (("gias_editor", "Establishment editor", None),),
    ),
)

# (email, given, family, status, staff role, [(org key, role, {service: [roles]})])
PEOPLE: tuple[
    tuple[
        str,
        str,
        str,
        UserStatus,
        StaffRole | None,
        list[tuple[str, MembershipRole, dict[str, list[str]]]],
    ],
    ...,
] = (
    (
        "sam.patel@hilltop-primary.example",
        "Sam",
        "Patel",
        UserStatus.ACTIVE,
        None,
        [
            (
                "hilltop",
                MembershipRole.APPROVER,
                {
                    "collect": ["approver"],
                    "teacher-pensions": ["tp_admin"],
                    "get-information-about-schools": ["gias_editor"],
                },
            )
        ],
    ),
    (
        "alex.jones@hilltop-primary.example",
        "Alex",
        "Jones",
        UserStatus.ACTIVE,
        None,
        [
            (
                "hilltop",
                MembershipRole.MEMBER,
                {
                    "collect": ["submitter"],
                    "school-to-school": ["s2s_user"],
                    "analyse-school-performance": ["asp_viewer"],
                    "key-to-success": ["viewer"],
                },
            ),
            # Two schools with different roles: Collect asks Alex which one (issue 7), and
            # Get Information about Schools, which Alex has nowhere, shows the no-access page.
            ("riverside", MembershipRole.MEMBER, {"collect": ["approver"]}),
        ],
    ),
    (
        "lee.wong@camden-council.example",
        "Lee",
        "Wong",
        UserStatus.ACTIVE,
        None,
        [("camden", MembershipRole.APPROVER, {"analyse-school-performance": ["la_analyst"]})],
    ),
    (
        "hana.okafor@education.example",
        "Hana",
        "Okafor",
        UserStatus.ACTIVE,
        StaffRole.HELPDESK_ADMIN,
        [("dfe", MembershipRole.MEMBER, {})],
    ),
    (
        "ivy.chen@hilltop-primary.example",
        "Ivy",
        "Chen",
        UserStatus.INVITED,
        None,
        [("hilltop", MembershipRole.MEMBER, {"collect": ["submitter"]})],
    ),
)


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def _organisations(report: SeedReport) -> dict[str, Organisation]:
    def get_or_create(key: str, lookup: dict[str, str], **values: object) -> Organisation:
        column, value = next(iter(lookup.items()))
        found = db.session.scalar(
            select(Organisation).where(getattr(Organisation, column) == value)
        )
        if found:
            report.existing.append(f"organisation {found.name}")
            return found
        organisation = Organisation(**{column: value}, **values)
        db.session.add(organisation)
        db.session.flush()
        report.created.append(f"organisation {organisation.name}")
        return organisation

    camden = get_or_create(
        "camden", {"la_code": "202"}, name="Camden", type=OrganisationType.LOCAL_AUTHORITY
    )
    trust = get_or_create(
        "trust",
        {"group_uid": "TR0001"},
        name="Bright Futures Academy Trust",
        type=OrganisationType.MULTI_ACADEMY_TRUST,
    )
    dfe = get_or_create(
        "dfe",
        {"ukprn": "10099999"},
        name="Department for Education",
        type=OrganisationType.DEPARTMENT,
    )
    hilltop = get_or_create(
        "hilltop",
        {"urn": "100000"},
        name="Hill Top Primary School",
        type=OrganisationType.ESTABLISHMENT,
        ukprn="10012345",
        establishment_type="Community school",
        postcode="NW1 1AA",
        local_authority_id=camden.id,
    )
    riverside = get_or_create(
        "riverside",
        {"urn": "100001"},
        name="Riverside Academy",
        type=OrganisationType.ESTABLISHMENT,
        ukprn="10012346",
        establishment_type="Academy converter",
        postcode="NW5 2BB",
        local_authority_id=camden.id,
        trust_id=trust.id,
    )
    return {
        "camden": camden,
        "trust": trust,
        "dfe": dfe,
        "hilltop": hilltop,
        "riverside": riverside,
    }


def _services(report: SeedReport) -> dict[str, Service]:
    found: dict[str, Service] = {}
    for demo in SERVICES:
        service = db.session.scalar(select(Service).where(Service.client_id == demo.client_id))
        if service is None:
            service, _ = clients.register_service(
                demo.client_id,
                demo.name,
                description=demo.description,
                start_url=demo.base + "/",
                redirect_uris=[demo.base + "/auth/callback"],
                post_logout_redirect_uris=[demo.base + "/"],
                backchannel_logout_uri=demo.base + "/auth/backchannel-logout",
                allowed_scopes=[
                    "openid",
                    "profile",
                    "email",
                    "organisation",
                    "roles",
                    "offline_access",
                ],
                grant_types=["authorization_code", "refresh_token"],
                require_mfa=demo.require_mfa,
                roles=[
                    {
                        "code": code,
                        "name": name,
                        "organisation_types": list(types) if types else None,
                    }
                    for code, name, types in demo.roles
                ],
                secret=demo.secret,
                actor="seed-demo",
            )
            report.created.append(f"service {demo.name}")
        else:
            report.existing.append(f"service {demo.name}")
        found[demo.client_id] = service
    return found


def seed(report: SeedReport | None = None) -> tuple[SeedReport, dict[str, str]]:
    """Create whatever demo data is missing. Returns the report and invitation links."""
    report = report or SeedReport()
    organisations = _organisations(report)
    services = _services(report)
    links: dict[str, str] = {}
    for email, given, family, status, staff_role, memberships in PEOPLE:
        user = db.session.scalar(select(User).where(User.email == email))
        if user is not None:
            report.existing.append(f"user {email}")
            continue
        user = users.create_user(
            email, given, family, actor="seed-demo", staff_role=staff_role, status=status
        )
        if status is UserStatus.ACTIVE:
            set_password(user, DEMO_PASSWORD)
        for org_key, role, access in memberships:
            organisation = organisations[org_key]
            db.session.add(Membership(user_id=user.id, organisation_id=organisation.id, role=role))
            for client_id, role_codes in access.items():
                service = services[client_id]
                grant = AccessGrant(
                    user_id=user.id, organisation_id=organisation.id, service_id=service.id
                )
                grant.roles = list(
                    db.session.scalars(
                        select(ServiceRole).where(
                            ServiceRole.service_id == service.id, ServiceRole.code.in_(role_codes)
                        )
                    )
                )
                db.session.add(grant)
        if status is UserStatus.INVITED:
            invitations.invite(user, actor="seed-demo", organisation_name="Hill Top Primary School")
            links[email] = "(see the invitation email in the development outbox)"
        report.created.append(f"user {email}")
    db.session.flush()
    return report, links
