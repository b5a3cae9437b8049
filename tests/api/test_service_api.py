"""The service-to-service API, as a relying service uses it (issue 7): reading a person and an
organisation's people, inviting, and every way a token or a request can be wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from idp.api.views import OPENAPI_DOCUMENT
from idp.extensions import db
from idp.models import AuditEvent, MembershipRole, ServiceStatus, User, UserStatus
from idp.oidc.discovery import get_issuer
from idp.oidc.keys import get_keyring
from idp.oidc.tokens import ACCESS_TOKEN_ALG, ACCESS_TOKEN_TYP, mint_access_token
from idp.services import access
from idp.services.clients import ServiceValidationError, register_service
from idp.services.transaction import transaction
from tests.api.conftest import give_access, make_organisation, register_api_service
from tests.factories import make_user
from tests.mailbox import emails_to, latest_link
from tests.oidc.rp import RP, basic, unverified

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    return body


def field_errors(body: dict) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body.get("errors", [])}


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User)) or 0


# -- reading -----------------------------------------------------------------------------------


def test_a_person_comes_with_this_services_roles_at_each_of_their_organisations(
    caller, teacher, school, other_school
):
    give_access(teacher, other_school, caller.service, ("viewer", "submitter"))
    response = caller.get(f"/users/{teacher.sub}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert {k: body[k] for k in ("sub", "name", "email", "status")} == {
        "sub": teacher.sub,
        "name": "Jo Bloggs",
        "email": "jo.bloggs@hill-school.example",
        "status": "active",
    }
    dale, hill = body["organisations"]  # by name
    assert hill == {
        "id": school.public_id,
        "name": "Hill School",
        "type": "establishment",
        "urn": "100001",
        "ukprn": None,
        "la_code": "201",  # the school's local authority's
        "roles": [{"code": "submitter", "name": "Submitter"}],
    }
    assert dale["ukprn"] == "10012345"
    assert [r["code"] for r in dale["roles"]] == ["submitter", "viewer"]


def test_a_service_sees_only_its_own_users_and_its_own_roles(
    caller, other_caller, teacher, school, other_school
):
    give_access(teacher, other_school, other_caller.service, ("viewer",))
    outsider = make_user(email="sam@dale-school.example")
    give_access(outsider, other_school, other_caller.service, ("viewer",))

    mine = caller.get(f"/users/{teacher.sub}").get_json()
    assert [o["name"] for o in mine["organisations"]] == ["Hill School"]
    assert mine["organisations"][0]["roles"] == [{"code": "submitter", "name": "Submitter"}]
    theirs = other_caller.get(f"/users/{teacher.sub}").get_json()
    assert [o["name"] for o in theirs["organisations"]] == ["Dale School"]
    assert theirs["organisations"][0]["roles"] == [{"code": "viewer", "name": "Viewer"}]

    # Someone with no access to the caller is exactly as unknown as someone who does not exist.
    hidden = problem(caller.get(f"/users/{outsider.sub}"), 404)
    unknown = problem(caller.get(f"/users/{UNKNOWN}"), 404)
    assert hidden == unknown
    assert problem(caller.get("/users/not-a-uuid"), 404) == unknown
    listed = caller.get(f"/organisations/{other_school.public_id}/users").get_json()
    assert listed["users"] == []
    assert listed["total"] == 0


def test_an_organisations_people_with_access_come_a_page_at_a_time(caller, other_caller, school):
    for given, family in (("Cy", "Able"), ("Di", "Cole"), ("Al", "Bell")):
        person = make_user(email=f"{given.lower()}@hill-school.example", given_name=given)
        person.family_name = family
        give_access(person, school, caller.service, ("viewer",))
    elsewhere = make_user(email="other@hill-school.example")
    give_access(elsewhere, school, other_caller.service, ("viewer",))
    member_only = make_user(email="member@hill-school.example")
    with transaction():
        access.add_membership(member_only, school, actor="test")

    first = caller.get(f"/organisations/{school.public_id}/users?per_page=2").get_json()
    assert first["organisation"]["id"] == school.public_id
    assert (first["page"], first["per_page"], first["total"]) == (1, 2, 3)
    assert [u["family_name"] for u in first["users"]] == ["Able", "Bell"]
    assert first["users"][0]["roles"] == [{"code": "viewer", "name": "Viewer"}]
    second = caller.get(f"/organisations/{school.public_id}/users?per_page=2&page=2").get_json()
    assert [u["family_name"] for u in second["users"]] == ["Cole"]
    past = caller.get(f"/organisations/{school.public_id}/users?per_page=2&page=3").get_json()
    assert past["users"] == []
    assert past["total"] == 3


def test_bad_paging_and_unknown_organisations_are_clear_errors(caller, school):
    body = problem(caller.get(f"/organisations/{school.public_id}/users?page=0&per_page=500"), 400)
    assert set(field_errors(body)) == {"page", "per_page"}
    problem(caller.get(f"/organisations/{school.public_id}/users?page=x"), 400)
    problem(caller.get(f"/organisations/{UNKNOWN}/users"), 404)
    problem(caller.get("/organisations/%00/users"), 404)


# -- tokens and scopes (RFC 6750) ------------------------------------------------------------------


def test_no_token_is_a_bare_bearer_challenge(client, teacher):
    for headers in ({}, {"Authorization": "Basic cGF0OnNlY3JldA=="}):
        response = client.get(f"/api/v1/users/{teacher.sub}", headers=headers)
        problem(response, 401)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="secure-access-api"'
    empty = client.get(f"/api/v1/users/{teacher.sub}", headers={"Authorization": "Bearer "})
    assert 'error="invalid_request"' in empty.headers["WWW-Authenticate"]
    problem(empty, 400)
    huge = {"Authorization": "Bearer " + "a" * 9000}  # refused before any JOSE parsing (L02)
    problem(client.get(f"/api/v1/users/{teacher.sub}", headers=huge), 400)


def assert_invalid_token(response) -> None:
    body = problem(response, 401)
    assert body["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer realm="secure-access-api", error="invalid_token"'
    )


def test_expired_revoked_forged_and_foreign_tokens_are_invalid(caller, teacher):
    service = caller.service
    path = f"/users/{teacher.sub}"
    assert_invalid_token(caller.get(path, token="not.a.token"))
    expired = mint_access_token(
        service,
        sub=service.client_id,
        scope="users:read",
        authn=None,
        now=int(datetime.now(UTC).timestamp()) - 3600,
    )
    assert_invalid_token(caller.get(path, token=expired.token))

    revoked = caller.token()
    assert (
        caller.client.post(
            "/revoke",
            data={"token": revoked},
            headers=basic(caller.service.client_id, caller.secret),
        ).status_code
        == 200
    )
    assert_invalid_token(caller.get(path, token=revoked))

    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": get_issuer(),
        "sub": service.client_id,
        "client_id": service.client_id,
        "aud": "school-finance",  # meant for another audience
        "iat": now,
        "exp": now + 300,
        "jti": "forged-audience",
        "scope": "users:read",
    }
    wrong_audience = get_keyring().sign(claims, alg=ACCESS_TOKEN_ALG, typ=ACCESS_TOKEN_TYP)
    assert_invalid_token(caller.get(path, token=wrong_audience))
    about_a_person = get_keyring().sign(
        {**claims, "aud": service.client_id, "sub": teacher.sub, "jti": "person"},
        alg=ACCESS_TOKEN_ALG,
        typ=ACCESS_TOKEN_TYP,
    )
    assert_invalid_token(caller.get(path, token=about_a_person))
    id_token_typed = get_keyring().sign(
        {**claims, "aud": service.client_id, "jti": "typ"}, alg=ACCESS_TOKEN_ALG, typ="JWT"
    )
    assert_invalid_token(caller.get(path, token=id_token_typed))
    assert caller.get(path).status_code == 200  # the genuine article still works


def test_a_token_without_the_scope_gets_insufficient_scope(caller, teacher, school):
    invite_only = caller.token("users:invite")
    response = caller.get(f"/users/{teacher.sub}", token=invite_only)
    assert problem(response, 403)["code"] == "insufficient_scope"
    assert 'scope="users:read"' in response.headers["WWW-Authenticate"]
    read_only = caller.token("users:read")
    body = {"email": "x@hill-school.example", "given_name": "X", "family_name": "Y"}
    response = caller.invite({**body, "organisation_id": school.public_id}, token=read_only)
    assert problem(response, 403)["code"] == "insufficient_scope"
    assert 'scope="users:invite"' in response.headers["WWW-Authenticate"]
    assert user_count() == 1  # nothing was written


def test_a_service_gets_only_the_api_scopes_it_registered(client, teacher):
    service, secret = register_api_service("reader", scopes=("users:read",))
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "users:read users:invite"},
        headers=basic(service.client_id, secret),
    )
    assert response.get_json()["error"] == "invalid_scope"


def test_api_scopes_are_never_granted_to_a_person_in_the_code_flow(client):
    make_user(email="ada@school.example")
    rp = RP.register(
        client,
        client_id="portal-with-api",
        scopes=("openid", "users:read"),
        grant_types=("authorization_code", "client_credentials"),
    )
    tokens = rp.tokens(rp.login("ada@school.example", scope="openid users:read"))
    _, claims = unverified(tokens["access_token"])
    assert claims["scope"] == "openid"
    assert_invalid_token(
        client.get(
            f"/api/v1/users/{claims['sub']}",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
    )


def test_the_registry_refuses_api_scopes_without_client_credentials(app):
    with pytest.raises(ServiceValidationError, match="client_credentials"), transaction():
        register_service(
            "portal",
            "Portal",
            redirect_uris=("https://portal.example/cb",),
            allowed_scopes=("openid", "users:read"),
            grant_types=("authorization_code",),
        )


def test_discovery_lists_the_api_scopes(client):
    scopes = client.get("/.well-known/openid-configuration").get_json()["scopes_supported"]
    assert {"users:read", "users:invite"} <= set(scopes)


# -- inviting ------------------------------------------------------------------------------------


def invitation(school, **changes) -> dict:
    body = {
        "email": "new.teacher@hill-school.example",
        "given_name": "Nia",
        "family_name": "Jones",
        "organisation_id": school.public_id,
        "roles": ["submitter"],
    }
    body.update(changes)
    return body


def test_inviting_a_new_person_creates_them_and_emails_one_invitation(caller, school):
    token = caller.token()
    first = caller.invite(invitation(school), token=token)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["status"] == "invited"
    assert body["organisations"][0]["roles"] == [{"code": "submitter", "name": "Submitter"}]
    assert first.headers["Location"] == f"/api/v1/users/{body['sub']}"

    again = caller.invite(invitation(school), token=token)
    assert again.status_code == 200
    assert again.get_json() == body
    messages = emails_to("new.teacher@hill-school.example")
    assert [m.template for m in messages] == ["invitation"]
    assert "Hill School" in messages[0].body
    assert latest_link("new.teacher@hill-school.example").startswith("/invitation/")
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.event == "api.invitation").order_by(AuditEvent.id)
    ).all()
    assert [(e.actor_id, e.target_id, e.details["changed"]) for e in events] == [
        ("pupil-data", body["sub"], True),
        ("pupil-data", body["sub"], False),
    ]
    user = db.session.scalar(select(User).where(User.sub == body["sub"]))
    assert access.membership(user, school).role is MembershipRole.MEMBER


def test_inviting_an_existing_person_adds_access_and_tells_them_once(
    caller, other_caller, teacher, school, other_school
):
    give_access(
        teacher, other_school, other_caller.service, ("viewer",), role=MembershipRole.APPROVER
    )
    body = invitation(
        other_school, email="Jo.Bloggs@Hill-School.example", given_name="Someone", roles=["viewer"]
    )
    response = caller.invite(body)
    assert response.status_code == 200
    found = response.get_json()
    assert found["sub"] == teacher.sub
    assert found["name"] == "Jo Bloggs"  # a service never renames a person
    assert [o["name"] for o in found["organisations"]] == ["Dale School", "Hill School"]
    caller.invite(body)
    messages = emails_to(teacher.email)
    assert [m.template for m in messages] == ["service_access_granted"]
    assert "Service pupil-data" in messages[0].body
    assert "https://pupil-data.example/start" in messages[0].body
    assert access.membership(teacher, other_school).role is MembershipRole.APPROVER  # kept

    # Roles already held are kept: the API adds access, it never takes any away.
    more = caller.invite(invitation(school, email=teacher.email, roles=["viewer"])).get_json()
    hill = next(o for o in more["organisations"] if o["name"] == "Hill School")
    assert [r["code"] for r in hill["roles"]] == ["submitter", "viewer"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"email": "office@hill-school.example"}, "email", "shared mailbox"),
        ({"email": "not an email"}, "email", "correct format"),
        ({"roles": ["head-chef"]}, "roles", "no role called head-chef"),
        ({"roles": ["la-officer"]}, "roles", "cannot hold"),
        ({"extra": "field"}, "extra", "Extra inputs"),
        ({"given_name": ""}, "given_name", "at least 1"),
        ({"roles": "submitter"}, "roles", "valid list"),
        ({"family_name": "Jo\x00nes"}, "family_name", "control characters"),
    ],
)
def test_a_bad_invitation_names_the_field_and_writes_nothing(
    caller, school, changes, field, message
):
    body = problem(caller.invite(invitation(school, **changes)), 400)
    errors = field_errors(body)
    assert field in errors, errors
    assert message in errors[field]
    assert user_count() == 0
    assert emails_to("office@hill-school.example") == []


def test_an_unknown_organisation_or_a_deactivated_person_is_refused(caller, school):
    assert problem(caller.invite(invitation(school, organisation_id=UNKNOWN)), 404)["code"] == (
        "not_found"
    )
    gone = make_user(email="gone@hill-school.example", status=UserStatus.DEACTIVATED)
    body = problem(caller.invite(invitation(school, email=gone.email)), 409)
    assert "helpdesk" in body["detail"]
    assert access.membership(gone, school) is None


def test_an_invitation_must_be_a_small_json_object(caller, school):
    headers = caller.headers()
    post = caller.client.post
    as_form = post("/api/v1/invitations", data=invitation(school), headers=headers)
    problem(as_form, 415)
    for raw in (b"[1, 2]", b"{not json", b'{"email": NaN}', b"\xff\xfe"):
        sent = post(
            "/api/v1/invitations", data=raw, content_type="application/json", headers=headers
        )
        problem(sent, 400)
    huge = json.dumps(invitation(school, given_name="N" * 9000))
    problem(
        post("/api/v1/invitations", data=huge, content_type="application/json", headers=headers),
        413,
    )
    assert user_count() == 0


# -- the document and the edges -----------------------------------------------------------------


def test_the_served_openapi_document_is_the_packaged_file(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_data() == OPENAPI_DOCUMENT.read_bytes()
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/users/{sub}",
        "/organisations/{organisation_id}/users",
        "/invitations",
    }


def test_unknown_api_paths_and_methods_are_json_problems(caller, teacher):
    problem(caller.get("/nothing-here"), 404)
    problem(caller.client.get("/api/v2/users", headers={"Accept": "text/html"}), 404)
    wrong = caller.client.delete(f"/api/v1/users/{teacher.sub}", headers=caller.headers())
    problem(wrong, 405)
    assert "GET" in wrong.headers["Allow"]


def test_a_disabled_service_loses_the_api_at_once(caller, teacher):
    token = caller.token()
    with transaction():
        caller.service.status = ServiceStatus.DISABLED
    assert_invalid_token(caller.get(f"/users/{teacher.sub}", token=token))


def test_an_organisation_with_no_people_for_this_service_is_an_empty_page(caller):
    org = make_organisation("Empty Academy", urn="100099")
    body = caller.get(f"/organisations/{org.public_id}/users").get_json()
    assert body == {
        "organisation": {
            "id": org.public_id,
            "name": "Empty Academy",
            "type": "establishment",
            "urn": "100099",
            "ukprn": None,
            "la_code": None,
        },
        "users": [],
        "page": 1,
        "per_page": 50,
        "total": 0,
    }


API_ROUTES = {
    "/api/v1/openapi.json": {"GET"},
    "/api/v1/users/<sub>": {"GET"},
    "/api/v1/organisations/<organisation_id>/users": {"GET"},
    "/api/v1/invitations": {"POST"},
}


def test_api_route_snapshot(app):
    """Relying services depend on these URLs (CONVENTIONS 12): they must not vanish or move."""
    routes = {
        rule.rule: set(rule.methods or ()) - {"HEAD", "OPTIONS"}
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
    }
    assert routes == API_ROUTES
