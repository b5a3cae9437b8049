"""``/dev/outbox``: read the emails the development outbox wrote, in the browser.

Registered only when ``IDP_ENV=development`` (see ``register_blueprints``): everywhere else
the URLs do not exist at all, so there is no switch to leave on by mistake. With the default
``outbox`` mail backend the worker writes each message under ``<instance_path>/outbox/``; this
page lists them newest first, so a developer can follow an invitation or reset link.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, render_template
from flask.typing import ResponseReturnValue
from markupsafe import Markup, escape

from idp.services.mail import DevOutboxMailer, outbox_directory
from idp.services.mail.dev_outbox import list_messages, read_message

bp = Blueprint("dev_outbox", __name__, url_prefix="/dev/outbox")

_URL = re.compile(r"https?://[^\s<>\"']+")


def _folder() -> str:
    # The folder the configured mailer writes to; the default one if email goes elsewhere.
    mailer = current_app.extensions.get("mailer")
    if isinstance(mailer, DevOutboxMailer):
        return str(mailer.directory)
    return str(outbox_directory(current_app.instance_path))


def paragraphs(body: str) -> list[Markup]:
    """The body as HTML paragraphs: blank lines split them, line breaks are kept, links work."""
    return [
        Markup("<br>\n").join(linkify(line) for line in block.splitlines())
        for block in re.split(r"\n\s*\n", body.strip())
        if block.strip()
    ]


def linkify(text: str) -> Markup:
    """Escape ``text`` and make each http(s) address in it a GOV.UK link."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:)")
        parts.append(escape(text[position : match.start()]))
        parts.append(Markup('<a class="govuk-link" href="{0}">{0}</a>').format(url))
        position = match.start() + len(url)
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


@bp.get("")
def index() -> ResponseReturnValue:
    return render_template(
        "dev/outbox.html",
        messages=list_messages(_folder()),
        folder=_folder(),
        paragraphs=paragraphs,
    )


@bp.get("/<name>")
def show(name: str) -> ResponseReturnValue:
    message = read_message(_folder(), name)
    if message is None:
        abort(404)
    return render_template("dev/outbox_message.html", message=message, paragraphs=paragraphs)
