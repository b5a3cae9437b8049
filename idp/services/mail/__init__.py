"""Email: one :class:`Mailer` interface, three implementations chosen by ``IDP_MAIL_BACKEND``.

- ``notify``: GOV.UK Notify, one Notify template id per message (:mod:`.notify`).
- ``smtp``: any SMTP server (:mod:`.smtp`).
- ``outbox``: files under ``<instance_path>/outbox/`` for development (:mod:`.dev_outbox`).

Nothing sends email directly. Services call :func:`idp.services.outbox.enqueue_email` inside
their unit of work, and the worker hands each due message to :func:`get_mailer`'s mailer, so
a provider outage delays a message but never loses it.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

from idp.config import Settings
from idp.services.mail.base import EmailMessage, MailDeliveryError, Mailer, PermanentMailError
from idp.services.mail.dev_outbox import DevOutboxMailer
from idp.services.mail.notify import NotifyMailer
from idp.services.mail.smtp import SmtpMailer

__all__ = [
    "DevOutboxMailer",
    "EmailMessage",
    "MailDeliveryError",
    "Mailer",
    "NotifyMailer",
    "PermanentMailError",
    "SmtpMailer",
    "build_mailer",
    "get_mailer",
    "init_app",
    "outbox_directory",
]


def outbox_directory(instance_path: str) -> Path:
    """Where the development outbox writes, and where ``/dev/outbox`` reads."""
    return Path(instance_path) / "outbox"


def build_mailer(settings: Settings, instance_path: str) -> Mailer:
    """The mailer ``settings`` ask for. Built once per process; mailers hold no message state."""
    if settings.mail_backend == "notify":
        if settings.notify_api_key is None:
            # Production refuses to start without it (Settings.problems); elsewhere, say why.
            raise RuntimeError("IDP_MAIL_BACKEND is 'notify' but IDP_NOTIFY_API_KEY is not set")
        return NotifyMailer(
            settings.notify_api_key.get_secret_value(),
            settings.notify_template_ids,
            base_url=settings.notify_base_url,
        )
    if settings.mail_backend == "smtp":
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
        )
    return DevOutboxMailer(outbox_directory(instance_path), settings.mail_from)


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["mailer"] = build_mailer(settings, app.instance_path)


def get_mailer() -> Mailer:
    """The current app's mailer (set up by :func:`init_app` in ``create_app``)."""
    mailer: Mailer | None = current_app.extensions.get("mailer")
    if mailer is None:
        # The outbox keeps the message and retries it, so this delays mail; it loses none.
        raise RuntimeError("no mailer: create_app must call mail.init_app(app, settings)")
    return mailer
