"""Routine audit rows written in batches by each process's writer (issue 4).

Each test builds a second app on the same database with ``audit_batch_seconds`` set (the test
default is 0: synchronous). Rows are read back from the real database, on a fresh snapshot,
because the writer commits on its own connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from pydantic import ValidationError
from sqlalchemy import select, text

from idp import create_app
from idp.config import Settings
from idp.extensions import db
from idp.models import AuditEvent
from idp.services import audit
from idp.services.audit_writer import AuditWriter, get_audit_writer
from tests.conftest import ROOT, IsolatedClient
from tests.factories import make_user
from tests.oidc.conftest import register_machine
from tests.oidc.rp import RP

TOKEN_ISSUED = "oidc.token_issued"
ORIGIN = audit.RequestOrigin(ip="192.0.2.9", user_agent="batch-job/2", request_id="rid-batch")


@contextmanager
def batch_app(settings: Settings, seconds: float, **changes: object) -> Iterator[Flask]:
    """A second app on the test database whose routine audit rows are batched."""
    changed = settings.model_copy(update={"audit_batch_seconds": seconds, **changes})
    app = create_app(changed)
    app.test_client_class = IsolatedClient
    try:
        yield app
    finally:
        writer(app).close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def fast(app: Flask, settings: Settings) -> Iterator[Flask]:
    """Batches every 0.05 s."""
    with batch_app(settings, 0.05) as batched:
        yield batched


@pytest.fixture
def slow(app: Flask, settings: Settings) -> Iterator[Flask]:
    """Batches every 5 s (the most allowed): nothing is written during a test unless flushed."""
    with batch_app(settings, 5) as batched:
        yield batched


def writer(app: Flask) -> AuditWriter:
    found = get_audit_writer(app)
    assert found is not None
    return found


def rows(event: str = TOKEN_ISSUED) -> list[AuditEvent]:
    """The committed rows for ``event``, oldest first, read on a fresh snapshot."""
    db.session.rollback()
    found = db.session.scalars(
        select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
    ).all()
    return list(found)


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def machine(app: Flask) -> RP:
    """A service allowed the client_credentials grant, talking to ``app``."""
    return register_machine(app.test_client())


def grant(rp: RP, request_id: str) -> None:
    response = rp.post(
        "/token",
        {"grant_type": "client_credentials"},
        headers={"User-Agent": "nightly-export/1.0", "X-Request-Id": request_id},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 200, response.get_json()


# Both ways a client_credentials grant can be answered: the full Authlib path (whose _save
# hands the row over after its commit) and the lean machine lane (idp/oidc/machine_lane.py).
LANES = [pytest.param(False, id="full-path"), pytest.param(True, id="machine-lane")]


@pytest.mark.parametrize("lane", LANES)
def test_a_grant_is_recorded_by_the_writer_with_its_request_origin(app, settings, lane):
    with batch_app(settings, 5, machine_lane=lane) as batched:
        grant(machine(batched), "rid-cc-1")
        # Not in the request's transaction: it waits in the writer until the next batch.
        assert rows() == []
        assert writer(batched).pending == 1

        writer(batched).flush()

        [row] = rows()
        assert (row.actor_id, row.target_id, row.target_type) == (
            "nightly-export",
            "nightly-export",
            "service",
        )
        assert (row.ip, row.user_agent, row.request_id) == (
            "192.0.2.7",
            "nightly-export/1.0",
            "rid-cc-1",
        )
        assert row.details["grant_type"] == "client_credentials"
        assert writer(batched).pending == 0


@pytest.mark.parametrize("lane", LANES)
def test_the_writer_writes_each_interval_without_being_asked(app, settings, lane):
    with batch_app(settings, 0.05, machine_lane=lane) as batched:
        rp = machine(batched)
        for n in range(3):
            grant(rp, f"rid-tick-{n}")
        assert eventually(lambda: len(rows()) == 3)
        assert [r.request_id for r in rows()] == ["rid-tick-0", "rid-tick-1", "rid-tick-2"]


@pytest.mark.parametrize("lane", LANES)
def test_code_and_refresh_grants_are_recorded_after_their_commit(app, settings, lane):
    """Both paths commit the refresh token first, then hand the row over (the lane's
    one-statement writes on PostgreSQL commit themselves and leave the session unused)."""
    with batch_app(settings, 5, machine_lane=lane) as slow:
        user = make_user(email="ada@school.example")
        rp = RP.register(slow.test_client())
        issued = rp.tokens(rp.login("ada@school.example", scope="openid offline_access"))
        # The refresh token was committed by the grant itself, not left to the audit batch.
        assert rp.refresh(issued["refresh_token"]).status_code == 200
        assert rows() == []

        writer(slow).flush()
        recorded = rows()
    assert_recorded(recorded, user.sub)


def assert_recorded(recorded: list[AuditEvent], sub: str) -> None:

    assert [r.details["grant_type"] for r in recorded] == ["authorization_code", "refresh_token"]
    assert {(r.actor_id, r.target_id, r.target_type) for r in recorded} == {
        ("school-portal", sub, "user")
    }
    assert recorded[0].details["family_id"] == recorded[1].details["family_id"] is not None


def test_rows_from_many_threads_each_arrive_once(fast):
    threads, each = 8, 150
    start = threading.Barrier(threads)

    def produce(t: int) -> None:
        with fast.app_context():  # an app context and no request: origin is passed in
            start.wait()
            for n in range(each):
                audit.record_routine(
                    "test.routine", actor=f"thread-{t}", origin=ORIGIN, thread=t, n=n
                )

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    writer(fast).flush()

    written = rows("test.routine")
    assert len(written) == threads * each
    counts = Counter((r.details["thread"], r.details["n"]) for r in written)
    assert set(counts.values()) == {1}
    assert len(counts) == threads * each
    assert {(r.ip, r.user_agent, r.request_id) for r in written} == {
        ("192.0.2.9", "batch-job/2", "rid-batch")
    }


@pytest.mark.parametrize("key", ["client_secret", "Access_Token", "password"])
def test_a_secret_looking_detail_is_refused_when_recorded(slow, key):
    with slow.app_context(), pytest.raises(ValueError, match="secrets"):
        audit.record_routine("test.routine", actor="a", origin=ORIGIN, **{key: "hunter2"})
    assert writer(slow).pending == 0
    writer(slow).flush()
    assert rows("test.routine") == []


def test_rows_wait_while_the_database_refuses_them_and_are_written_when_it_is_back(fast, caplog):
    """The table is renamed away (every write fails, as with the database down), then back."""
    caplog.set_level("WARNING", logger="idp.services.audit_writer")
    db.session.remove()  # hold no lock on the table while it is renamed
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        with fast.app_context():
            for n in range(5):
                audit.record_routine(
                    "test.routine", actor="a", origin=ORIGIN, marker=f"secret-ish-{n}"
                )
        assert eventually(lambda: "Could not write 5 routine audit rows" in caplog.text)
        assert writer(fast).pending == 5
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))

    assert eventually(lambda: len(rows("test.routine")) == 5)
    time.sleep(0.2)  # a few more ticks: nothing is written twice
    assert sorted(r.details["marker"] for r in rows("test.routine")) == [
        f"secret-ish-{n}" for n in range(5)
    ]
    assert writer(fast).pending == 0
    assert "secret-ish" not in caplog.text  # the warning counts rows, never shows them


def test_a_full_buffer_makes_the_caller_write_its_own_row(slow):
    writer(slow).max_rows = 2
    with slow.app_context():
        for n in range(3):
            audit.record_routine("test.routine", actor="a", origin=ORIGIN, n=n)
    # The third did not fit: written at once, by the caller, in its own transaction.
    assert [r.details["n"] for r in rows("test.routine")] == [2]
    assert writer(slow).pending == 2

    writer(slow).flush()
    assert sorted(r.details["n"] for r in rows("test.routine")) == [0, 1, 2]


def test_a_forked_process_drops_inherited_rows_and_writes_its_own(slow):
    with slow.app_context():
        audit.record_routine("test.routine", actor="parent", origin=ORIGIN)
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        status = 1
        try:
            own = writer(slow)
            own.engine.dispose(close=False)  # never share the parent's connections
            if own.pending == 0:
                with slow.app_context():
                    audit.record_routine("test.routine", actor="child", origin=ORIGIN)
                own.flush()
                status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    assert [r.actor_id for r in rows("test.routine")] == ["child"]
    writer(slow).flush()
    assert sorted(r.actor_id for r in rows("test.routine")) == ["child", "parent"]


EXIT_SCRIPT = """
from idp import create_app
from idp.services import audit
from idp.services.audit_writer import get_audit_writer

