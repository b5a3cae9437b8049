"""The Flask extension: ``SecureAccess(app)``, ``@login_required`` and ``current_user``.

A thin translation layer over :class:`~secure_access_client.relying_party.RelyingParty`, so a
Flask service and a plain WSGI service behave exactly the same (J01-J08). It adds four URLs
(the paths are settings)::

    GET       /auth/sign-in              start signing in (``?next=/page``)
    GET       /auth/callback             where Secure Access sends people back
    GET|POST  /auth/sign-out             confirm, then sign out here and at Secure Access
    POST      /auth/backchannel-logout   Secure Access ends sessions here (J06)

and, on every request, loads the person's server-side session into ``current_user``. The
back-channel endpoint is exempted from Flask-WTF's CSRF check when that extension is present
(it is called server to server, with a signed Logout Token instead of a cookie).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar, cast, overload

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup, escape
from werkzeug.local import LocalProxy

from secure_access_client.errors import SecureAccessError
from secure_access_client.provider import ProviderSource
from secure_access_client.relying_party import RelyingParty
from secure_access_client.sessions import SessionStore
from secure_access_client.settings import Settings
from secure_access_client.user import ANONYMOUS, AnonymousUser, User
from secure_access_client.web import MAX_FORM_BYTES, Context, HttpRequest, HttpResponse

EXTENSION_KEY = "secure_access"
_CTX = "_secure_access_ctx"
F = TypeVar("F", bound=Callable[..., Any])
ErrorRenderer = Callable[[SecureAccessError], ResponseReturnValue]


def _to_request() -> HttpRequest:
    def form() -> dict[str, list[str]]:
        return request.form.to_dict(flat=False)

    full_path = request.full_path
    return HttpRequest(
        method=request.method,
        path=request.path,
        query=request.args.to_dict(flat=False),
        cookies=request.cookies,
        form=form,
        full_path=full_path[:-1] if full_path.endswith("?") else full_path,
        content_length=request.content_length,
    )


def _to_flask(response: HttpResponse) -> Response:
    return Response(response.body, status=response.status, headers=response.headers)


class SecureAccess:
    """Sign people in to a Flask app with Secure Access.

    ``SecureAccess(app)`` or ``sso = SecureAccess(); sso.init_app(app)``. Settings come from
    ``app.config["SECURE_ACCESS_*"]`` (see :class:`~secure_access_client.settings.Settings`).
    ``store``, ``provider`` and ``clock`` replace the defaults (for tests).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        store: SessionStore | None = None,
        provider: ProviderSource | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self._provider = provider
        self._clock = clock
        self._error_renderer: ErrorRenderer | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = Settings.from_mapping(app.config)
        options: dict[str, Any] = {}
        if self._clock is not None:
            options["clock"] = self._clock
        rp = RelyingParty(
            settings,
            store=self._store,
            provider=self._provider,
            service_name=str(app.config.get("SECURE_ACCESS_SERVICE_NAME") or app.name),
            **options,
        )
        app.extensions[EXTENSION_KEY] = (self, rp)

        bp = Blueprint("secure_access", __name__)
        bp.add_url_rule(settings.login_path, "sign_in", self._dispatch, methods=["GET"])
        bp.add_url_rule(settings.redirect_path, "callback", self._dispatch, methods=["GET"])
        bp.add_url_rule(settings.logout_path, "sign_out", self._dispatch, methods=["GET", "POST"])
        bp.add_url_rule(
            settings.backchannel_logout_path, "backchannel_logout", self._dispatch, methods=["POST"]
        )
        app.register_blueprint(bp)
        csrf = app.extensions.get("csrf")
        if csrf is not None and hasattr(csrf, "exempt"):
            csrf.exempt(bp)
        app.before_request(self._open)
        app.after_request(self._close)
        app.context_processor(lambda: {"current_user": current_user, "secure_access": self})

    # -- per request -------------------------------------------------------------------------

    @staticmethod
    def _rp() -> RelyingParty:
        try:
            return cast(RelyingParty, current_app.extensions[EXTENSION_KEY][1])
        except KeyError:
            raise RuntimeError("SecureAccess(app) has not been set up on this app") from None

    def _respond(self, response: HttpResponse, error: SecureAccessError | None = None) -> Any:
        if error is not None and self._error_renderer is not None:
            return self._error_renderer(error)
        return _to_flask(response)

    def _open(self) -> Any:
        rp = self._rp()
        req = _to_request()
        ctx = rp.open(req)
        setattr(g, _CTX, ctx)
        try:
            rp.after_logout_return(ctx, req)
        except SecureAccessError as error:
            return self._respond(rp.error_response(error), error)
        return None

    def _close(self, response: Response) -> Response:
        ctx: Context | None = g.get(_CTX)
        if ctx is not None:
            for name, value in self._rp().close(ctx):
                response.headers.add(name, value)
            response.vary.add("Cookie")
        return response

    def _dispatch(self) -> Any:
        rp = self._rp()
        if request.path == rp.settings.backchannel_logout_path:
            # L02 Also: a body without a declared length is cut off at the cap as it is read.
            request.max_content_length = MAX_FORM_BYTES
        ctx = _context()
        req = _to_request()
        try:
            response = rp.route(ctx, req)
        except SecureAccessError as error:
            return self._respond(rp.error_response(error), error)
        if response is None:  # pragma: no cover - every registered path is routed
            return Response(status=404)
        return _to_flask(response)

    # -- public helpers -------------------------------------------------------------------------

    def error_page(self, renderer: ErrorRenderer) -> ErrorRenderer:
        """Decorator: render sign-in errors yourself (``renderer(error)`` returns a response)."""
        self._error_renderer = renderer
        return renderer

    @property
    def settings(self) -> Settings:
        return self._rp().settings

    @property
    def relying_party(self) -> RelyingParty:
        """The engine behind the extension for the current app (the test helper uses it)."""
        return self._rp()

    def access_token(self) -> str | None:
        """A current access token for the signed-in person (refreshed silently), or None."""
        return self._rp().access_token(_context())

    @property
    def just_signed_out(self) -> bool:
        """True on the page Secure Access sends the person back to after signing out."""
        return _context().just_signed_out

    def csrf_token(self) -> str:
        return _context().csrf_token or ""

    def sign_out_form(self, label: str = "Sign out", css_class: str = "") -> Markup:
        """A small POST form with the CSRF token: signing out is never a bare link."""
        return Markup(
            '<form method="post" action="{action}" class="{cls}">'
            '<input type="hidden" name="csrf_token" value="{token}">'
            '<button type="submit">{label}</button></form>'
        ).format(
            action=self.settings.logout_path,
            cls=css_class,
            token=self.csrf_token(),
            label=escape(label),
        )

    def login_url(self, next_url: str = "/", *, mfa: bool = False) -> str:
        return self._rp().login_url(next_url, mfa=mfa)


