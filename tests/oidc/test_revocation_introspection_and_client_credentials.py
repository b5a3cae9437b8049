"""RFC 7009 revocation, RFC 7662 introspection and the client credentials grant (RFC 6749
§4.4): confidential clients only, each seeing only its own tokens; G05 Also, G06, G07."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent
from tests.oidc.conftest import EMAIL, register_machine
from tests.oidc.rp import RP, unverified


@pytest.fixture
def issued(rp, user) -> dict:
    return rp.tokens(rp.login(EMAIL, scope="openid profile offline_access"))


def introspect(rp: RP, token: str, **extra: str) -> dict:
    response = rp.post("/introspect", {"token": token, **extra})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body: dict = response.get_json()
    return body


def test_introspect_an_access_token(rp, issued, user):
    body = introspect(rp, issued["access_token"])
    claims = unverified(issued["access_token"])[1]
    assert body["active"] is True
    assert body["client_id"] == rp.client_id
    assert body["sub"] == user.sub
    assert body["scope"] == "openid profile offline_access"
    assert body["token_type"] == "Bearer"
    assert body["exp"] == claims["exp"]


def test_introspect_a_refresh_token(rp, issued, user):
    body = introspect(rp, issued["refresh_token"], token_type_hint="refresh_token")
    assert body["active"] is True
    assert body["sub"] == user.sub


def test_introspection_of_another_clients_token_is_inactive(client, issued):
    other = RP.register(client, client_id="other-portal")
    assert introspect(other, issued["access_token"]) == {"active": False}
    assert introspect(other, issued["refresh_token"]) == {"active": False}


def test_introspection_of_junk_is_inactive(rp, user):
    for junk in ("nope", "a.b.c", "x" * 500):
        assert introspect(rp, junk) == {"active": False}


def test_introspection_needs_client_authentication(client, issued):
    response = client.post("/introspect", data={"token": issued["access_token"]})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    events = [e.event for e in db.session.scalars(select(AuditEvent))]
    assert "oidc.client_auth_failed" in events


def test_revoke_an_access_token(rp, issued):
    response = rp.post("/revoke", {"token": issued["access_token"]})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert rp.userinfo(issued["access_token"]).status_code == 401
    assert introspect(rp, issued["access_token"]) == {"active": False}


def test_revoking_a_refresh_token_revokes_its_family(rp, issued):
    rotated = rp.refresh(issued["refresh_token"]).get_json()["refresh_token"]
    assert rp.post("/revoke", {"token": rotated}).status_code == 200
    assert rp.refresh(rotated).get_json()["error"] == "invalid_grant"
    assert introspect(rp, rotated) == {"active": False}


def test_revoking_an_unknown_token_is_200(rp, user):
    assert rp.post("/revoke", {"token": "never-issued"}).status_code == 200
    hinted = rp.post("/revoke", {"token": "never-issued", "token_type_hint": "weird"})
    assert hinted.status_code == 200  # RFC 7009 §2.1: the hint is only a hint


def test_revoking_another_clients_token_is_refused_and_changes_nothing(client, rp, issued):
    other = RP.register(client, client_id="other-portal")
    assert other.post("/revoke", {"token": issued["refresh_token"]}).status_code == 400
    assert rp.refresh(issued["refresh_token"]).status_code == 200


def test_revocation_without_a_token_is_invalid_request(rp, user):
    assert rp.post("/revoke", {}).get_json()["error"] == "invalid_request"


@pytest.fixture
def machine(client) -> RP:
    return register_machine(client)


def test_client_credentials_issues_an_access_token_about_the_client(machine):
    response = machine.post("/token", {"grant_type": "client_credentials"})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no ID token
    header, claims = unverified(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert claims["sub"] == claims["client_id"] == claims["aud"] == machine.client_id
    assert claims["scope"] == ""
    assert introspect(machine, body["access_token"])["active"] is True


def test_each_client_credentials_grant_is_audited_about_the_service(machine):
    # Issue 4 keeps trimming this grant's work; its audit row must stay, one per grant.
    for _ in range(2):
        assert machine.post("/token", {"grant_type": "client_credentials"}).status_code == 200
    rows = db.session.scalars(
        select(AuditEvent).where(AuditEvent.event == "oidc.token_issued")
    ).all()
    assert len(rows) == 2
    assert {(r.actor_id, r.target_id, r.target_type) for r in rows} == {
        (machine.client_id, machine.client_id, "service")
    }
    assert rows[0].details["grant_type"] == "client_credentials"


def test_client_credentials_cannot_have_user_scopes(machine):
    response = machine.post("/token", {"grant_type": "client_credentials", "scope": "openid"})
    assert response.get_json()["error"] == "invalid_scope"


def test_client_credentials_only_for_services_registered_for_it(rp, user):
    response = rp.post("/token", {"grant_type": "client_credentials"})
    assert response.get_json()["error"] == "unauthorized_client"
