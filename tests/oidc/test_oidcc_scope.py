"""``oidcc-scope-profile``, ``-email``, ``-all`` and F05 (DESIGN §5 claims; OIDC Core §5.4):
only the granted scopes' claims are released, at UserInfo and in the ID token."""

from __future__ import annotations

import pytest

from idp.extensions import db
from idp.models import AccessGrant, Membership, Organisation, OrganisationType
from idp.services.clients import get_service
from tests.oidc.conftest import EMAIL
from tests.oidc.rp import RP, error_redirect

ALL = ("openid", "profile", "email", "organisation", "roles", "offline_access")


def userinfo(rp: RP, scope: str) -> dict:
    body = rp.tokens(rp.login(EMAIL, scope=scope))
    response = rp.userinfo(body["access_token"])
    assert response.status_code == 200
    claims = rp.validate_id_token(body["id_token"], nonce=rp.last.nonce)
    info: dict = response.get_json()
    for name, value in info.items():
        assert claims[name] == value  # the ID token carries the same claims
    return info


@pytest.fixture
def school(user) -> Organisation:
    la = Organisation(type=OrganisationType.LOCAL_AUTHORITY, name="Camden", la_code="202")
    school = Organisation(
        type=OrganisationType.ESTABLISHMENT,
        name="Hill Top Primary",
        urn="100001",
        ukprn="10012345",
        local_authority=la,
    )
    db.session.add_all([la, school, Membership(user=user, organisation=school)])
    db.session.commit()
    return school


def test_oidcc_scope_openid_only(rp, user):
    assert userinfo(rp, "openid") == {"sub": user.sub}


def test_oidcc_scope_profile(rp, user):
    info = userinfo(rp, "openid profile")
    assert info == {
        "sub": user.sub,
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
    }


def test_oidcc_scope_email(rp, user):
    assert userinfo(rp, "openid email") == {
        "sub": user.sub,
        "email": EMAIL,
        "email_verified": True,
    }


def test_oidcc_scope_all(client, user, school):
    rp = RP.register(client, scopes=ALL, roles=[{"code": "submitter", "name": "Submitter"}])
    service = get_service(rp.client_id)
    grant = AccessGrant(user_id=user.id, organisation_id=school.id, service_id=service.id)
    grant.roles = list(service.roles)
    db.session.add(grant)
    db.session.commit()
    info = userinfo(rp, " ".join(ALL))
    expected = {
        "id": school.public_id,
        "name": "Hill Top Primary",
        "type": "establishment",
        "urn": "100001",
        "ukprn": "10012345",
        "la_code": "202",
    }
    assert info["organisation"] == expected
    assert info["organisations"] == [expected]
    assert info["roles"] == ["submitter"]
    assert set(info) == {
        "sub",
        "name",
        "given_name",
        "family_name",
        "email",
        "email_verified",
        "organisation",
        "organisations",
        "roles",
    }


def test_roles_are_only_this_services(client, user, school):
    rp = RP.register(client, scopes=ALL, roles=[{"code": "submitter", "name": "Submitter"}])
    other = RP.register(
        client, client_id="other-portal", scopes=ALL, roles=[{"code": "viewer", "name": "Viewer"}]
    )
    service = get_service(other.client_id)
    grant = AccessGrant(user_id=user.id, organisation_id=school.id, service_id=service.id)
    grant.roles = list(service.roles)
    db.session.add(grant)
    db.session.commit()
    assert userinfo(rp, "openid roles")["roles"] == []
    assert userinfo(other, "openid roles")["roles"] == ["viewer"]


def test_several_memberships_the_chosen_one_is_the_organisation(client, user, school):
    """Issue 7: the person chooses (tests/oidc/test_choose_organisation.py has the rules)."""
    second = Organisation(type=OrganisationType.LOCAL_AUTHORITY, name="Barnet", la_code="302")
    db.session.add_all([second, Membership(user=user, organisation=second)])
    db.session.commit()
    rp = RP.register(client, scopes=ALL)
    body = rp.tokens(
        rp.login(EMAIL, scope="openid organisation roles", organisation=second.public_id)
    )
    info = rp.userinfo(body["access_token"]).get_json()
    assert info["organisation"]["name"] == "Barnet"
    assert [o["name"] for o in info["organisations"]] == ["Barnet", "Hill Top Primary"]
    assert info["organisations"][0] == {
        "id": second.public_id,
        "name": "Barnet",
        "type": "local_authority",
        "la_code": "302",
    }
    assert info["roles"] == []


def test_F05_scope_without_openid_is_invalid_scope(rp, user):
    assert error_redirect(rp.authorize(scope="profile email"))["error"] == "invalid_scope"
    assert error_redirect(rp.authorize(scope=None))["error"] == "invalid_scope"


def test_F05_unknown_and_unregistered_scopes_are_ignored(rp, user):
    body = rp.tokens(rp.login(EMAIL, scope="openid bananas organisation email"))
    assert body["scope"] == "openid email"  # organisation is not registered for this service


@pytest.mark.parametrize("scope", ["address", "phone"])
def test_oidcc_scope_address_and_phone_are_not_offered_and_ignored(client, rp, user, scope):
    """Not in scopes_supported, so the suite skips ``oidcc-scope-address``/``-phone``; a request
    for them is served without those claims rather than refused (OIDC Core §3.1.2.1)."""
    config = client.get("/.well-known/openid-configuration").get_json()
    assert scope not in config["scopes_supported"]
    info = userinfo(rp, f"openid {scope}")
    assert info == {"sub": user.sub}
