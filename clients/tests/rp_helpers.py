"""Helpers for the client library's tests: a service under test and a browser's journey."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_op import CLIENT_ID, CLIENT_SECRET, Clock, FakeOP
from flask import Flask

from secure_access_client import SecureAccess, current_user, login_required

RP_BASE = "http://localhost"


def rp_config(op: FakeOP, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "SECRET_KEY": "insecure-test-secret-key",
        "SECURE_ACCESS_ISSUER": op.issuer,
        "SECURE_ACCESS_CLIENT_ID": CLIENT_ID,
        "SECURE_ACCESS_CLIENT_SECRET": CLIENT_SECRET,
        "SECURE_ACCESS_BASE_URL": RP_BASE,
        "SECURE_ACCESS_POST_LOGOUT_REDIRECT_URI": RP_BASE + "/",
        "SECURE_ACCESS_SESSION_DIR": str(tmp_path / "sessions"),
        "SECURE_ACCESS_SERVICE_NAME": "Test service",
    }
    config.update({f"SECURE_ACCESS_{k}": v for k, v in overrides.items()})
    return config


def make_rp_app(op: FakeOP, tmp_path: Path, clock: Clock, **overrides: Any) -> Flask:
    """A small service using only the public API, with one page per kind of guard."""
    app = Flask("rp_under_test")
    app.config.update(rp_config(op, tmp_path, **overrides))
    sso = SecureAccess(app, clock=clock)

    @app.get("/")
    def home() -> str:
        status = "signed out" if sso.just_signed_out else "home"
        return f"{status}: {current_user.sub or 'anonymous'}"

    @app.get("/private")
    @login_required
    def private() -> str:
        org = current_user.organisation
        return f"hello {current_user.name} of {org.name if org else '-'} ({current_user.sub})"

    @app.get("/approve")
    @login_required(roles=["approver"])
    def approve() -> str:
        return "approve"

    @app.get("/pensions")
    @login_required(mfa=True)
    def pensions() -> str:
        return f"pensions {current_user.acr}"

    @app.get("/sensitive")
    @login_required(max_age=300)
    def sensitive() -> str:
        return "sensitive"

    @app.get("/whoami")
    def whoami() -> dict[str, Any]:
        user = current_user
        org = user.organisation
        return {
            "authenticated": user.is_authenticated,
            "iss": user.iss,
            "sub": user.sub,
            "names": [user.name, user.given_name, user.family_name],
            "email": user.email,
            "organisation": [org.name, org.urn, org.type] if org else None,
            "roles": list(user.roles),
            "amr": list(user.amr),
            "acr": user.acr,
            "sid": user.sid,
            "mfa": user.has_mfa,
        }

    @app.get("/token")
    @login_required
    def token() -> str:
        return sso.access_token() or "none"

    return app


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def local(url: str) -> str:
    """The path and query of a URL (the test client speaks to the RP by path)."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


class Journey:
    """One browser's sign-in, step by step: ``Journey(client, op).start().callback()``."""

    def __init__(self, client: Any, op: FakeOP) -> None:
        self.client = client
        self.op = op
        self.authorize_url = ""
        self.params: dict[str, str] = {}

    def start(self, path: str = "/private") -> Journey:
        response = self.client.get(path)
        assert response.status_code == 302, response.get_data(as_text=True)
        login = self.client.get(local(response.location))
        assert login.status_code == 302, login.get_data(as_text=True)
        self.authorize_url = login.location
        self.params = query(login.location)
        return self

    def callback_url(self, **authorize: Any) -> str:
        return local(self.op.authorize(self.authorize_url, **authorize))

    def callback(self, **authorize: Any) -> Any:
        return self.client.get(self.callback_url(**authorize))

    def sign_in(self, path: str = "/private", **authorize: Any) -> Any:
        response = self.start(path).callback(**authorize)
        assert response.status_code == 303, response.get_data(as_text=True)
        return response


def signed_in(client: Any) -> bool:
    return client.get("/private").status_code == 200


def refusal(response: Any) -> str:
    """The check name on the library's error page."""
    match = re.search(r"Reference: ([a-z0-9_-]+)", response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:500]
    return match.group(1)
