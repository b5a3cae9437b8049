"""Organisations and memberships for the helpdesk console's tests (8a)."""

from __future__ import annotations

import itertools

from idp.extensions import db
from idp.models import Membership, MembershipRole, Organisation, OrganisationType, User

_urns = itertools.count(700001)


def make_organisation(
    name: str = "Oakwood Primary School", *, urn: str | None = None, ukprn: str | None = None
) -> Organisation:
    organisation = Organisation(
        type=OrganisationType.ESTABLISHMENT,
        name=name,
        urn=urn or str(next(_urns)),
        ukprn=ukprn,
        postcode="AB1 2CD",
    )
    db.session.add(organisation)
    db.session.commit()
    return organisation


def join(user: User, organisation: Organisation, *, approver: bool = False) -> Membership:
    membership = Membership(
        user=user,
        organisation=organisation,
        role=MembershipRole.APPROVER if approver else MembershipRole.MEMBER,
    )
    db.session.add(membership)
    db.session.commit()
    return membership
