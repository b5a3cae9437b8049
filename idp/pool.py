"""Database connection liveness: ping a pooled connection only when it has sat idle.

DESIGN.md §9 promises that a PostgreSQL restart never needs an idp restart. SQLAlchemy's
``pool_pre_ping`` keeps that promise by sending ``SELECT 1`` on *every* checkout, which is one
extra network round trip on every request (about 0.3-0.5 ms; issue 3's sign-in budget is
3.7 ms for everything besides argon2). This module keeps the promise more cheaply, with the
"custom pessimistic ping" SQLAlchemy documents for ``PoolEvents.checkout``:

- a connection checked in less than :data:`IDLE_PING_SECONDS` ago is handed out as it is:
  under load connections are never idle, and one that was just used was just proven alive;
- a connection idle for longer is pinged first; if the ping fails we raise
  ``DisconnectionError``, and the pool discards it and retries with a fresh connection, so the
  request after a restart (or after a firewall dropped an idle connection) succeeds;
- a connection that dies mid-burst (PostgreSQL restarted while busy) makes that one request
  fail with ``OperationalError``, which ``idp.web.errors`` turns into the "try again shortly"
  page (503); SQLAlchemy then invalidates the whole pool, so the next requests reconnect.
  That is also what ``pool_pre_ping`` gives for a restart *during* a request.

``pool_recycle`` (set in ``idp.setup_database``) additionally replaces connections after
30 minutes, so none outlives a server-side idle timeout unnoticed.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

#: A connection unused for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 5.0
RECYCLE_SECONDS = 1800

_CHECKED_IN_AT = "idp_checked_in_at"


def ping_when_idle(engine: Engine) -> None:
    """Attach the idle-ping listeners to ``engine``'s pool (use instead of pool_pre_ping)."""
    event.listen(engine.pool, "checkin", _checked_in)
    event.listen(engine.pool, "checkout", _checking_out)


def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _checking_out(
    dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    checked_in_at = record.info.get(_CHECKED_IN_AT)
    if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
        return  # brand new (just connected) or used moments ago: alive
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()  # psycopg opened a transaction for the ping
    except Exception as error:  # any failure means: do not hand this connection out
        # The pool invalidates this connection and retries the checkout with a new one.
        raise exc.DisconnectionError("idle connection failed its ping") from error
