"""What a relying service may read and do about people through the service-to-service API.

Issue 7 ("a service-to-service API"); DESIGN §1 (service teams) and §3 (access). The API layer
(:mod:`idp.api`) authenticates the calling service with a client-credentials access token
(RFC 6749 §4.4, RFC 9068) and checks its scope; every rule about *which* people and roles it
may see or change lives here, so no other door can bypass it:

- **A service sees only its own users and only its own roles.** A person is visible to a
  service only through an access grant to that service (user x organisation x service), and
  only at the organisations where they hold one, with only that service's roles there. Anyone
  else, and any id that is not a well-formed one, is :class:`NotFound`: the same answer as an
  unknown id, so a service cannot learn who else has an account (B-series: no enumeration).
  A service whose ``access_policy`` is ``open`` still sees only the people with a grant.
- **A service invites people only to itself**, with only its own roles, each allowed for the
  organisation's type (:func:`idp.services.access.set_access`). It creates the invited account
  (or reuses the existing one, whose names it never changes), a ``member`` membership (never
  changing an existing one: an approver stays an approver) and the grant. Roles the person
  already holds are kept: the API adds access, it never takes any away.
- **Invitations are idempotent**: the same request again changes nothing and sends nothing.
  Emails: a new account, or an invited one whose access changed, gets a fresh invitation link
  (:func:`idp.services.invitations.invite`); an active account whose access changed gets a
  ``service_access_granted`` message. A deactivated account is refused (only the helpdesk
  reactivates people).
- **Audit** (K03): every invitation call is recorded as ``api.invitation`` with the service's
  client_id as actor; the account, membership and grant changes it makes are audited by the
  services that make them, with the same actor.

Functions add and flush; the caller commits (:func:`idp.services.transaction.transaction`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from idp.extensions import db
from idp.models import (
    AccessGrant,
    Organisation,
    OrganisationType,
    Service,
    User,
    UserStatus,
)
from idp.services import access, audit, invitations, outbox, users
from idp.services.links import public_url

#: Subjects and organisation ids are UUIDs (``idp.models.base.new_uuid``); anything else is
#: unknown without a query (and never reaches the database with odd bytes in it).
PUBLIC_ID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_PER_PAGE: Final = 100
DEFAULT_PER_PAGE: Final = 50
MAX_PAGE: Final = 10_000
MAX_ROLES: Final = 20


class NotFound(LookupError):
    """No such person or organisation, as far as this service may know."""


class InvalidInvitation(ValueError):
    """The invitation breaks a rule; ``problems`` maps a request field to a plain message."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.problems))


class AccountDeactivated(ValueError):
    """The person's account is deactivated: only the helpdesk can reactivate it."""


@dataclass(frozen=True)
class RoleView:
    code: str
    name: str


@dataclass(frozen=True)
class OrganisationView:
    """The same members as the ``organisation`` claim (idp.oidc.claims), nulls kept."""

    id: str
    name: str
    type: str
    urn: str | None
    ukprn: str | None
    la_code: str | None


@dataclass(frozen=True)
class OrganisationAccess:
    organisation: OrganisationView
    roles: list[RoleView]

    def as_json(self) -> dict[str, Any]:
        return {**self.organisation.__dict__, "roles": [r.__dict__ for r in self.roles]}


@dataclass(frozen=True)
class PersonView:
    sub: str
    name: str
    given_name: str
    family_name: str
    email: str
    status: str

    @classmethod
    def of(cls, user: User) -> PersonView:
        return cls(
            user.sub, user.name, user.given_name, user.family_name, user.email, str(user.status)
        )


@dataclass(frozen=True)
class UserView:
    person: PersonView
    organisations: list[OrganisationAccess]

    def as_json(self) -> dict[str, Any]:
        return {
            **self.person.__dict__,
            "organisations": [o.as_json() for o in self.organisations],
        }


@dataclass(frozen=True)
class MemberView:
    person: PersonView
    roles: list[RoleView]

    def as_json(self) -> dict[str, Any]:
        return {**self.person.__dict__, "roles": [r.__dict__ for r in self.roles]}


@dataclass(frozen=True)
class MemberPage:
    organisation: OrganisationView
    users: list[MemberView]
    page: int
    per_page: int
    total: int

    def as_json(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation.__dict__,
            "users": [u.as_json() for u in self.users],
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
        }


@dataclass(frozen=True)
class InvitationOutcome:
    user: UserView
    account_created: bool
    changed: bool
    #: The email sent: "invitation", "service_access_granted" or None.
    email: str | None = field(default=None)


# -- reading ---------------------------------------------------------------------------------


def organisation_view(org: Organisation) -> OrganisationView:
    """``la_code`` is an authority's own, or a school's authority's (as in the claims)."""
    if org.type is OrganisationType.LOCAL_AUTHORITY:
        la_code = org.la_code
    elif org.local_authority is not None:
        la_code = org.local_authority.la_code
    else:
        la_code = None
    return OrganisationView(org.public_id, org.name, str(org.type), org.urn, org.ukprn, la_code)


def _roles(grant: AccessGrant) -> list[RoleView]:
    return [RoleView(r.code, r.name) for r in sorted(grant.roles, key=lambda r: r.code)]


