"""WSGI middleware for services that are not Flask: the same behaviour, standard library only.

::

    from secure_access_client import Protect, SecureAccessMiddleware, Settings

    application = SecureAccessMiddleware(
        application,
        Settings.from_mapping(os.environ),
        protect={"/": Protect(), "/approve": Protect(roles=["approver"]),
                 "/pensions": Protect(mfa=True)},
        public=["/healthz", "/static"],
    )

The middleware answers the library's own URLs (sign-in, callback, sign-out, back-channel
logout: the paths are settings), guards the paths in ``protect`` (the longest matching prefix
wins; ``public`` prefixes are never guarded), and passes everything else to the application
with ``environ["secure_access.user"]`` set to the signed-in
:class:`~secure_access_client.user.User` or the anonymous user. It delegates every decision to
:class:`~secure_access_client.relying_party.RelyingParty`, exactly as the Flask extension does
(J01-J08). Request bodies are read only on the library's own POST endpoints, and never beyond
16 KB (L02 Also).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import parse_qs

from secure_access_client.errors import SecureAccessError
from secure_access_client.provider import ProviderSource
from secure_access_client.relying_party import RelyingParty
from secure_access_client.sessions import SessionStore
from secure_access_client.settings import Settings
from secure_access_client.user import ANONYMOUS, AnonymousUser, User
from secure_access_client.web import MAX_FORM_BYTES, Context, HttpRequest, HttpResponse

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

USER_KEY = "secure_access.user"
CONTEXT_KEY = "secure_access.context"
RELYING_PARTY_KEY = "secure_access.relying_party"


@dataclass(frozen=True)
class Protect:
    """What a protected path needs: sign-in, and optionally roles, a second factor, recency."""

    roles: Sequence[str] | None = None
    mfa: bool = False
    max_age: int | None = None


class BodyTooLarge(SecureAccessError):
    status = 413


def _path(environ: Mapping[str, Any]) -> str:
    raw = str(environ.get("PATH_INFO") or "/")
    # PEP 3333: PATH_INFO is bytes decoded as latin-1; recover the UTF-8 text.
    return raw.encode("latin-1", "replace").decode("utf-8", "replace") or "/"


def _cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def _form_reader(environ: dict[str, Any]) -> Callable[[], Mapping[str, Sequence[str]]]:
    cache: list[Mapping[str, Sequence[str]]] = []

    def read() -> Mapping[str, Sequence[str]]:
        if cache:
            return cache[0]
        content_type = str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_FORM_BYTES:
            raise BodyTooLarge("The request is too large", check="body-too-large")
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form: Mapping[str, Sequence[str]] = {}
        if content_type == "application/x-www-form-urlencoded":
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        cache.append(form)
        return form

    return read


def _length(environ: Mapping[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def to_request(environ: dict[str, Any]) -> HttpRequest:
    """The relying party's view of a WSGI request."""
    path = _path(environ)
    query = str(environ.get("QUERY_STRING") or "")
    return HttpRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
        path=path,
        query=parse_qs(query, keep_blank_values=True),
        cookies=_cookies(str(environ.get("HTTP_COOKIE", ""))),
        form=_form_reader(environ),
        full_path=path + ("?" + query if query else ""),
        content_length=_length(environ),
    )


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def current_user(environ: Mapping[str, Any]) -> User | AnonymousUser:
    """The signed-in person for this request (after the middleware ran)."""
    user = environ.get(USER_KEY)
    return user if isinstance(user, User) else ANONYMOUS


class SecureAccessMiddleware:
    """Wrap a WSGI application so that Secure Access signs people in to it."""

    def __init__(
        self,
        app: WSGIApp,
        settings: Settings | Mapping[str, Any],
        *,
        protect: Mapping[str, Protect] | None = None,
        public: Sequence[str] = (),
        store: SessionStore | None = None,
        provider: ProviderSource | None = None,
        clock: Callable[[], float] | None = None,
        service_name: str = "",
        render: Callable[[SecureAccessError], HttpResponse] | None = None,
    ) -> None:
        if not isinstance(settings, Settings):
            settings = Settings.from_mapping(settings)
        options: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.app = app
        self.relying_party = RelyingParty(
            settings, store=store, provider=provider, service_name=service_name, **options
        )
        rules: list[tuple[str, Protect | None]] = [
            (prefix, rule)
            for prefix, rule in (protect if protect is not None else {"/": Protect()}).items()
        ]
        rules += [(prefix, None) for prefix in public]
        # Longest prefix first, so /approve beats /.
        self._rules = sorted(rules, key=lambda item: len(item[0]), reverse=True)
        self._render = render

    def rule_for(self, path: str) -> Protect | None:
        for prefix, rule in self._rules:
            bare = prefix.rstrip("/")
            if path in (prefix, bare) or path.startswith(bare + "/") or prefix == "/":
                return rule
        return None

    def _error(self, error: SecureAccessError) -> HttpResponse:
        if isinstance(error, BodyTooLarge):
            return HttpResponse(413, [("Content-Type", "text/plain")], b"Request too large\n")
        if self._render is not None:
            return self._render(error)
        return self.relying_party.error_response(error)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rp = self.relying_party
        request = to_request(environ)
        ctx = rp.open(request)
        try:
            response = rp.route(ctx, request)
            if response is None:
                rule = self.rule_for(request.path)
                if rule is not None:
                    response = rp.guard(
                        ctx, request, roles=rule.roles, mfa=rule.mfa, max_age=rule.max_age
                    )
        except SecureAccessError as error:
            response = self._error(error)
        if response is not None:
            start_response(_status_line(response.status), response.headers + rp.close(ctx))
            return [response.body]
        environ[USER_KEY] = ctx.user or ANONYMOUS
        environ[CONTEXT_KEY] = ctx
        environ[RELYING_PARTY_KEY] = rp

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, list(headers) + rp.close(ctx), exc_info)

        return self.app(environ, start)


def sign_out_form(environ: Mapping[str, Any], label: str = "Sign out") -> str:
    """HTML for a sign-out button (a POST form with the CSRF token), for the app's pages."""
    ctx = environ.get(CONTEXT_KEY)
    rp = environ.get(RELYING_PARTY_KEY)
    token = ctx.csrf_token if isinstance(ctx, Context) else None
    action = rp.settings.logout_path if isinstance(rp, RelyingParty) else "/auth/sign-out"
    return (
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(token or "")}">'
        f'<button type="submit">{escape(label)}</button></form>'
    )


__all__ = [
    "Protect",
    "SecureAccessMiddleware",
    "current_user",
    "sign_out_form",
    "to_request",
]
