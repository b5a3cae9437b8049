"""Integration fixtures: the real Secure Access provider and real demo services on loopback.

The provider is ``idp.create_app`` with the suite's test settings, served on 127.0.0.1 at the
URL its issuer names (the socket is bound first, then the app is built with that address, as
in tests/interop). It has a database of its own (``..._rp`` on the PostgreSQL pass, a SQLite
file otherwise), because another app of the suite may be using the worker's main one in this
same process; it shares the worker's Redis database, which the suite cleans per test anyway.
Demo services (``clients/demo``) are served the same way, each registered with the provider
at its own loopback URL.

Headless Chromium runs on a thread of its own (Playwright allows one sync instance per thread,
and the suite's other browser fixtures may hold this process's main thread).

These tests need the provider (``idp``): without it (the library installed on its own) they
are skipped.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("idp", reason="the integration tests run the real provider (idp)")

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # the suite's shared test helpers live in the tests package
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from idp import create_app  # noqa: E402
from idp.config import Settings  # noqa: E402
from idp.extensions import db  # noqa: E402
from idp.services import clients as service_registry  # noqa: E402
from tests.browser_thread import browser_page, chromium  # noqa: E402, F401 (fixtures)
from werkzeug.serving import make_server  # noqa: E402

from tests.conftest import (  # noqa: E402
    clean_state,
    make_test_settings,
)


class _Slot:
    """A WSGI callable forwarding to an app attached after its socket is bound."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


class Loopback:
    """An app on 127.0.0.1:<free port>, built by ``factory(url)`` once the port is known."""

    def __init__(self, factory: Callable[[str], Any]) -> None:
        slot = _Slot()
        self._server = make_server("127.0.0.1", 0, slot, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = factory(self.url)
        slot.app = self.app
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


def provider_settings(tmp: Path, worker_id: str, url: str) -> Settings:
    """The suite's test settings (tests/conftest.py) with a database of this suite's own,
    served at ``url``."""
    return make_test_settings(tmp, worker_id, database_suffix="_rp", public_base_url=url)


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Loopback]:
    from flask_migrate import upgrade

    tmp = tmp_path_factory.mktemp("provider")

    def build(url: str) -> Flask:
        app = create_app(provider_settings(tmp, worker_id, url))
        with app.app_context():
            upgrade()
        return app

    server = Loopback(build)
    yield server
    server.stop()
    with server.app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_provider(provider: Loopback) -> Iterator[None]:
    """Every test starts from empty tables and an empty store, inside the provider's context."""
    clean_state(provider.app)
    with provider.app.app_context():
        yield
        db.session.remove()


@dataclass
class DemoServices:
    """Demo services started for one test, each registered with the provider at its URL."""

    provider: Loopback
    tmp: Path
    running: dict[str, Loopback] = field(default_factory=dict)

    def start(self, client_id: str) -> Loopback:
        from demo.app import create_app as create_demo_app
        from demo.services import BY_CLIENT_ID

        spec = BY_CLIENT_ID[client_id]

        def build(url: str) -> Flask:
            return create_demo_app(
                client_id,
                ISSUER=self.provider.url,
                BASE_URL=url,
                POST_LOGOUT_REDIRECT_URI=url + "/",
                SESSION_DIR=str(self.tmp / client_id),
            )

        server = Loopback(build)
        service_registry.register_service(
            client_id,
            spec.name,
            description=spec.description,
            start_url=server.url + "/",
            redirect_uris=[server.url + "/auth/callback"],
            post_logout_redirect_uris=[server.url + "/"],
            backchannel_logout_uri=server.url + "/auth/backchannel-logout",
            allowed_scopes=[
                "openid",
                "profile",
                "email",
                "organisation",
                "roles",
                "offline_access",
            ],
            grant_types=["authorization_code", "refresh_token"],
            require_mfa=spec.mfa,
            roles=[{"code": code, "name": name} for code, name in spec.roles],
            secret=spec.secret,
            actor="test",
        )
        db.session.commit()
        self.running[client_id] = server
        return server

    def stop(self) -> None:
        for server in self.running.values():
            server.stop()


@pytest.fixture
def demo_services(provider: Loopback, tmp_path: Path) -> Iterator[DemoServices]:
    clients_dir = str(Path(__file__).resolve().parents[2])
    if clients_dir not in sys.path:
        sys.path.insert(0, clients_dir)  # the demo package lives in clients/demo
    services = DemoServices(provider, tmp_path)
    yield services
    services.stop()


# -- the browser ---------------------------------------------------------------------------------
