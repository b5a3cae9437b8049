"""Background jobs carried by the durable outbox (kind ``job``), dispatched by name.

Jobs exist for work that must not happen in a web request, such as looking up the address
typed on the forgot-password page (doing that in the request would make its timing reveal
whether the account exists, C01).
"""

from __future__ import annotations

from collections.abc import Callable

from idp.models import OutboxMessage
from idp.models.outbox import OutboxKind
from idp.services import outbox, password_reset
from idp.services.outbox import PermanentDeliveryError

JOBS: dict[str, Callable[[OutboxMessage], None]] = {
    password_reset.JOB_TEMPLATE: password_reset.handle_reset_job,
}


def run_job(message: OutboxMessage) -> None:
    job = JOBS.get(message.template)
    if job is None:
        raise PermanentDeliveryError(f"unknown job {message.template!r}")
    job(message)


def init_app() -> None:
    outbox.register_handler(
        OutboxKind.JOB, run_job, audit_prefix="job", audit_target=lambda recipient: recipient
    )
