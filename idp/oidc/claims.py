"""Claims about the signed-in person, per granted scope (OpenID Connect Core 1.0 §5.1, §5.4).

Which scope releases which claims (DESIGN §5; security-requirements H02, H05 Also):

==============  =========================================================================
``openid``      ``sub``: the user's opaque, stable UUID (OIDC Core §5.7: never the email)
``profile``     ``name``, ``given_name``, ``family_name``
``email``       ``email``, ``email_verified`` (always true: every address was proven by a
                link we emailed to it, at invitation or at email change)
``organisation`` ``organisation`` (the chosen one) and ``organisations`` (every membership)
``roles``       ``roles``: codes of *this* service's roles the user holds at the chosen
                organisation (from :class:`~idp.models.service.AccessGrant`)
==============  =========================================================================

An organisation is ``{"id", "name", "type", "urn", "ukprn", "la_code"}`` where ``id`` is its
public UUID (the integer key never leaves the database) and ``la_code`` is the local
authority's code: an authority's own, or a school's authority's. Members with no value are
left out, as OIDC Core §5.3.2 asks for claims.

The chosen organisation is picked per authorization request (issue 7; the choose-organisation
step in :mod:`idp.oidc.endpoints` and :mod:`idp.oidc.choose_organisation`) and travels in the
code, the access token and the refresh token as ``organisation_id``. A user with exactly one
membership is not asked: that one is chosen. A user with several who was not asked (the request
had neither ``organisation`` nor ``roles``) has none: no ``organisation`` claim, and ``roles``
is empty. A chosen organisation the user has since left is not released. Claims are read from
the database each time they are issued, so a change of access or roles takes effect at the next
refresh or sign-in.

Scope values we do not know are ignored (OIDC Core §3.1.2.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from idp.extensions import db
from idp.models import AccessGrant, Membership, Organisation, OrganisationType, Service, User

SCOPE_CLAIMS: Final[dict[str, tuple[str, ...]]] = {
    "openid": ("sub",),
    "profile": ("name", "given_name", "family_name"),
    "email": ("email", "email_verified"),
    "organisation": ("organisation", "organisations"),
    "roles": ("roles",),
}


def organisation_claim(org: Organisation) -> dict[str, Any]:
    """The JSON form of one organisation."""
    if org.type is OrganisationType.LOCAL_AUTHORITY:
        la_code = org.la_code
    elif org.local_authority is not None:
        la_code = org.local_authority.la_code
    else:
        la_code = None
    value: dict[str, Any] = {
        "id": org.public_id,
        "name": org.name,
        "type": str(org.type),
        "urn": org.urn,
        "ukprn": org.ukprn,
        "la_code": la_code,
    }
    return {k: v for k, v in value.items() if v is not None}


def _memberships(user: User) -> list[Organisation]:
    rows = db.session.scalars(
        select(Organisation)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.user_id == user.id)
        .options(selectinload(Organisation.local_authority))
        .order_by(Organisation.name, Organisation.id)
    ).all()
    return list(rows)


def chosen_organisation(
    user: User, chosen_id: str | None, memberships: list[Organisation] | None = None
) -> Organisation | None:
    """The organisation the user acts for: the chosen one while still a member, else the only."""
    orgs = _memberships(user) if memberships is None else memberships
    if chosen_id is not None:
        return next((o for o in orgs if o.public_id == chosen_id), None)
    return orgs[0] if len(orgs) == 1 else None


def role_codes(user: User, organisation: Organisation | None, service: Service) -> list[str]:
    """Codes of ``service``'s roles that ``user`` holds at ``organisation`` (sorted)."""
    if organisation is None:
        return []
    grant = db.session.scalar(
        select(AccessGrant)
        .where(
            AccessGrant.user_id == user.id,
            AccessGrant.organisation_id == organisation.id,
            AccessGrant.service_id == service.id,
        )
        .options(selectinload(AccessGrant.roles))
    )
    if grant is None:
        return []
    return sorted(role.code for role in grant.roles)


def user_claims(
    user: User, scopes: Iterable[str], service: Service, *, organisation_id: str | None = None
) -> dict[str, Any]:
    """The claims ``scopes`` release about ``user`` to ``service`` (always including ``sub``)."""
    granted = set(scopes)
    claims: dict[str, Any] = {"sub": user.sub}
    if "profile" in granted:
        claims.update(name=user.name, given_name=user.given_name, family_name=user.family_name)
    if "email" in granted:
        claims.update(email=user.email, email_verified=True)
    if granted & {"organisation", "roles"}:
        orgs = _memberships(user)
        chosen = chosen_organisation(user, organisation_id, orgs)
        if "organisation" in granted:
            if chosen is not None:
                claims["organisation"] = organisation_claim(chosen)
            claims["organisations"] = [organisation_claim(o) for o in orgs]
        if "roles" in granted:
            claims["roles"] = role_codes(user, chosen, service)
    return claims
