"""The few pages the library shows itself: sign-in failed, no access, sign out, unavailable.

Self-contained HTML (no external CSS, scripts or fonts), styled after the GOV.UK Design
System, with a strict Content-Security-Policy that allows only the one inline style block by
its hash. Every value shown is escaped. A service can replace any of them (see
``SecureAccess.error_page`` and ``SecureAccessMiddleware(render=...)``).
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from secure_access_client.errors import SecureAccessError

_STYLE = (
    "body{margin:0;font-family:Arial,sans-serif;color:#0b0c0c;background:#fff;line-height:1.3}"
    "header{background:#0b0c0c;color:#fff;padding:12px 15px;font-weight:700}"
    "main{max-width:640px;margin:30px auto;padding:0 15px}"
    "h1{font-size:2rem;margin:0 0 20px}"
    ".ref{color:#505a5f;font-size:.9rem}"
    "a{color:#1d70b8}"
    "button{background:#00703c;color:#fff;border:0;padding:8px 12px;font-size:1.1rem;"
    "box-shadow:0 2px 0 #002d18;cursor:pointer}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

#: Headers every library page carries.
PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    (
        "Content-Security-Policy",
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


def render(title: str, body_html: str, *, service: str = "") -> bytes:
    """A whole page. ``body_html`` must already be escaped."""
    banner = escape(service) if service else "Secure Access"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} - {banner}</title><style>{_STYLE}</style></head>"
        f"<body><header>{banner}</header><main><h1>{escape(title)}</h1>{body_html}</main>"
        "</body></html>\n"
    ).encode()


def error_page(error: SecureAccessError, *, retry_url: str | None, service: str = "") -> bytes:
    """What a person sees when sign-in fails, is refused, or the provider is down.

    Deliberately plain: it says what happened in words, gives a reference (the check name) a
    helpdesk can look up, and offers a fresh start. It never shows token contents.
    """
    retry = f'<p><a href="{escape(retry_url)}">Try signing in again</a></p>' if retry_url else ""
    return render(
        error.title,
        f"<p>{escape(error.message)}.</p>{retry}"
        f'<p class="ref">Reference: {escape(error.check)}</p>',
        service=service,
    )


def forbidden_page(*, service: str = "") -> bytes:
    return render(
        "You do not have access to this page",
        "<p>Your account does not have the role this page needs. Ask your organisation's "
        "approver if you think you should have it.</p>",
        service=service,
    )


def sign_out_page(action: str, csrf_token: str, *, service: str = "") -> bytes:
    """A confirmation form: signing out takes a POST with a CSRF token, never a bare link."""
    return render(
        "Sign out",
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf_token)}">'
        "<p>This signs you out of this service and of Secure Access.</p>"
        '<button type="submit">Sign out</button></form>',
        service=service,
    )


def signed_out_page(*, service: str = "") -> bytes:
    return render("You have signed out", "<p>You can close this window.</p>", service=service)


def session_ended_page(login_url: str, *, service: str = "") -> bytes:
    return render(
        "Your session has ended",
        f'<p><a href="{escape(login_url)}">Sign in again</a></p>',
        service=service,
    )