def _context() -> Context:
    ctx: Context | None = g.get(_CTX)
    if ctx is None:
        raise RuntimeError("SecureAccess(app) has not been set up on this app")
    return ctx


def _current_user() -> User | AnonymousUser:
    ctx: Context | None = g.get(_CTX)
    return ctx.user if ctx is not None and ctx.user is not None else ANONYMOUS


#: The signed-in person (:class:`~secure_access_client.user.User`), or an
#: :class:`~secure_access_client.user.AnonymousUser` whose ``is_authenticated`` is False.
current_user: User | AnonymousUser = cast(Any, LocalProxy(_current_user))


@overload
def login_required(view: F) -> F: ...


@overload
def login_required(
    *, roles: list[str] | None = None, mfa: bool = False, max_age: int | None = None
) -> Callable[[F], F]: ...


def login_required(
    view: F | None = None,
    *,
    roles: list[str] | None = None,
    mfa: bool = False,
    max_age: int | None = None,
) -> Any:
    """Only signed-in people may see this view.

    - ``roles=["submitter", "approver"]``: they need at least one of these roles (else 403).
    - ``mfa=True``: the sign-in must have included a second factor; if it did not, they are
      sent to Secure Access to add one (``acr_values=urn:secure-access:acr:mfa``), and asked
      for nothing else if their Secure Access session is still live.
    - ``max_age=300``: they must have signed in within that many seconds (J08; sensitive
      actions), else they are asked to sign in again.
    """

    def decorator(function: F) -> F:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            rp = SecureAccess._rp()
            refusal = rp.guard(_context(), _to_request(), roles=roles, mfa=mfa, max_age=max_age)
            if refusal is not None:
                return _to_flask(refusal)
            return function(*args, **kwargs)

        return cast(F, wrapped)

    if view is not None:
        return decorator(view)
    return decorator
