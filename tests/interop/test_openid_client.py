"""Interoperability: openid-client, a certified relying-party library we did not write.

``bench/node/rp.mjs`` is a small relying party built on openid-client (npm). Against our
provider, served at the URL its issuer names, it discovers the metadata (issuer pinned),
sends headless Chromium through the code flow with PKCE S256, state and nonce, and the person
signs in on our real pages. It then redeems the code with client_secret_basic, validates the
ID token, calls UserInfo, refreshes, calls UserInfo again, and builds an RP-Initiated Logout
URL that brings the browser back to its post-logout URI with its state. Each step is a JSON
line on its stdout; this test asserts on them and on where the browser ends up.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from idp.services.clients import register_service
from idp.services.transaction import transaction
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.interop.conftest import NODE_DIR

pytestmark = pytest.mark.e2e

CLIENT_ID = "interop-openid-client"
CLIENT_SECRET = "interop-test-secret-for-openid-client-0123456789"
SCOPES = ["openid", "profile", "email", "offline_access"]
#: How long any one step of the relying party may take before the test gives up.
STEP_SECONDS = 30

# The endpoints this test needs, by Flask endpoint name (the OIDC and logout blueprints).
PROTOCOL_ENDPOINTS = ("oidc.authorize", "oidc.token", "oidc.userinfo")
LOGOUT_ENDPOINT = "oidc_logout.end_session"


class RelyingParty:
    """``node rp.mjs`` as a subprocess, its JSON lines read on a thread into a queue."""

    def __init__(self, node: Path, issuer: str) -> None:
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            [
                str(node),
                str(NODE_DIR / "rp.mjs"),
                "--issuer",
                issuer,
                "--client-id",
                CLIENT_ID,
                "--scope",
                " ".join(SCOPES),
                "--timeout",
                "120",
            ],
            env={"PATH": "/usr/bin:/bin", "RP_CLIENT_SECRET": CLIENT_SECRET},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"step": "unparsable", "line": line})
        self.lines.put(None)

    def expect(self, step: str, timeout: float = STEP_SECONDS) -> dict[str, Any]:
        """The next line for ``step``; fails on an error line, an exit or a timeout."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"rp.mjs said nothing about {step!r} in {timeout} s; {self.story()}")
            if line is None:
                pytest.fail(f"rp.mjs exited before {step!r}; {self.story()}")
            self.seen.append(line)
            if line["step"] == "error":
                pytest.fail(f"rp.mjs failed before {step!r}: {line['message']}; {self.story()}")
            if line["step"] == step:
                return line

    def story(self) -> str:
        steps = ", ".join(line["step"] for line in self.seen) or "nothing"
        return f"steps seen: {steps}"

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


@pytest.fixture
def relying_party(app: Flask, node: Path, interop_server: Any) -> Iterator[RelyingParty]:
    _require_endpoints(app, PROTOCOL_ENDPOINTS)
    rp = RelyingParty(node, interop_server.url)
    yield rp
    rp.stop()


def _require_endpoints(app: Flask, names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in app.view_functions]
    if missing:
        pytest.skip(f"the provider has no {', '.join(missing)} endpoint yet")


def test_openid_client_signs_in_refreshes_and_logs_out(
    app, interop_server, relying_party, browser_page
):
    rp, browser, issuer = relying_party, browser_page, interop_server.url
    ready = rp.expect("ready")
    assert ready["issuer"] == issuer

    with transaction():
        register_service(
            CLIENT_ID,
            "Interoperability test service",
            redirect_uris=[ready["redirect_uri"]],
            post_logout_redirect_uris=[ready["post_logout_redirect_uri"]],
            allowed_scopes=SCOPES,
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="client_secret_basic",
            secret=CLIENT_SECRET,
            actor="interop-test",
            access_policy="open",  # access is not the point here (issue 7)
        )
    user = make_user(email="ada.interop@school.example", given_name="Ada", family_name="Lovelace")
    email, expected_sub = user.email, user.sub  # sub: opaque and stable (OIDC Core §5.7)

    # The real sign-in pages, in Chromium.
    def sign_in(page: Any) -> str:
        page.goto(ready["authorization_url"])
        page.fill("#email", email)
        page.fill("#password", DEFAULT_PASSWORD)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(ready["redirect_uri"] + "?*")
        return str(page.locator("h1").inner_text())

    assert browser(sign_in) == "Signed in to the interoperability test service"

    callback = rp.expect("callback")
    assert callback["iss"] == issuer  # RFC 9207
    tokens = rp.expect("tokens")
    claims = tokens["claims"]
    assert claims["iss"] == issuer
    assert claims["aud"] == CLIENT_ID or CLIENT_ID in claims["aud"]
    assert claims["sub"] == expected_sub
    assert tokens["id_token_alg"] == "RS256"
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["has_refresh_token"]

    userinfo = rp.expect("userinfo")["userinfo"]
    assert userinfo["sub"] == expected_sub
    assert userinfo["email"] == email

    refreshed = rp.expect("refresh")
    assert refreshed["has_access_token"]
    assert refreshed["access_token_changed"]
    assert refreshed["refresh_token_rotated"]
    assert refreshed["userinfo_sub"] == expected_sub
    if refreshed["id_token_claims"] is not None:
        assert refreshed["id_token_claims"]["sub"] == expected_sub

    # RP-Initiated Logout with a valid id_token_hint: no confirmation page, straight back.
    end_session = rp.expect("end_session_url")
    if LOGOUT_ENDPOINT not in app.view_functions:
        pytest.skip(
            "sign-in, ID token, UserInfo and refresh passed; RP-Initiated Logout not tested: "
            f"the provider has no {LOGOUT_ENDPOINT} endpoint yet"
        )

    def sign_out(page: Any) -> str:
        page.goto(end_session["url"])
        page.wait_for_url(ready["post_logout_redirect_uri"] + "?*")
        return str(page.url)

    assert f"state={end_session['state']}" in browser(sign_out)
    signed_out = rp.expect("signed_out")
    assert signed_out["state_matches"]
    assert rp.process.wait(timeout=STEP_SECONDS) == 0
