"""Reading what the provider emailed: run the worker's delivery, then read the dev outbox."""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlsplit

from flask import current_app

from idp.services.mail import outbox_directory
from idp.services.mail.dev_outbox import StoredMessage, list_messages
from idp.services.outbox import deliver_due


def deliver_all() -> None:
    """Run the worker until nothing is due (jobs can queue emails, so loop, bounded)."""
    for _ in range(10):
        if deliver_due().handled == 0:
            return


def emails_to(address: str) -> list[StoredMessage]:
    """Messages sent to ``address``, newest first."""
    deliver_all()
    folder = outbox_directory(current_app.instance_path)
    return [m for m in list_messages(folder, limit=500) if m.to.lower() == address.lower()]


def latest_link(address: str, template: str | None = None) -> str:
    """The path of the first link in the newest email to ``address`` (optionally of a kind)."""
    messages = [m for m in emails_to(address) if template is None or m.template == template]
    assert messages, f"no {template or ''} email to {address}"
    match = re.search(r"https?://\S+", messages[0].body)
    assert match, messages[0].body
    return urlsplit(match.group()).path


def clear_outbox(instance_path: str) -> None:
    shutil.rmtree(outbox_directory(instance_path), ignore_errors=True)
