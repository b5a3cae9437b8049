"""Absolute links for emails, always built on the configured public origin.

C03: a link's origin comes from settings, never from the request's Host or
X-Forwarded-Host, so a poisoned Host header cannot redirect a reset link to an attacker.
Works with or without a request (the worker has none).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from idp.config import Settings


def public_url(endpoint: str, **values: Any) -> str:
    settings: Settings = current_app.extensions["settings"]
    path = current_app.url_map.bind("unused.invalid").build(endpoint, values)
    return settings.public_base_url.rstrip("/") + path
