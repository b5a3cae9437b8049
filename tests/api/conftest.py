"""API fixtures: a relying service with API scopes and roles, its real client-credentials
token from /token, and organisations and people to read and invite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import MembershipRole, Organisation, OrganisationType, Service, User
from idp.services import access
from idp.services.clients import register_service
from idp.services.transaction import transaction
from tests.factories import make_user
from tests.oidc.rp import basic

ROLES = (
    {"code": "submitter", "name": "Submitter"},
    {"code": "viewer", "name": "Viewer"},
    {"code": "la-officer", "name": "LA officer", "organisation_types": ["local_authority"]},
)
API_SCOPES = ("users:read", "users:invite")


@dataclass
class ApiCaller:
    """A relying service calling the API with its own client-credentials token."""

    client: FlaskClient
    service: Service
    secret: str

    def token(self, scope: str = "users:read users:invite") -> str:
        response = self.client.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": scope},
            headers=basic(self.service.client_id, self.secret),
        )
        assert response.status_code == 200, response.get_json()
        return str(response.get_json()["access_token"])

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token()}"}

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> TestResponse:
        return self.client.get(f"/api/v1{path}", headers=self.headers(token), **kwargs)

    def invite(self, body: dict[str, Any], token: str | None = None) -> TestResponse:
        return self.client.post("/api/v1/invitations", json=body, headers=self.headers(token))


def register_api_service(
    client_id: str, *, scopes: tuple[str, ...] = API_SCOPES, **options: Any
) -> tuple[Service, str]:
    with transaction():
        service, secret = register_service(
            client_id,
            f"Service {client_id}",
            redirect_uris=(),
            allowed_scopes=scopes,
            grant_types=("client_credentials",),
            roles=ROLES,
            start_url=f"https://{client_id}.example/start",
            **options,
        )
    assert secret is not None
    return service, secret


@pytest.fixture
def caller(client: FlaskClient) -> ApiCaller:
    service, secret = register_api_service("pupil-data")
    return ApiCaller(client, service, secret)


@pytest.fixture
def other_caller(client: FlaskClient) -> ApiCaller:
    service, secret = register_api_service("school-finance")
    return ApiCaller(client, service, secret)


def make_organisation(name: str, **values: Any) -> Organisation:
    values.setdefault("type", OrganisationType.ESTABLISHMENT)
    org = Organisation(name=name, **values)
    db.session.add(org)
    db.session.commit()
    return org


@pytest.fixture
def local_authority() -> Organisation:
    return make_organisation("Hillshire", type=OrganisationType.LOCAL_AUTHORITY, la_code="201")


@pytest.fixture
def school(local_authority: Organisation) -> Organisation:
    return make_organisation("Hill School", urn="100001", local_authority_id=local_authority.id)


@pytest.fixture
def other_school() -> Organisation:
    return make_organisation("Dale School", urn="100002", ukprn="10012345")


def give_access(
    user: User,
    org: Organisation,
    service: Service,
    roles: tuple[str, ...] = (),
    *,
    role: MembershipRole = MembershipRole.MEMBER,
) -> None:
    with transaction():
        if access.membership(user, org) is None:
            access.add_membership(user, org, role=role, actor="test")
        access.set_access(user, org, service, roles, actor="test")


@pytest.fixture
def teacher(caller: ApiCaller, school: Organisation) -> User:
    user = make_user(email="jo.bloggs@hill-school.example", given_name="Jo", family_name="Bloggs")
    give_access(user, school, caller.service, ("submitter",))
    return user
