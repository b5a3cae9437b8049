"""``worker``: sends what the durable outbox holds (email, back-channel logout), with retries.

One loop: deliver what is due, log what happened, wait, repeat. It is meant to run for
months beside the web instances (``make run`` starts one), so it must outlive its
dependencies' bad days: a database or Redis outage is logged and waited out with growing
pauses, never a crash (DESIGN.md §9). SIGTERM or SIGINT (Ctrl+C, ``docker stop``) ends it
between batches, never half-way through recording a message's outcome.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import click
from flask.cli import with_appcontext

from idp.extensions import db
from idp.oidc.backchannel import end_expired_sessions
from idp.oidc.keys import ensure_keys
from idp.services.access_requests import escalate_when_due
from idp.services.outbox import DeliveryReport, deliver_due

log = logging.getLogger("idp.worker")

BATCH_SIZE = 50
# The longest pause between tries while the database or Redis is down.
MAX_OUTAGE_PAUSE_SECONDS = 30.0


@dataclass
class RunSummary:
    """Totals over a run of the loop, for ``--once``'s closing line."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    failed_batches: int = 0

    def add(self, report: DeliveryReport) -> None:
        self.sent += report.sent
        self.retried += report.retried
        self.dead += report.dead

    def __str__(self) -> str:
        return (
            f"sent={self.sent} retried={self.retried} dead={self.dead} "
            f"failed_batches={self.failed_batches}"
        )


def run(
    stop: threading.Event,
    *,
    interval: float,
    once: bool = False,
    deliver: Callable[[], DeliveryReport] | None = None,
) -> RunSummary:
    """Deliver batches until ``stop`` is set (or, with ``once``, until nothing more is due).

    A full batch is followed straight away by the next, so a backlog drains at full speed;
    otherwise the loop waits ``interval`` seconds. After a failure it waits twice as long as
    after the previous one (up to :data:`MAX_OUTAGE_PAUSE_SECONDS`) so a dead database is not
    hammered, and goes back to ``interval`` as soon as a batch succeeds.
    """
    deliver = deliver or _batch
    summary = RunSummary()
    failures_in_a_row = 0
    while not stop.is_set():
        pause = interval
        more_due = False
        try:
            report = deliver()
        except Exception as error:  # an outage or a bug: log it, wait, try again
            failures_in_a_row += 1
            summary.failed_batches += 1
            _reset_session()
            pause = min(MAX_OUTAGE_PAUSE_SECONDS, interval * 2**failures_in_a_row)
            log.error(
                "worker: batch failed (%s: %s); retrying in %.1fs",
                type(error).__name__,
                str(error).splitlines()[0][:200] if str(error) else "",
                pause,
            )
        else:
            if failures_in_a_row:
                log.warning("worker: recovered after %d failed batch(es)", failures_in_a_row)
            failures_in_a_row = 0
            summary.add(report)
            level = logging.INFO if report.handled else logging.DEBUG
            log.log(level, "worker: batch done: %s", report)
            more_due = report.handled >= BATCH_SIZE
            if more_due:
                pause = 0
        finally:
            # A long-lived process must not keep a session (or a broken connection) between
            # batches; the pool hands out a fresh, pre-pinged connection next time.
            db.session.remove()
        if once and not more_due:  # a full batch means more may be due: drain it first
            break
        stop.wait(pause)
    return summary


def _batch() -> DeliveryReport:
    """One pass: announce sessions that expired since the last (I04), pass overdue access
    requests to the helpdesk (issue 7; at most every few minutes), then send what is due."""
    end_expired_sessions()
    escalate_when_due()
    return deliver_due(limit=BATCH_SIZE)


def _reset_session() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection may already be gone; removing the session is enough
        log.debug("worker: rollback after a failed batch also failed", exc_info=True)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT for the duration, then restore the previous handlers."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: %s received, stopping after this batch", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("worker")
@click.option("--once", is_flag=True, help="Deliver every message now due, then exit (for cron).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds to wait between batches when there is nothing more to send.",
)
@with_appcontext
def worker(once: bool, interval: float) -> None:
    """Send due outbox messages (email, back-channel logout), with retries, until stopped."""
    stop = threading.Event()
    if once:
        summary = run(stop, interval=interval, once=True)
        click.echo(f"worker: {summary}")
        if summary.failed_batches:
            raise click.ClickException("the outbox could not be read; see the log")
        return
    try:
        # Signing keys exist before the first logout token needs one; on SQLite a worker that
        # created them mid-batch would wait on its own write lock.
        ensure_keys()
    except Exception:  # a database outage must not stop the worker starting; run() retries
        log.warning("worker: could not check the signing keys yet", exc_info=True)
    log.info("worker: started; checking the outbox every %.1fs", interval)
    with _stop_on_signals(stop):
        run(stop, interval=interval)
    log.info("worker: stopped")
