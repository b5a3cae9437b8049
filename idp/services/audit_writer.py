"""The per-process writer of routine audit rows: one multi-row INSERT and one commit per batch.

Issue 4: writing each ``oidc.token_issued`` row with its own INSERT and COMMIT was about a
quarter of a client_credentials grant's CPU and most of PostgreSQL's share. Routine records
(:func:`idp.services.audit.record_routine`) are buffered here instead, and a daemon thread
writes whatever is buffered every ``audit_batch_seconds`` with one Core ``INSERT`` executed
with the list of rows inside ``engine.begin()``. Security events (security-requirements.md
K03) never come here: :func:`idp.services.audit.record` keeps them in the caller's transaction.

What this promises, and what it does not:

- **Nothing is dropped silently.** A failed write (the database is down) keeps the rows and
  tries again on the next tick, logging a warning that names how many rows, never their
  contents. The buffer is bounded (:data:`MAX_BUFFERED_ROWS`): when it is full the caller
  writes its own row at once, in a short transaction of its own (backpressure), and sees the
  error if that fails too.
- **A normal exit writes everything**: an ``atexit`` hook flushes every writer.
- **A process killed with SIGKILL** (or dying in a crash) loses the rows of its last interval,
  at most ``audit_batch_seconds`` of routine records. That is the trade for the throughput.
- Rows carry the time they were recorded (``occurred_at``), not the time they were written;
  ``id`` order is write order, as it already was across concurrent transactions.
- Redis is not involved: losing Redis never loses an audit record (DESIGN.md).

The writer needs no Flask context: it holds the app's engine (captured when the app is built)
and uses only SQLAlchemy Core. It belongs to one process: granian and gunicorn may fork after
the app is built, so the first use in a new process forgets rows inherited from the parent
(the parent writes those) and starts the thread afresh.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any, Final

from flask import Flask
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from idp.config import Settings
from idp.extensions import db
from idp.models.audit import AuditEvent

log = logging.getLogger(__name__)

#: One statement object, compiled once; executed with a list of rows it is one multi-row
#: INSERT (SQLAlchemy's "insertmanyvalues" on PostgreSQL).
_INSERT: Final = insert(AuditEvent.__table__)  # type: ignore[arg-type]  # Core only
#: The most rows a process keeps waiting: it bounds the memory a database outage can take.
#: Beyond it callers write their own rows (backpressure, never a silent drop).
MAX_BUFFERED_ROWS: Final = 10_000

#: Every writer in this process, for the exit hook. Weak, so a discarded app's idle writer can
#: go; a writer with rows has a running thread, which holds it.
_WRITERS: weakref.WeakSet[AuditWriter] = weakref.WeakSet()


class AuditWriter:
    """Buffers audit rows (dicts of ``audit_events`` columns) and writes them in batches."""

    def __init__(
        self, engine: Engine, interval: float, *, max_rows: int = MAX_BUFFERED_ROWS
    ) -> None:
        if interval <= 0:
            raise ValueError("the batch interval must be positive")
        self.engine = engine
        self.interval = interval
        self.max_rows = max_rows
        self._reset()
        _WRITERS.add(self)

    def _reset(self) -> None:
        """A clean state for this process: no rows, no thread, fresh locks. The pid is set
        last, so a thread that sees it current also sees the new lock and buffer."""
        self._lock = threading.Lock()  # guards _rows and _thread
        self._write_lock = threading.Lock()  # one batch at a time, in order
        self._closed = threading.Event()
        self._rows: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def _own_process(self) -> None:
        """After a fork, drop what the parent buffered (the parent writes it) and start over.

        The parent's locks are not taken: a thread that held one does not exist here. A
        per-pid lock makes the reset happen once even if two threads arrive together.
        """
        pid = os.getpid()
        if self._pid == pid:
            return
        with _fork_lock(pid):
            if self._pid != pid:
                self._reset()

    @property
    def pending(self) -> int:
        """How many rows wait to be written in this process."""
        self._own_process()
        with self._lock:
            return len(self._rows)

    def write(self, row: dict[str, Any]) -> None:
        """Buffer ``row`` for the next batch, or, when the buffer is full, write it now in a
        transaction of its own (raising if that fails: the caller must know)."""
        self._own_process()
        with self._lock:
            if len(self._rows) < self.max_rows and not self._closed.is_set():
                self._rows.append(row)
                if self._thread is None:
                    self._start()
                return
        with self.engine.begin() as connection:
            connection.execute(_INSERT, [row])

    def flush(self) -> None:
        """Write everything buffered now. If the write fails the rows stay buffered (for the
        next tick) and the error is raised."""
        self._own_process()
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return
            try:
                with self.engine.begin() as connection:
                    connection.execute(_INSERT, rows)
            except BaseException:
                with self._lock:
                    self._rows[:0] = rows  # back in front, in order, for the next attempt
                raise

    def close(self) -> None:
        """Stop the thread and write what is left (at exit, and for tests)."""
        self._own_process()
        self._closed.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(max(5.0, 2 * self.interval))
        self.flush()

    def _start(self) -> None:
        """Start this process's thread (called with ``_lock`` held, on first use)."""
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """The thread's loop: a batch every interval until the writer is closed."""
        closed = self._closed
        while not closed.wait(self.interval):
            self._tick()

    def _tick(self) -> None:
        """One interval's work: write the batch, or keep it and say so."""
        try:
            self.flush()
        except Exception as error:
            # The error's text may quote the rows (SQLAlchemy adds the parameters): only its
            # class, and how many rows wait, go in the log.
            log.warning(
                "Could not write %d routine audit rows (%s); kept, retrying in %.2gs",
                self.pending,
                type(error).__name__,
                self.interval,
            )


_FORK_LOCKS: dict[int, threading.Lock] = {}


def _fork_lock(pid: int) -> threading.Lock:
    """One lock per process id, created by whichever thread asks first (``setdefault`` is
    atomic), so it can never have been inherited in a locked state from a parent."""
    return _FORK_LOCKS.setdefault(pid, threading.Lock())


@atexit.register
def _flush_all_at_exit() -> None:
    """A normal exit writes every buffered row first (a SIGKILL cannot; see the docstring)."""
    for writer in list(_WRITERS):
        try:
            writer.close()
        except Exception as error:
            log.warning(
                "Could not write %d routine audit rows at exit (%s)",
                writer.pending,
                type(error).__name__,
            )


def init_app(app: Flask, settings: Settings) -> None:
    """Bind a writer to ``app`` when routine records are batched (``audit_batch_seconds`` > 0);
    ``None`` means :func:`idp.services.audit.record_routine` writes in the caller's transaction.
    Call after the database is set up."""
    writer: AuditWriter | None = None
    if settings.audit_batch_seconds > 0:
        with app.app_context():
            engine = db.engine
        writer = AuditWriter(engine, settings.audit_batch_seconds)
    app.extensions["audit_writer"] = writer


def get_audit_writer(app: Flask) -> AuditWriter | None:
    """``app``'s writer, None when its routine records are written synchronously."""
    writer: AuditWriter | None = app.extensions.get("audit_writer")
    return writer
