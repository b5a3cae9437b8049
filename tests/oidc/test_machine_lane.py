"""The machine lane (idp/oidc/machine_lane.py) answers exactly as the full path does.

For the requests it serves, a relying party must not be able to tell which path answered:
same status, headers, JSON members, token header and claims, and the same audit record.
Everything else must reach the full path (Flask and Authlib), whose errors the conformance
tests pin down; here each such request is sent both ways and the answers compared.
"""

from __future__ import annotations

import base64
import contextvars
from typing import Any

import pytest
from flask import Flask, request_started
from sqlalchemy import select
from werkzeug.test import Client as WsgiClient
from werkzeug.test import TestResponse

from idp import create_app
from idp.config import Settings
from idp.extensions import db
from idp.models import AuditEvent
from idp.oidc import keys
from idp.oidc.machine_lane import MachineLane
from tests.oidc.conftest import register_machine
from tests.oidc.rp import RP, unverified

FORM = "application/x-www-form-urlencoded"
#: Response headers whose value differs per request by design.
PER_REQUEST = {"X-Request-Id", "Content-Length"}


@pytest.fixture
def machine(client) -> RP:
    return register_machine(client, ("users:read", "users:invite"))


@pytest.fixture
def poster(client) -> RP:
    return register_machine(
        client, ("users:read",), client_id="census-upload", auth_method="client_secret_post"
    )