def _find_organisation(public_id: str) -> Organisation:
    if not PUBLIC_ID.fullmatch(public_id):
        raise NotFound(public_id)
    org = db.session.scalar(
        select(Organisation)
        .where(Organisation.public_id == public_id)
        .options(selectinload(Organisation.local_authority))
    )
    if org is None:
        raise NotFound(public_id)
    return org


def _user_view(service: Service, user: User) -> UserView:
    rows = db.session.execute(
        select(AccessGrant, Organisation)
        .join(Organisation, Organisation.id == AccessGrant.organisation_id)
        .where(AccessGrant.user_id == user.id, AccessGrant.service_id == service.id)
        .options(selectinload(AccessGrant.roles), selectinload(Organisation.local_authority))
        .order_by(Organisation.name, Organisation.id)
    ).all()
    return UserView(
        PersonView.of(user),
        [OrganisationAccess(organisation_view(org), _roles(grant)) for grant, org in rows],
    )


def get_user(service: Service, sub: str) -> UserView:
    """The person ``sub`` as ``service`` may see them, or :class:`NotFound`."""
    user = users.find_by_sub(sub) if PUBLIC_ID.fullmatch(sub) else None
    if user is None:
        raise NotFound(sub)
    view = _user_view(service, user)
    if not view.organisations:
        raise NotFound(sub)  # not one of this service's people: the same as unknown
    return view


def organisation_users(
    service: Service, organisation_id: str, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE
) -> MemberPage:
    """The people with access to ``service`` at the organisation, by family then given name."""
    if not (1 <= page <= MAX_PAGE and 1 <= per_page <= MAX_PER_PAGE):
        raise ValueError("page or per_page out of range")  # the API layer checks first
    org = _find_organisation(organisation_id)
    where = (AccessGrant.service_id == service.id, AccessGrant.organisation_id == org.id)
    total = int(db.session.scalar(select(func.count()).select_from(AccessGrant).where(*where)) or 0)
    rows = db.session.execute(
        select(AccessGrant, User)
        .join(User, User.id == AccessGrant.user_id)
        .where(*where)
        .options(selectinload(AccessGrant.roles))
        .order_by(User.family_name, User.given_name, User.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    members = [MemberView(PersonView.of(user), _roles(grant)) for grant, user in rows]
    return MemberPage(organisation_view(org), members, page, per_page, total)


# -- inviting --------------------------------------------------------------------------------


def _check_person(email: str) -> tuple[str | None, list[tuple[str, str]]]:
    try:
        canonical = users.canonical_email(email)
        users.check_personal_email(canonical)
    except (users.InvalidEmail, users.RoleMailboxRefused) as error:
        return None, [("email", str(error))]
    return canonical, []


def invite(
    service: Service,
    *,
    email: str,
    given_name: str,
    family_name: str,
    organisation_id: str,
    roles: Sequence[str] = (),
) -> InvitationOutcome:
    """Invite a person to ``service`` at an organisation (see the module docstring)."""
    actor = service.client_id
    canonical, problems = _check_person(email)
    wanted = set(roles)
    by_code = {role.code: role for role in service.roles}
    unknown = sorted(wanted - by_code.keys())
    if unknown:
        problems.append(("roles", f"{service.name} has no role called {', '.join(unknown)}"))
    if len(wanted) > MAX_ROLES:
        problems.append(("roles", f"Give at most {MAX_ROLES} roles"))
    if problems or canonical is None:
        raise InvalidInvitation(problems)
    org = _find_organisation(organisation_id)
    allowed = {role.code for role in access.roles_allowed(service, org)}
    refused = sorted(wanted - allowed)
    if refused:
        names = ", ".join(by_code[code].name for code in refused)
        raise InvalidInvitation(
            [("roles", f"{org.name} cannot hold the {service.name} role {names}")]
        )

    # An account created by someone else since the look-up is treated as found (no 500).
    user, created = users.find_or_create(canonical, given_name, family_name, actor=actor)
    if user.status is UserStatus.DEACTIVATED:
        raise AccountDeactivated(user.sub)
    if access.membership(user, org) is None:
        access.add_membership(user, org, actor=actor, reason="Invited by a service")
    grant = access.grant_for(user, org, service)
    held = {role.code for role in grant.roles} if grant is not None else set()
    changed = grant is None or not wanted <= held
    if changed:
        access.set_access(
            user, org, service, sorted(held | wanted), actor=actor, reason="Invited by a service"
        )

    sent: str | None = None
    if created or (changed and user.status is UserStatus.INVITED):
        invitations.invite(user, actor=actor, organisation_name=org.name, inviter_name=service.name)
        sent = "invitation"
    elif changed:
        granted = access.grant_for(user, org, service)
        role_names = sorted(r.name for r in granted.roles) if granted is not None else []
        outbox.enqueue_email(
            user.email,
            "service_access_granted",
            service_name=service.name,
            organisation_name=org.name,
            link=service.start_url or public_url("pages.start"),
            roles=", ".join(role_names) or None,
        )
        sent = "service_access_granted"
    audit.record(
        "api.invitation",
        actor=actor,
        target=user.sub,
        target_type="user",
        organisation=org.public_id,
        service=service.client_id,
        roles=sorted(wanted),
        account_created=created,
        changed=changed,
        message=sent,
    )
    return InvitationOutcome(_user_view(service, user), created, changed, sent)
