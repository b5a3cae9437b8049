"""Shared fixtures: one app per test worker on the chosen back end, real services, clean state.

``IDP_TEST_BACKEND=embedded`` (default) uses a SQLite file and the in-process store.
``IDP_TEST_BACKEND=server`` uses a fresh PostgreSQL database per worker (built by the
migrations, not ``create_all``) and a Redis database number per worker. Each test starts from
empty tables and an empty store. We delete rows after each test rather than roll back a
savepoint because browser tests drive a live server in another thread, which must see
committed data; one mechanism for every test keeps them honest.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from idp import create_app
from idp.config import Settings
from idp.extensions import db
from idp.models import Base
from idp.store import get_store
from tests.mailbox import clear_outbox

BACKEND = os.environ.get("IDP_TEST_BACKEND", "embedded")
ROOT = Path(__file__).resolve().parent.parent


# Lets several test runs share one PostgreSQL and Redis server without touching each other's
# data: each slot gets its own databases. CI uses slot 0.
SLOT = int(os.environ.get("IDP_TEST_SLOT", "0"))


def worker_number(worker_id: str) -> int:
    match = re.search(r"\d+", worker_id)
    return int(match.group()) if match else 0


def server_database_url(worker_id: str, suffix: str = "") -> str:
    """Create (or re-create) this worker's own PostgreSQL database and return its URL.

    ``suffix`` names a second database for a second provider in the same worker (the
    interoperability and relying-party suites run their own on loopback)."""
    base = os.environ.get("IDP_TEST_DATABASE_URL")
    if not base:
        pytest.exit("IDP_TEST_BACKEND=server needs IDP_TEST_DATABASE_URL", returncode=2)
    url = make_url(base).set(drivername="postgresql+psycopg")
    name = f"idp_test_{SLOT}_{worker_number(worker_id)}{suffix}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def server_redis_url(worker_id: str) -> str:
    base = os.environ.get("IDP_TEST_REDIS_URL")
    if not base:
        pytest.exit("IDP_TEST_BACKEND=server needs IDP_TEST_REDIS_URL", returncode=2)
    # Database 0 is left alone; each slot and worker gets its own numbered database (1-15).
    return re.sub(r"/\d*$", "", base.rstrip("/")) + f"/{1 + SLOT * 2 + worker_number(worker_id)}"


def make_test_settings(
    tmp: Path, worker_id: str, *, database_suffix: str = "", **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "instance_path": str(tmp),
        "public_base_url": "http://localhost",
        # Cheap hashing in tests (the production floor is checked by the config tests).
        "argon2_time_cost": 1,
        "argon2_memory_cost": 64,
        "argon2_parallelism": 1,
        "log_level": "WARNING",
        "database_url": f"sqlite:///{tmp / 'test.sqlite3'}",
        "redis_url": None,
    }
    if BACKEND == "server":
        values["database_url"] = server_database_url(worker_id, database_suffix)
        values["redis_url"] = server_redis_url(worker_id)
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Settings:
    return make_test_settings(tmp_path_factory.mktemp("instance"), worker_id)


class IsolatedClient(FlaskClient):
    """Runs each request in a fresh context, as a real server does.

    Tests keep an app context pushed (for ``db.session``); Flask would reuse it for every
    request, sharing ``g`` between requests, which production never does and which can hide
    bugs. A fresh ``contextvars.Context`` per request (buffered, so teardown happens inside
    it) gives every request its own app context, exactly like a server.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    from flask_migrate import upgrade

    app = create_app(settings)
    app.test_client_class = IsolatedClient
    with app.app_context():
        upgrade()  # the schema comes from the migrations, exactly as in production
    yield app
    with app.app_context():
        db.engine.dispose()


def clean_state(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        get_store().flushdb()
    clear_outbox(app.instance_path)


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses the app starts from empty tables and an empty store."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    clean_state(app)
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