def full_path(app: Flask) -> WsgiClient:
    """A client for the Flask app itself, without the lane in front of it."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        return Flask.wsgi_app(app, environ, start_response)

    def isolated(environ: dict[str, Any], start_response: Any) -> Any:
        environ["REMOTE_ADDR"] = "127.0.0.1"  # as FlaskClient sends
        # As IsolatedClient: each request in its own context, like a server.
        return contextvars.Context().run(lambda: list(wsgi(environ, start_response)))

    return WsgiClient(isolated)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def both(
    app: Flask, client, seen: list[str], path: str, **kwargs: Any
) -> tuple[TestResponse, TestResponse, list[str]]:
    """The same request through the app (lane first) and through Flask alone; and which
    paths reached Flask for the first."""
    seen.clear()
    lane = client.open(path, **kwargs)
    reached = list(seen)
    return lane, full_path(app).open(path, **kwargs), reached


def same_headers(lane: TestResponse, full: TestResponse) -> None:
    def comparable(response: TestResponse) -> list[tuple[str, str]]:
        return [(k, v) for k, v in response.headers.items() if k not in PER_REQUEST]

    assert comparable(lane) == comparable(full)


def same_token_answer(lane: TestResponse, full: TestResponse) -> None:
    assert lane.status_code == full.status_code == 200
    same_headers(lane, full)
    lane_body, full_body = lane.get_json(), full.get_json()
    assert list(lane_body) == list(full_body)
    assert {k: v for k, v in lane_body.items() if k != "access_token"} == {
        k: v for k, v in full_body.items() if k != "access_token"
    }
    (lane_header, lane_claims), (full_header, full_claims) = (
        unverified(lane_body["access_token"]),
        unverified(full_body["access_token"]),
    )
    assert lane_header == full_header
    differ = {"jti", "iat", "exp"}
    assert {k: v for k, v in lane_claims.items() if k not in differ} == {
        k: v for k, v in full_claims.items() if k not in differ
    }
    assert lane_claims["exp"] - lane_claims["iat"] == full_claims["exp"] - full_claims["iat"]
    assert lane_claims["jti"] != full_claims["jti"]


def issued_records() -> list[AuditEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.event == "oidc.token_issued")
            .order_by(AuditEvent.id)
        )
    )


@pytest.mark.parametrize("scope", [None, "users:read", "users:read users:invite users:read"])
def test_a_basic_client_credentials_grant_gets_the_full_paths_answer(
    app, client, machine, flask_requests, scope
):
    data = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    headers = basic(machine.client_id, machine.secret) | {"User-Agent": "nightly/1.0"}
    lane, full, reached = both(
        app, client, flask_requests, "/token", method="POST", data=data, headers=headers
    )
    same_token_answer(lane, full)
    assert reached == []  # the lane answered
    # The same audit record either way, with the request's origin (K03: never the token).
    lane_row, full_row = issued_records()
    for row in (lane_row, full_row):
        assert (row.actor_id, row.target_id, row.target_type) == (
            machine.client_id,
            machine.client_id,
            "service",
        )
        assert row.user_agent == "nightly/1.0"
        assert row.ip == "127.0.0.1"
    assert {k: v for k, v in lane_row.details.items() if k != "jti"} == {
        k: v for k, v in full_row.details.items() if k != "jti"
    }
    assert lane_row.details["jti"] == unverified(lane.get_json()["access_token"])[1]["jti"]
    assert lane_row.request_id == lane.headers["X-Request-Id"]


def test_a_post_client_credentials_grant_gets_the_full_paths_answer(
    app, client, poster, flask_requests
):
    data = {
        "grant_type": "client_credentials",
        "client_id": poster.client_id,
        "client_secret": poster.secret,
        "scope": "users:read",
    }
    lane, full, reached = both(app, client, flask_requests, "/token", method="POST", data=data)
    same_token_answer(lane, full)
    assert reached == []


def test_a_proxys_request_id_is_echoed_and_recorded(client, machine):
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(machine.client_id, machine.secret) | {"X-Request-Id": "edge-1234abcd"},
    )
    assert response.headers["X-Request-Id"] == "edge-1234abcd"
    assert issued_records()[-1].request_id == "edge-1234abcd"


def unusual_requests(machine: RP, poster: RP) -> list[tuple[str, dict[str, Any]]]:
    good = basic(machine.client_id, machine.secret)
    grant = {"grant_type": "client_credentials"}
    return [
        ("wrong secret", {"data": grant, "headers": basic(machine.client_id, "nope")}),
        ("unknown client", {"data": grant, "headers": basic("no-such-service", "x")}),
        ("malformed Basic", {"data": grant, "headers": {"Authorization": "Basic %%%"}}),
        ("no credentials", {"data": grant}),
        ("scope not allowed", {"data": grant | {"scope": "openid"}, "headers": good}),
        ("unknown scope", {"data": grant | {"scope": "users:delete"}, "headers": good}),
        (
            "duplicated grant_type",
            {
                "data": "grant_type=client_credentials&grant_type=client_credentials",
                "content_type": FORM,
                "headers": good,
            },
        ),
        ("another grant type", {"data": {"grant_type": "password"}, "headers": good}),
        ("no grant type", {"data": {"scope": "users:read"}, "headers": good}),
        (
            "two client authentication methods",
            {
                "data": grant | {"client_id": machine.client_id, "client_secret": machine.secret},
                "headers": good,
            },
        ),
        (
            "a client_id that is not the Basic one",
            {"data": grant | {"client_id": poster.client_id}, "headers": good},
        ),
        (
            "the method the service did not register",
            {"data": grant | {"client_id": machine.client_id, "client_secret": machine.secret}},
        ),
        (
            "an extra parameter",
            {"data": grant | {"resource": "https://api.example"}, "headers": good},
        ),
        ("a query string", {"data": grant, "headers": good, "query_string": "x=1"}),
        ("JSON, not a form", {"json": grant, "headers": good}),
        ("a large body", {"data": grant | {"scope": "users:read " * 300}, "headers": good}),
        (
            "not UTF-8",
            {
                "data": b"grant_type=client_credentials&scope=%ff",
                "content_type": FORM,
                "headers": good,
            },
        ),
        ("an untrusted Host", {"data": grant, "headers": good, "base_url": "http://evil.example"}),
    ]


def test_every_unusual_token_request_gets_the_full_paths_answer(
    app, client, machine, poster, flask_requests
):
    for why, kwargs in unusual_requests(machine, poster):
        lane, full, reached = both(app, client, flask_requests, "/token", method="POST", **kwargs)
        assert reached == ["/token"], why  # the lane passed it on
        assert lane.status_code == full.status_code, why
        assert lane.status_code != 500, why
        if full.is_json:
            lane_body, full_body = lane.get_json(), full.get_json()
            assert lane_body.get("error") == full_body.get("error"), why
            assert set(lane_body) == set(full_body), why
        same_headers(lane, full) if lane.status_code != 200 else None


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/jwks.json"])
def test_discovery_and_jwks_are_the_full_paths_bytes(app, client, flask_requests, path):
    lane, full, reached = both(app, client, flask_requests, path)
    assert reached == []
    assert lane.status_code == full.status_code == 200
    assert lane.data == full.data
    same_headers(lane, full)


def test_the_lanes_jwks_shows_a_rotation_at_once(app, client):
    before = {k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]}
    keys.rotate(force=True, actor="test")
    db.session.commit()
    after = {k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert after - before  # the new next key is published at the next request


def test_head_and_other_methods_are_the_full_paths(client, flask_requests):
    assert client.head("/.well-known/jwks.json").status_code == 200
    assert client.get("/token").status_code == 405
    assert flask_requests == ["/.well-known/jwks.json", "/token"]


def test_the_lane_can_be_turned_off(settings: Settings, app: Flask, machine):
    assert isinstance(app.wsgi_app, MachineLane)
    plain = create_app(settings.model_copy(update={"machine_lane": False}))
    assert not isinstance(plain.wsgi_app, MachineLane)
    seen: list[str] = []
    request_started.connect(lambda sender, **_: seen.append("flask"), plain, weak=False)
    response = plain.test_client().post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(machine.client_id, machine.secret),
    )
    assert response.status_code == 200
    assert seen == ["flask"]
