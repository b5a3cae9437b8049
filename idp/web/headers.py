"""Security headers on every response: a strict CSP with a per-request nonce and anti-framing.

E08 / RFC 9700 §4.16: `frame-ancestors 'none'` plus `X-Frame-Options: DENY` on every page.
`form-action` is deliberately absent: Chromium applies it to the redirect after a form POST,
which would block the 303 from the sign-in form back to a relying service's redirect URI.
"""

from __future__ import annotations

import secrets

from flask import Flask, g, request
from flask.wrappers import Response

from idp.config import Settings


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    nonce: str = g.csp_nonce
    return nonce


def security_headers(settings: Settings, nonce: str | None = None) -> list[tuple[str, str]]:
    """The headers every response carries (shared with :mod:`idp.oidc.machine_lane`)."""
    # A nonce only when a template asked for one: JSON answers (the token endpoint, the
    # API) skip making it, and a page without inline scripts gets the stricter policy.
    scripts = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    headers = [
        (
            "Content-Security-Policy",
            "default-src 'self'; "
            f"script-src {scripts}; "
            "style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        # Tokens travel in some URLs (reset links): never leak them to another site (C02).
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ]
    if settings.uses_https:
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return headers


def init_app(app: Flask, settings: Settings) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def set_security_headers(response: Response) -> Response:
        h = response.headers
        for name, value in security_headers(settings, g.get("csp_nonce")):
            h[name] = value
        if not request.path.startswith("/static/"):
            # Pages about a person must not sit in shared caches or a shared PC's history.
            h.setdefault("Cache-Control", "no-store")
        return response
