"""The provider under its production HTTP server, granian, configured exactly as the image is.

Every other test drives the app in-process; this one starts ``granian`` as a child process
with the ``GRANIAN_*`` settings read from the Dockerfile (only the address, port and process
counts changed), so a server setting or a WSGI difference that breaks the app shows up here
and not in production: the security headers, the Host allow-list, connections kept alive,
a token grant, the body limit answered as the token endpoint's JSON error (L02) and the
header limit enforced by the server before anything parses the request.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp.config import Settings
from tests.oidc.rp import RP

ROOT = Path(__file__).resolve().parents[2]
GRANIAN = Path(sys.executable).parent / "granian"


def dockerfile_granian_settings() -> dict[str, str]:
    """The ``ENV GRANIAN_*=...`` values of the production image."""
    text = (ROOT / "Dockerfile").read_text()
    found = dict(re.findall(r"\b(GRANIAN_[A-Z0-9_]+)=(\S+)", text))
    assert "GRANIAN_INTERFACE" in found, "the Dockerfile no longer configures granian"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"granian exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz", headers={"Host": "localhost"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("granian did not start serving")


@pytest.fixture
def server(app, settings: Settings) -> Iterator[int]:
    if not GRANIAN.exists():
        pytest.skip("granian is not installed in this environment")
    port = free_port()
    env = {
        **os.environ,
        **dockerfile_granian_settings(),
        "GRANIAN_HOST": "127.0.0.1",
        "GRANIAN_PORT": str(port),
        "GRANIAN_WORKERS": "1",
        "GRANIAN_BLOCKING_THREADS": "2",
        "GRANIAN_LOG_CONFIG": str(ROOT / "config" / "granian-logging.json"),
        "IDP_ENV": settings.env,
        "IDP_INSTANCE_PATH": settings.instance_path or "",
        "IDP_PUBLIC_BASE_URL": settings.public_base_url,
        "IDP_DATABASE_URL": settings.database_url or "",
        "IDP_REDIS_URL": settings.redis_url or "",
        "IDP_SECRET_KEY": settings.secret_key.get_secret_value(),
        "IDP_LOG_LEVEL": "WARNING",
    }
    for name in ("argon2_time_cost", "argon2_memory_cost", "argon2_parallelism"):
        env[f"IDP_{name.upper()}"] = str(getattr(settings, name))
    env = {k: v for k, v in env.items() if v != ""}
    process = subprocess.Popen(
        [str(GRANIAN), "idp:create_app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def test_pages_carry_the_security_headers_and_connections_stay_open(server):
    conn = connect(server)
    conn.request("GET", "/healthz", headers={"Host": "localhost"})
    first = conn.getresponse()
    first.read()
    local_port = conn.sock.getsockname()[1]
    conn.request("GET", "/sign-in", headers={"Host": "localhost"})
    page = conn.getresponse()
    body = page.read().decode()
    assert first.status == 200
    assert page.status == 200
    assert "Sign in" in body
    # The same TCP connection served both requests (keep-alive, DESIGN §8).
    assert conn.sock.getsockname()[1] == local_port
    assert page.getheader("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in page.getheader("Content-Security-Policy", "")


def test_an_unknown_host_is_refused(server):
    conn = connect(server)
    conn.request("GET", "/healthz", headers={"Host": "attacker.example"})
    assert conn.getresponse().status == 400


def test_a_client_credentials_grant_through_the_server(server, client):
    machine = RP.register(
        client,
        client_id="nightly-export",
        redirect_uris=(),
        grant_types=("client_credentials",),
        scopes=("openid",),
    )
    basic = base64.b64encode(f"{machine.client_id}:{machine.secret}".encode()).decode()
    conn = connect(server)
    conn.request(
        "POST",
        "/token",
        body="grant_type=client_credentials",
        headers={
            "Host": "localhost",
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    response = conn.getresponse()
    payload = response.read()
    assert response.status == 200, payload
    assert b'"access_token"' in payload
    assert response.getheader("Cache-Control") == "no-store"


def test_a_body_over_the_limit_gets_the_token_endpoints_json_error(server, settings):
    conn = connect(server)
    conn.putrequest("POST", "/token", skip_host=True)
    conn.putheader("Host", "localhost")
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Content-Length", str(settings.max_request_bytes + 1))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    assert b'"invalid_request"' in response.read()


def test_headers_over_the_server_limit_never_reach_the_app(server):
    limit = int(dockerfile_granian_settings()["GRANIAN_HTTP1_BUFFER_SIZE"])
    conn = connect(server)
    conn.request("GET", "/healthz", headers={"Host": "localhost", "X-Padding": "a" * (2 * limit)})
    try:
        status = conn.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionResetError):
        status = None  # closed without an answer: also refused
    assert status in (None, 400, 431)
