"""Interoperability fixtures: our provider served on loopback at the URL its issuer names.

A relying-party library checks that the issuer in the discovery document is the URL it
fetched it from, so the app under test must know its own address before it is built. The
server socket is therefore bound first (port 0, so no race for a free port), the app is then
created with ``public_base_url`` set to that address, and the server starts serving it.

This directory's ``app`` overrides the suite-wide one, so the autouse cleaning fixture and
:func:`tests.factories.make_user` work against this app. On the PostgreSQL + Redis pass the app
gets its own database (``..._interop``), never the worker's main one, which another app in the
same worker may be using.

The browser is Debian's headless Chromium with the e2e tests' arguments, driven by Playwright's
sync API on a thread of its own (:class:`BrowserThread`). Playwright allows one sync instance
per thread, and tests/e2e's session-wide browser may already hold the main thread's in the
same pytest worker; tests/e2e's fixtures are not visible here anyway.

The Node tooling (openid-client) lives in bench/node with its own lock file; it is installed
with ``npm ci`` the first time a test needs it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from idp import create_app
from idp.config import Settings
from idp.extensions import db
from tests.browser_thread import browser_page, chromium  # noqa: F401 (fixtures)
from tests.conftest import (
    IsolatedClient,
    make_test_settings,
)

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "bench" / "node"


class _AppSlot:
    """A WSGI callable that forwards to an app attached after the socket is bound."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the interop app is not attached yet"
        return self.app(environ, start_response)


class InteropServer:
    """The provider on 127.0.0.1:<free port>, its issuer equal to that URL."""

    def __init__(self, app_factory: Any) -> None:
        slot = _AppSlot()
        self._server = make_server("127.0.0.1", 0, slot, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.app: Flask = app_factory(self.url)
        slot.app = self.app
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


def interop_settings(tmp: Path, worker_id: str, public_base_url: str) -> Settings:
    """The suite's test settings (tests/conftest.py) with a database of this suite's own,
    served at ``public_base_url``."""
    return make_test_settings(
        tmp, worker_id, database_suffix="_interop", public_base_url=public_base_url
    )


@pytest.fixture(scope="session")
def interop_server(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[InteropServer]:
    from flask_migrate import upgrade

    tmp = tmp_path_factory.mktemp("interop")

    def build(url: str) -> Flask:
        app = create_app(interop_settings(tmp, worker_id, url))
        app.test_client_class = IsolatedClient
        with app.app_context():
            upgrade()
        return app

    server = InteropServer(build)
    server.start()
    yield server
    server.stop()
    with server.app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def app(interop_server: InteropServer) -> Flask:
    """Overrides the suite's app for this directory: the one the live server serves."""
    return interop_server.app


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """One ``npm ci`` at a time on this machine for this checkout (pytest-xdist workers)."""
    digest = hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"secure-access-bench-node-{digest}.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_node_tooling() -> Path:
    """bench/node's packages, installed from its lock file if missing; returns ``node``."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js 20+ and npm are needed for the interoperability tests")
    with _install_lock():
        if not (NODE_DIR / "node_modules" / "openid-client").is_dir():
            result = subprocess.run(
                [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                pytest.fail(f"npm ci --prefix bench/node failed:\n{result.stderr[-2000:]}")
    return Path(node)


@pytest.fixture(scope="session")
def node() -> Path:
    """The ``node`` executable, with bench/node's packages installed."""
    return ensure_node_tooling()
