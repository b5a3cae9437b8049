"""Who is asking, and on which host: request ids, proxy headers and the Host allow-list.

X-Forwarded-* headers are believed only from the configured number of proxy hops (B06). The
Host header is checked against an allow-list (C03) and is never used to build emailed links.
"""

from __future__ import annotations

import re
import secrets

from flask import Flask, abort, g, request
from flask.wrappers import Response
from werkzeug.middleware.proxy_fix import ProxyFix

from idp.config import Settings

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id(incoming: str | None) -> str:
    """A proxy's id is kept if it looks like one, so lines can be joined across hops."""
    return incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else secrets.token_hex(8)


def init_app(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxy_hops:
        # x_host=0: a forwarded Host is never trusted, whatever the hop count.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxy_hops,
            x_proto=settings.trusted_proxy_hops,
            x_host=0,
            x_port=0,
            x_prefix=0,
        )
    hosts = [settings.public_host, *settings.trusted_hosts]
    if not settings.is_production:
        hosts += ["localhost", "127.0.0.1", "localhost:5000", "127.0.0.1:5000"]
    app.config["TRUSTED_HOSTS"] = sorted(set(hosts) | {h.split(":")[0] for h in hosts})
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_request_bytes

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = request_id(request.headers.get("X-Request-Id"))

    @app.before_request
    def refuse_oversized_bodies() -> None:
        # Checked before routing and before any parser (form, JSON or JOSE) touches the body
        # (L02, CVE-2025-61920). Chunked bodies are capped by MAX_CONTENT_LENGTH on read.
        if (request.content_length or 0) > settings.max_request_bytes:
            abort(413)

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