app = create_app()
with app.app_context():
    for n in range(3):
        audit.record_routine("test.at_exit", actor="exiting", n=n)
assert get_audit_writer(app).pending == 3
"""


def test_a_normal_exit_writes_what_is_buffered(app, settings, tmp_path: Path):
    env = {
        **os.environ,
        "IDP_ENV": "test",
        "IDP_DATABASE_URL": str(settings.database_url),
        "IDP_INSTANCE_PATH": str(tmp_path),
        "IDP_AUDIT_BATCH_SECONDS": "5",  # longer than the process lives: only the exit writes
        "IDP_LOG_LEVEL": "WARNING",
    }
    env.pop("IDP_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(r.details["n"] for r in rows("test.at_exit")) == [0, 1, 2]


def test_batch_interval_setting():
    assert Settings(_env_file=None, env="test").audit_batch_seconds == 0  # type: ignore[call-arg]
    assert Settings(_env_file=None, env="development").audit_batch_seconds == 0.2  # type: ignore[call-arg]
    explicit = Settings(_env_file=None, env="test", audit_batch_seconds=0.05)  # type: ignore[call-arg]
    assert explicit.audit_batch_seconds == 0.05
    for wrong in (-0.1, 5.5):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, audit_batch_seconds=wrong)  # type: ignore[call-arg]
