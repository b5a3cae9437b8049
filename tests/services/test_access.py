"""The membership and access rules every room relies on (idp.services.access)."""

from __future__ import annotations

import pytest
from flask import Flask

from idp.extensions import db
from idp.models import (
    AccessPolicy,
    AuditEvent,
    MembershipRole,
    Organisation,
    OrganisationType,
    Service,
)
from idp.services import access
from idp.services.transaction import transaction
from tests.access_helpers import pupil_data
from tests.factories import make_user


def _org(name: str, type_: OrganisationType = OrganisationType.ESTABLISHMENT) -> Organisation:
    org = Organisation(name=name, type=type_)
    db.session.add(org)
    db.session.commit()
    return org


def _service(policy: AccessPolicy = AccessPolicy.GRANTED) -> Service:
    return pupil_data(policy=policy)


def test_grant_needs_membership_and_allowed_roles(app: Flask) -> None:
    school, service, user = _org("Hill Top Primary"), _service(), make_user()
    with pytest.raises(access.AccessError, match="not a member"):
        access.set_access(user, school, service, ["viewer"], actor="test")
    with transaction():
        access.add_membership(user, school, actor="test")
    with pytest.raises(access.AccessError, match="cannot hold"):
        access.set_access(user, school, service, ["la_admin"], actor="test")
    with pytest.raises(access.AccessError, match="no role called"):
        access.set_access(user, school, service, ["owner"], actor="test")
    with transaction():
        access.set_access(user, school, service, ["viewer"], actor="test")
    assert access.has_access(user, service, school)
    assert [r.code for r in access.grant_for(user, school, service).roles] == ["viewer"]
    events = db.session.scalars(db.select(AuditEvent.event)).all()
    assert "access.granted" in events


def test_open_service_admits_everyone_and_granted_only_grantees(app: Flask) -> None:
    user = make_user()
    assert access.has_access(user, _service(AccessPolicy.OPEN))
    db.session.query(Service).delete()
    db.session.commit()
    assert not access.has_access(user, _service(AccessPolicy.GRANTED))


def test_last_approver_cannot_be_demoted_or_removed(app: Flask) -> None:
    school, alice, bob = _org("Riverside Academy"), make_user(), make_user()
    with transaction():
        access.add_membership(alice, school, role=MembershipRole.APPROVER, actor="test")
        access.add_membership(bob, school, actor="test")
    with pytest.raises(access.AccessError, match="only approver"):
        access.set_membership_role(alice, school, MembershipRole.MEMBER, actor="test")
    with pytest.raises(access.AccessError, match="only approver"):
        access.remove_membership(alice, school, actor="test")
    with transaction():
        access.set_membership_role(bob, school, MembershipRole.APPROVER, actor="test")
        access.set_membership_role(alice, school, MembershipRole.MEMBER, actor="test")
    assert [u.id for u in access.approvers_of(school)] == [bob.id]
