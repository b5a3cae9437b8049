"""Liveness and readiness: /readyz names what is down, and recovers without a restart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from idp import create_app


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_when_everything_is_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):  # wait until it accepts connections (bounded: 5 s)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


@pytest.fixture
def private_redis() -> Iterator[int]:
    """A Redis server of this test's own, so it can be stopped without disturbing others."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = start_redis(port)
    yield port
    process.kill()


def test_readyz_names_redis_when_it_stops_and_recovers_without_restart(settings, private_redis):
    port = private_redis
    app = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"}))
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    subprocess.run(
        ["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False, capture_output=True
    )
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json["down"] == ["redis"]

    restarted = start_redis(port)
    try:
        up = client.get("/readyz")
        assert up.status_code == 200, up.json
    finally:
        restarted.kill()


def test_readyz_names_the_database_when_it_is_unreachable(settings):
    port = free_port()  # nothing listens here
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/none?connect_timeout=1"
    app = create_app(settings.model_copy(update={"database_url": url}))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json["down"]
