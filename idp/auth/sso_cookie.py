"""The SSO session cookie and the current signed-in session.

E03 / NIST SP 800-63B-4 §5.1.1: the cookie is ``__Host-`` prefixed, Secure, HttpOnly,
SameSite=Lax, Path=/, has no Domain and holds no personal data, only a random value that the
store knows by its hash. Browsers accept Secure cookies from http://localhost and 127.0.0.1,
so the same cookie works on plain-HTTP loopback in development.
"""

from __future__ import annotations

from flask import g, request
from werkzeug.wrappers import Response

from idp.services.sso_sessions import SsoSession, get_sso_sessions

COOKIE_NAME = "__Host-sa_session"


def current_sso_session() -> SsoSession | None:
    """This browser's live SSO session, if any (looked up once per request)."""
    if "sso_session" not in g:
        cookie = request.cookies.get(COOKIE_NAME)
        g.sso_session = get_sso_sessions().get(cookie) if cookie and len(cookie) < 100 else None
    session: SsoSession | None = g.sso_session
    return session


def current_cookie_value() -> str | None:
    return request.cookies.get(COOKIE_NAME)


def set_cookie(response: Response, value: str) -> None:
    response.set_cookie(COOKIE_NAME, value, secure=True, httponly=True, samesite="Lax", path="/")


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, secure=True, httponly=True, samesite="Lax", path="/")
