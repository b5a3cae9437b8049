"""The plain WSGI middleware behaves like the Flask extension (same engine, same checks)."""

from __future__ import annotations

from typing import Any

import pytest
from rp_helpers import Journey, local, refusal, rp_config
from werkzeug.test import Client

from secure_access_client import Protect, SecureAccessMiddleware
from secure_access_client.wsgi import current_user, sign_out_form


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    user = current_user(environ)
    body = f"{environ['PATH_INFO']}: {user.sub or 'anonymous'} {list(user.roles)}"
    if environ["PATH_INFO"] == "/form":
        body = sign_out_form(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


@pytest.fixture
def wsgi_app(op, tmp_path, clock) -> SecureAccessMiddleware:
    config = {k: v for k, v in rp_config(op, tmp_path).items() if k.startswith("SECURE_ACCESS_")}
    return SecureAccessMiddleware(
        hello,
        config,
        protect={
            "/private": Protect(),
            "/approve": Protect(roles=["approver"]),
            "/pensions": Protect(mfa=True),
            "/form": Protect(),
        },
        public=["/private/help"],
        clock=clock,
    )


@pytest.fixture
def client(wsgi_app):
    return Client(wsgi_app)


def test_public_paths_pass_through_anonymous(client):
    assert client.get("/").get_data(as_text=True) == "/: anonymous []"
    assert client.get("/private/help").status_code == 200


def test_protected_paths_send_you_to_sign_in(client):
    response = client.get("/private/page?x=1")

    assert response.status_code == 302
    assert local(response.location) == "/auth/sign-in?next=%2Fprivate%2Fpage%3Fx%3D1"


def test_signing_in_through_the_middleware(client, op):
    Journey(client, op).sign_in("/private", roles=("viewer",))

    assert client.get("/private").get_data(as_text=True) == (
        "/private: 8d8ac610-566d-4ef0-9c22-186b2a5ed793 ['viewer']"
    )
    assert client.get("/approve").status_code == 403
    assert client.get("/pensions").status_code == 302


def test_the_same_refusals_as_the_flask_extension(client, op):
    op.tamper = lambda claims, header: claims.update(aud="another-service")

    response = Journey(client, op).start().callback()
    assert response.status_code == 400
    assert refusal(response) == "invalid-aud"
    assert client.get("/private").status_code == 302


def test_a_reused_state_is_refused_by_the_middleware(client, op):
    callback = Journey(client, op).start().callback_url()
    client.get(callback)

    assert refusal(client.get(callback)) == "state-mismatch"


def test_back_channel_logout_through_the_middleware(wsgi_app, client, op):
    Journey(client, op).sign_in()
    other = Client(wsgi_app)

    assert (
        other.post(
            "/auth/backchannel-logout", data={"logout_token": op.logout_token(nonce="x")}
        ).status_code
        == 400
    )
    assert client.get("/private").status_code == 200
    response = other.post("/auth/backchannel-logout", data={"logout_token": op.logout_token()})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/private").status_code == 302


def test_an_oversized_back_channel_body_is_refused(client):
    response = client.post("/auth/backchannel-logout", data={"logout_token": "x" * 20_000})

    assert response.status_code == 413


def test_sign_out_through_the_middleware(client, op):
    Journey(client, op).sign_in()
    form = client.get("/form").get_data(as_text=True)
    token = form.split('name="csrf_token" value="')[1].split('"')[0]

    response = client.post("/auth/sign-out", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.location.startswith(op.issuer + "/logout?")
    assert client.get("/private").status_code == 302
