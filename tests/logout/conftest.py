"""Logout fixtures: a real relying service on loopback, registered services, signed-in people.

The relying service is a small WSGI server in a thread that records every request it gets
and answers as it is told: a status code, or "hang" (hold the request until released).
Nothing here mocks our database, Redis or HTTP.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from idp.auth.sso_cookie import COOKIE_NAME
from idp.models import User
from idp.models.service import Service
from idp.oidc.discovery import get_issuer
from idp.oidc.keys import get_keyring, jws_registry
from idp.services.clients import register_service
from idp.services.sso_sessions import SsoSession, get_sso_sessions
from idp.services.transaction import transaction
from tests.factories import SignIn, make_user

HANG = "hang"
#: Bounded waits: long enough for a slow CI machine, short enough to fail a broken test.
WAIT_SECONDS = 10.0


@dataclass
class Received:
    method: str
    path: str
    content_type: str
    form: dict[str, list[str]]
    query: dict[str, list[str]]


@dataclass
class RelyingService:
    """What the stand-in relying service saw, and how it should answer next."""

    url: str
    received: list[Received] = field(default_factory=list)
    answers: deque[int | str] = field(default_factory=deque)
    default: int | str = 200
    release: threading.Event = field(default_factory=threading.Event)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def answer(self, *answers: int | str) -> None:
        """Answer the next requests with these, in order, then with ``default``."""
        self.answers.extend(answers)

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> bool:
        """Wait (bounded) until ``count`` requests have arrived."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.received) >= count, timeout)

    def backchannel_posts(self) -> list[Received]:
        return [r for r in self.received if r.method == "POST"]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        record = Received(
            method=request.method,
            path=request.path,
            content_type=request.mimetype,
            form={k: request.form.getlist(k) for k in request.form},
            query={k: request.args.getlist(k) for k in request.args},
        )
        with self._arrived:
            self.received.append(record)
            self._arrived.notify_all()
        if request.method == "GET":  # a post-logout landing page, for browser journeys
            page = "<!doctype html><title>Signed out of the service</title><h1>Signed out</h1>"
            return Response(page, mimetype="text/html")(environ, start_response)
        answer = self.answers.popleft() if self.answers else self.default
        if answer == HANG:
            self.release.wait(timeout=60)
            answer = 200
        response = Response("", status=int(answer))
        response.headers["Cache-Control"] = "no-store"
        return response(environ, start_response)


@contextmanager
def running_relying_service() -> Iterator[RelyingService]:
    """A stand-in relying service on 127.0.0.1, stopped (and any held request let go) after."""
    service = RelyingService(url="")
    server = make_server("127.0.0.1", 0, service, threaded=True)
    service.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.release.set()
        server.shutdown()
        thread.join(timeout=WAIT_SECONDS)


@pytest.fixture
def relying_service() -> Iterator[RelyingService]:
    with running_relying_service() as service:
        yield service


def register(
    client_id: str,
    *,
    backchannel: str | None = None,
    post_logout: tuple[str, ...] = (),
    alg: str = "RS256",
) -> Service:
    with transaction():
        service, _ = register_service(
            client_id,
            client_id.replace("-", " ").capitalize(),
            redirect_uris=[f"https://{client_id}.example/callback"],
            allowed_scopes=["openid", "profile", "email"],
            grant_types=["authorization_code", "refresh_token"],
            post_logout_redirect_uris=post_logout,
            backchannel_logout_uri=backchannel,
            id_token_signed_response_alg=alg,
            access_policy="open",  # access is not the point here (issue 7)
        )
    return service


SIGNED_OUT_URI = "https://pupil-records.example/signed-out"


@pytest.fixture
def pupil_records(app: Any, relying_service: RelyingService) -> Service:
    """A service with a registered post-logout page and a back-channel logout URI."""
    return register(
        "pupil-records",
        backchannel=f"{relying_service.url}/pupil-records/backchannel-logout",
        post_logout=(SIGNED_OUT_URI, f"{relying_service.url}/pupil-records/signed-out"),
    )


@pytest.fixture
def school_census(app: Any, relying_service: RelyingService) -> Service:
    """A second service in the same SSO session, with its own back-channel URI."""
    return register(
        "school-census", backchannel=f"{relying_service.url}/school-census/backchannel-logout"
    )


@dataclass
class Browser:
    """A signed-in browser: the test client, its person, and its SSO session."""

    client: FlaskClient
    user: User

    @property
    def cookie(self) -> str | None:
        cookie = self.client.get_cookie(COOKIE_NAME)
        return cookie.value if cookie is not None else None

    @property
    def session(self) -> SsoSession | None:
        return get_sso_sessions().get(self.cookie) if self.cookie else None

    def use(self, *client_ids: str) -> SsoSession:
        """Sign in to services, as the authorization endpoint records it."""
        assert self.cookie
        session = self.session
        for client_id in client_ids:
            session = get_sso_sessions().add_service(self.cookie, client_id)
        assert session is not None
        return session


def signed_in_browser(app: Any, email: str) -> Browser:
    client = app.test_client()
    user = make_user(email=email)
    SignIn(client).completed(email)
    browser = Browser(client, user)
    assert browser.session is not None
    return browser


@pytest.fixture
def ada(app: Any) -> Browser:
    return signed_in_browser(app, "ada@school.example")


def id_token_for(
    client_id: str,
    session: SsoSession,
    *,
    alg: str = "RS256",
    now: int | None = None,
    lifetime: int = 600,
    **extra: Any,
) -> str:
    """An ID Token as the provider issues them (OIDC Core §2), for use as ``id_token_hint``."""
    issued = int(datetime.now(UTC).timestamp()) if now is None else now
    claims = {
        "iss": get_issuer(),
        "aud": client_id,
        "sub": session.sub,
        "sid": session.sid,
        "iat": issued,
        "exp": issued + lifetime,
        "auth_time": session.auth_time,
        **extra,
    }
    return get_keyring().sign(claims, alg=alg)


def decode_with_our_jwks(client: FlaskClient, token: str, algorithms: list[str]) -> jwt.Token:
    """Check a token the way a relying service does: our published JWKS, pinned algorithms."""
    from joserfc.jwk import KeySet

    jwks = client.get("/.well-known/jwks.json").get_json()
    return jwt.decode(
        token, KeySet.import_key_set(jwks), algorithms=algorithms, registry=jws_registry(algorithms)
    )
