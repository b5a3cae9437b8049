"""DESIGN.md §9: a PostgreSQL restart never needs an idp restart, without pool_pre_ping.

``idp.pool`` pings only connections that sat idle (issue 3: pre-ping cost a round trip on
every request). Here PostgreSQL drops every pooled connection, as a restart or an idle timeout
does, and the next request must still succeed: the dead connection is noticed and replaced
before the request gets it. PostgreSQL only: SQLite has no server to restart.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from idp import pool
from idp.extensions import db
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "server", reason="needs PostgreSQL")


def drop_every_connection() -> int:
    """What a PostgreSQL restart does to our pool: every server process of ours is ended."""
    db.session.remove()  # nothing checked out while the connections die
    admin = create_engine(db.engine.url, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    return int(ended)


def test_a_connection_dropped_while_idle_is_replaced_before_a_request_uses_it(
    app, client, monkeypatch
):
    assert client.get("/readyz").status_code == 200  # the pool now holds a live connection
    assert drop_every_connection() >= 1
    # Every pooled connection counts as idle now (instead of waiting IDLE_PING_SECONDS).
    monkeypatch.setattr(pool, "IDLE_PING_SECONDS", 0.0)
    try:
        response = client.get("/readyz")
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["checks"]["database"] == "ok"
    finally:
        db.engine.dispose()  # leave no half-dead connection to the next test
