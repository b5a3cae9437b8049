"""The relying party itself, independent of any web framework.

:class:`RelyingParty` takes a small :class:`HttpRequest` and gives back an :class:`HttpResponse`;
the Flask extension (:mod:`.flask_integration`) and the WSGI middleware (:mod:`.wsgi`) only
translate, so both behave identically. What it implements (security-requirements.md):

- **J01** sign-in: the authorization code flow with PKCE S256 (RFC 7636 §4.2). Each sign-in gets
  a fresh ``state``, ``nonce`` and ``code_verifier`` of 256 bits from :mod:`secrets`, stored in
  *this browser's* server-side session (never in a cache keyed by ``state``) and deleted on
  first use, whatever the outcome. A callback from another browser, or a second use, finds no
  matching entry and is refused (RFC 6749 §10.12; Authlib GHSA-fg6f-75jq-6523).
- **J02** the ``iss`` authorization response parameter (RFC 9207 §2.4) must equal the pinned
  issuer, and must be present when the provider says it sends it.
- **J03, J04** the ID Token (:func:`.tokens.validate_id_token`); **J05** the UserInfo ``sub``
  must equal the ID Token's, or the sign-in is refused (OIDC Core §5.3.2).
- **J08** the local session is created afresh at sign-in (a new cookie value; the old record is
  deleted), ends after ``SECURE_ACCESS_SESSION_IDLE_TIMEOUT`` without a request and at the
  latest ``SECURE_ACCESS_SESSION_LIFETIME`` after the provider's ``auth_time``. Access tokens
  are refreshed silently; a refused refresh (the provider's session is over) ends the local
  session at once. Pages can demand a recent sign-in (``max_age``) or a second factor.
- **J06** back-channel logout (:meth:`RelyingParty.backchannel_logout`): Back-Channel Logout
  1.0 §2.6-§2.8, including ``jti`` replay refusal, ends every matching local session.
- **J07** RP-initiated logout (RP-Initiated Logout 1.0 §2-§3): ``id_token_hint``,
  ``client_id``, the registered ``post_logout_redirect_uri`` and a random ``state``, which is
  checked when the provider sends the person back.

Degraded mode: when the provider cannot be reached, people already signed in carry on (their
session still ends on its own timers) and new sign-ins get a clear "try again later" page.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import requests

from secure_access_client import pages
from secure_access_client.backchannel import BackchannelLogout
from secure_access_client.errors import (
    AuthorizationError,
    InvalidToken,
    LogoutStateError,
    ProviderUnavailable,
    SecureAccessError,
    StateError,
    TokenError,
)
from secure_access_client.protocol import ERROR_CODE, ProviderClient
from secure_access_client.provider import Provider, ProviderSource
from secure_access_client.sessions import (
    FileSessionStore,
    RedisSessionStore,
    SessionStore,
    default_session_dir,
    digest,
)
from secure_access_client.settings import ACR_MFA, Settings
from secure_access_client.tokens import IdTokenExpectations, validate_id_token
from secure_access_client.user import User
from secure_access_client.web import (
    COOKIE_VALUE_MAX,
    MAX_FORM_BYTES,
    Context,
    HttpRequest,
    HttpResponse,
    safe_next,
)

__all__ = [
    "MAX_FORM_BYTES",
    "Context",
    "HttpRequest",
    "HttpResponse",
    "RelyingParty",
    "make_store",
    "safe_next",
]

log = logging.getLogger("secure_access_client")

#: Claims about the token rather than the person; not kept in the session's user claims.
_TOKEN_CLAIMS = ("aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "jti")
#: Claims only the ID Token may set (UserInfo cannot override them).
_PROTOCOL_CLAIMS = ("iss", "sub", "acr", "amr", "auth_time", "sid", *_TOKEN_CLAIMS)
#: At most this many sign-ins may be under way in one browser (several tabs).
MAX_PENDING_LOGINS = 5
#: Refresh the access token this long before it expires.
REFRESH_MARGIN_SECONDS = 30
#: After the provider could not be reached for a refresh, wait this long before trying again.
REFRESH_RETRY_SECONDS = 60
#: The longest one refresh may hold the session's refresh lock (a crashed holder's lock lapses).
REFRESH_LOCK_SECONDS = 30
_FRIENDLY_ERRORS = {
    "access_denied": "Secure Access did not let you use this service. "
    "Your account may not have access to it: ask your organisation's approver",
    "login_required": "You need to sign in to Secure Access again",
    "interaction_required": "You need to sign in to Secure Access again",
    "consent_required": "You need to sign in to Secure Access again",
}


def make_store(settings: Settings, clock: Callable[[], float] = time.time) -> SessionStore:
    """The store the settings ask for: Redis if ``SECURE_ACCESS_REDIS_URL``, else files."""
    if settings.redis_url:
        return RedisSessionStore(settings.redis_url, prefix=f"secure-access:{settings.client_id}:")
    return FileSessionStore(
        settings.session_dir or default_session_dir(settings.client_id), clock=clock
    )


class RelyingParty:
    """Sign-in, refresh, sign-out and back-channel logout for one service (one client id)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: SessionStore | None = None,
        provider: ProviderSource | None = None,
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        service_name: str = "",
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.http = http or requests.Session()
        self.provider: ProviderSource = provider or Provider(settings, http=self.http, clock=clock)
        self.store: SessionStore = store or make_store(settings, clock)
        self.service_name = service_name
        self.client = ProviderClient(settings, self.provider, self.http, clock)
        self.backchannel = BackchannelLogout(settings, self.store, self.provider, clock)

    def use_provider(self, provider: ProviderSource) -> None:
        """Swap where metadata and keys come from (the test helper installs a fake here)."""
        self.provider = self.client.provider = self.backchannel.provider = provider

    def _metadata(self) -> Mapping[str, Any]:
        return self.provider.metadata()

    # -- the local session ---------------------------------------------------------------------

    def open(self, request: HttpRequest) -> Context:
        """Load this browser's session, end it if its time is up, refresh tokens if due."""
        value = request.cookies.get(self.settings.session_cookie_name)
        if not value:
            return Context(None, None)
        data = self.store.load(digest(value)) if len(value) <= COOKIE_VALUE_MAX else None
        if data is None:
            ctx = Context(None, None)
            ctx.clear_cookie = True  # unknown, expired or ended: tell the browser to forget it
            return ctx
        ctx = Context(value, data)
        auth = ctx.auth
        if auth is not None:
            now = self.clock()
            last_seen = float(data.get("last_seen", 0))
            if now - last_seen >= self.settings.session_idle_timeout:
                log.info("Local session ended: idle for too long (sub %s)", auth.get("sub"))
                self._end(ctx)
                return ctx
            if now >= float(auth["auth_time"]) + self.settings.session_lifetime:
                log.info("Local session ended: older than the lifetime (sub %s)", auth.get("sub"))
                self._end(ctx)
                return ctx
            if now - last_seen >= 30:  # at most one write a half-minute for activity
                data["last_seen"] = now
                ctx.touched = True
            self._maybe_refresh(ctx)
            if ctx.auth is not None:
                ctx.user = User.from_claims(ctx.auth["claims"])
        return ctx

    def close(self, ctx: Context) -> list[tuple[str, str]]:
        """Save the session if it changed; the ``Set-Cookie`` headers to send, if any."""
        if ctx.data is not None and ctx.cookie_value:
            key = digest(ctx.cookie_value)
            if ctx.dirty:
                self.store.save(key, ctx.data, self._ttl(ctx.data))
            elif ctx.touched:
                # Another request (another tab, another instance) may have refreshed the tokens
                # since this one loaded the record: move last_seen on the stored copy instead.
                stored = self.store.load(key)
                if stored is not None:
                    stored["last_seen"] = ctx.data.get("last_seen", self.clock())
                    self.store.save(key, stored, self._ttl(stored))
            ctx.dirty = ctx.touched = False
        name = self.settings.session_cookie_name
        flags = "; Path=/; HttpOnly; SameSite=Lax" + (
            "; Secure" if self.settings.cookie_secure else ""
        )
        if ctx.new_cookie and ctx.cookie_value:
            ctx.new_cookie = False
            return [("Set-Cookie", f"{name}={ctx.cookie_value}{flags}")]
        if ctx.clear_cookie:
            ctx.clear_cookie = False
            return [
                ("Set-Cookie", f"{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{flags}")
            ]
        return []

    def _ttl(self, data: Mapping[str, Any]) -> int:
        now = self.clock()
        auth = data.get("auth")
        if isinstance(auth, dict):
            ends = min(
                float(auth["auth_time"]) + self.settings.session_lifetime,
                float(data.get("last_seen", now)) + self.settings.session_idle_timeout,
            )
            return max(1, int(ends - now) + 1)
        return self.settings.login_timeout

    def _fresh_session(self, ctx: Context, data: dict[str, Any]) -> None:
        """Replace this browser's session with a new record under a new cookie value (J08)."""
        if ctx.cookie_value:
            self.store.delete(digest(ctx.cookie_value))
        ctx.cookie_value = secrets.token_urlsafe(32)
        data.setdefault("csrf", secrets.token_urlsafe(32))
        data.setdefault("created_at", self.clock())
        data.setdefault("last_seen", self.clock())
        ctx.data = data
        ctx.dirty = True
        ctx.new_cookie = True
        ctx.clear_cookie = False

    def _ensure_session(self, ctx: Context) -> dict[str, Any]:
        if ctx.data is None:
            self._fresh_session(ctx, {})
        assert ctx.data is not None
        return ctx.data

    def _end(self, ctx: Context) -> None:
        if ctx.cookie_value:
            self.store.delete(digest(ctx.cookie_value))
        ctx.cookie_value = None
        ctx.data = None
        ctx.user = None
        ctx.dirty = False
        ctx.new_cookie = False
        ctx.clear_cookie = True

    # -- sign-in (J01-J05, J08) --------------------------------------------------------------------

    def start_login(
        self,
        ctx: Context,
        *,
        next_url: str | None = None,
        mfa: bool = False,
        max_age: int | None = None,
    ) -> HttpResponse:
        """Send the browser to the provider's authorization endpoint (OIDC Core §3.1.2.1)."""
        metadata = self._metadata()
        data = self._ensure_session(ctx)
        now = self.clock()
        pending = {
            state: entry
            for state, entry in (data.get("pending") or {}).items()
            if now - float(entry.get("at", 0)) < self.settings.login_timeout
        }
        while len(pending) >= MAX_PENDING_LOGINS:
            pending.pop(min(pending, key=lambda s: float(pending[s].get("at", 0))))
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters; RFC 7636 §4.1 allows 43-128
        mfa = mfa or self.settings.require_mfa
        pending[state] = {
            "nonce": nonce,
            "verifier": verifier,
            "next": safe_next(next_url, self.settings.default_next),
            "at": now,
            "mfa": mfa,
            "max_age": max_age,
        }
        data["pending"] = pending
        ctx.dirty = True
        extra: dict[str, Any] = {"nonce": nonce}
        if mfa:
            extra["acr_values"] = ACR_MFA
        if max_age is not None:
            extra["max_age"] = str(max_age)
        url, _ = self.client.oauth(" ".join(self.settings.scopes)).create_authorization_url(
            str(metadata["authorization_endpoint"]), state=state, code_verifier=verifier, **extra
        )
        return HttpResponse.redirect(url)

    def finish_login(self, ctx: Context, request: HttpRequest) -> HttpResponse:
        """The redirect back from the provider: check everything, then sign the person in."""
        state = request.arg("state")
        if not state:
            raise StateError("The response from Secure Access had no state", check="missing-state")
        pending = (ctx.data or {}).get("pending") or {}
        entry = pending.pop(state, None) if isinstance(pending, dict) else None
        if entry is not None:
            ctx.dirty = True  # used once, whatever happens next (J01)
        if entry is None:
            raise StateError(
                "This sign-in was not started in this browser, or was already used",
                check="state-mismatch",
            )
        now = self.clock()
        if now - float(entry["at"]) > self.settings.login_timeout:
            raise StateError(
                "This sign-in took too long; please start again", check="state-expired"
            )
        metadata = self._metadata()
        iss = request.arg("iss")
        if iss is not None and iss != self.settings.issuer:
            raise StateError(
                "The response came from another provider (iss)", check="invalid-iss-param"
            )
        if iss is None and metadata.get("authorization_response_iss_parameter_supported"):
            raise StateError(
                "The response from Secure Access had no iss", check="missing-iss-param"
            )
        error = request.arg("error")
        if error:
            self._authorization_error(error)
        code = request.arg("code")
        if not code:
            raise StateError("The response from Secure Access had no code", check="missing-code")

        token = self.client.token_request(
            lambda: self.client.oauth().fetch_token(
                str(metadata["token_endpoint"]),
                grant_type="authorization_code",
                code=code,
                code_verifier=entry["verifier"],
                timeout=self.settings.http_timeout,
            )
        )
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise InvalidToken("Secure Access sent no ID Token", check="missing-id-token")
        max_age = entry.get("max_age")
        verified = validate_id_token(
            id_token,
            self.provider,
            self.settings.algorithms,
            IdTokenExpectations(
                issuer=self.settings.issuer,
                client_id=self.settings.client_id,
                nonce=str(entry["nonce"]),
                access_token=str(token["access_token"]),
                code=code,
                require_at_hash=self.settings.require_at_hash,
                require_mfa=bool(entry.get("mfa")),
                max_age=int(max_age) if max_age is not None else None,
            ),
            now=now,
            skew=self.settings.clock_skew,
            max_token_age=self.settings.max_token_age,
        )
        id_claims = verified.claims
        userinfo = self.client.userinfo(str(token["access_token"]), str(id_claims["sub"]))
        self._establish(ctx, id_claims, userinfo, token, id_token)
        log.info(
            "Signed in: sub %s, sid %s, acr %s",
            id_claims["sub"],
            id_claims.get("sid"),
            id_claims.get("acr"),
        )
        return HttpResponse.redirect(str(entry["next"]), 303)

    def _authorization_error(self, error: str) -> None:
        code = error if ERROR_CODE.match(error) else "invalid"
        if code in ("server_error", "temporarily_unavailable"):
            raise ProviderUnavailable(
                "Secure Access could not sign you in just now", check=f"authorization-{code}"
            )
        raise AuthorizationError(
            _FRIENDLY_ERRORS.get(code, "Secure Access could not sign you in"),
            check=f"authorization-{code}",
            error=code,
        )

    def _establish(
        self,
        ctx: Context,
        id_claims: Mapping[str, Any],
        userinfo: Mapping[str, Any],
        token: Mapping[str, Any],
        id_token: str | None,
    ) -> None:
        claims = {k: v for k, v in userinfo.items() if k not in _PROTOCOL_CLAIMS}
        claims.update({k: v for k, v in id_claims.items() if k not in _TOKEN_CLAIMS})
        now = self.clock()
        auth_time = id_claims.get("auth_time")
        if not isinstance(auth_time, (int, float)) or isinstance(auth_time, bool):
            auth_time = now
        claims["auth_time"] = int(auth_time)
        expires_in = token.get("expires_in")
        auth = {
            "iss": self.settings.issuer,
            "sub": id_claims["sub"],
            "sid": id_claims.get("sid"),
            "auth_time": int(auth_time),
            "claims": claims,
            "id_token": id_token,
            "id_claims": dict(id_claims),
            "access_token": token.get("access_token"),
            "refresh_token": token.get("refresh_token"),
            "expires_at": now + (int(expires_in) if isinstance(expires_in, int) else 300),
        }
        self._fresh_session(ctx, {"auth": auth})
        assert ctx.cookie_value is not None
        key = digest(ctx.cookie_value)
        index_ttl = self.settings.session_lifetime + self.settings.clock_skew
        if auth["sid"]:
            self.store.add_to_index(
                digest("sid", self.settings.issuer, str(auth["sid"])), key, index_ttl
            )
        self.store.add_to_index(
            digest("sub", self.settings.issuer, str(auth["sub"])), key, index_ttl
        )
        ctx.user = User.from_claims(claims)

    def sign_in_with_claims(self, claims: Mapping[str, Any], ctx: Context | None = None) -> str:
        """Create a signed-in session from claims already trusted; return its cookie value.

        For the test helper (:mod:`.testing`) only: nothing here checks the claims.
        """
        ctx = ctx or Context(None, None)
        token = {
            "access_token": secrets.token_urlsafe(16),
            "expires_in": self.settings.session_lifetime,
        }
        self._establish(ctx, dict(claims), {}, token, None)
        self.close(ctx)
        assert ctx.cookie_value is not None
        return ctx.cookie_value

    # -- silent refresh (J03 Also, J08) ---------------------------------------------------------

    def _refresh_due(self, auth: Mapping[str, Any] | None, now: float) -> bool:
        return (
            auth is not None
            and bool(auth.get("refresh_token"))
            and now >= float(auth.get("expires_at", 0)) - REFRESH_MARGIN_SECONDS
            and now >= float(auth.get("refresh_after", 0))
        )

    def _maybe_refresh(self, ctx: Context) -> None:
        """Refresh the tokens if due, once per session however many requests arrive at once.

        Refresh tokens are single use (the provider rotates them and treats a second use as
        theft, revoking the whole family), so only the request holding the session's refresh
        lock refreshes; the others carry on with the session as it is. The holder re-reads the
        record first (another request may just have refreshed) and saves as soon as it is done.
        """
        now = self.clock()
        if not self._refresh_due(ctx.auth, now) or not ctx.cookie_value:
            return
        key = digest(ctx.cookie_value)
        lock = digest("refresh-lock", key)
        if not self.store.remember_once(lock, REFRESH_LOCK_SECONDS):
            return
        try:
            stored = self.store.load(key)
            if stored is None:
                self._end(ctx)
                return
            seen = (ctx.data or {}).get("last_seen", 0)
            stored["last_seen"] = max(float(stored.get("last_seen", 0)), float(seen))
            ctx.data = stored
            auth = ctx.auth
            if auth is None or not self._refresh_due(auth, now):
                return
            try:
                self._refresh(ctx, auth, now)
            except ProviderUnavailable:
                log.warning(
                    "Token refresh failed: Secure Access unreachable; session kept (degraded mode)"
                )
                auth["refresh_after"] = now + REFRESH_RETRY_SECONDS
            except (TokenError, InvalidToken) as error:
                log.info(
                    "Local session ended: token refresh refused (%s, sub %s)",
                    error.check,
                    auth.get("sub"),
                )
                self._end(ctx)
                return
            self.store.save(key, stored, self._ttl(stored))
        finally:
            self.store.forget(lock)

    def _refresh(self, ctx: Context, auth: dict[str, Any], now: float) -> None:
        metadata = self._metadata()
        token = self.client.token_request(
            lambda: self.client.oauth().refresh_token(
                str(metadata["token_endpoint"]),
                refresh_token=str(auth["refresh_token"]),
                timeout=self.settings.http_timeout,
            )
        )
        id_token = token.get("id_token")
        if isinstance(id_token, str):
            verified = validate_id_token(
                id_token,
                self.provider,
                self.settings.algorithms,
                IdTokenExpectations(
                    issuer=self.settings.issuer,
                    client_id=self.settings.client_id,
                    nonce=None,
                    access_token=str(token["access_token"]),
                    require_at_hash=self.settings.require_at_hash,
                    original=auth.get("id_claims") or {},
                ),
                now=now,
                skew=self.settings.clock_skew,
                max_token_age=self.settings.max_token_age,
            )
            auth["id_token"] = id_token
            auth["id_claims"] = verified.claims
        expires_in = token.get("expires_in")
        auth["access_token"] = token["access_token"]
        auth["refresh_token"] = token.get("refresh_token") or auth["refresh_token"]
        auth["expires_at"] = now + (int(expires_in) if isinstance(expires_in, int) else 300)
        auth.pop("refresh_after", None)

    def access_token(self, ctx: Context) -> str | None:
        """A current access token for calling APIs on the person's behalf, or None."""
        auth = ctx.auth
        if auth is None or self.clock() >= float(auth.get("expires_at", 0)):
            return None
        token = auth.get("access_token")
        return token if isinstance(token, str) else None

    # -- guarding pages --------------------------------------------------------------------------

    def login_url(self, next_url: str, *, mfa: bool = False, max_age: int | None = None) -> str:
        params: dict[str, str] = {"next": next_url}
        if mfa:
            params["mfa"] = "1"
        if max_age is not None:
            params["max_age"] = str(max_age)
        return self.settings.login_path + "?" + urlencode(params)

    def guard(
        self,
        ctx: Context,
        request: HttpRequest,
        *,
        roles: Sequence[str] | None = None,
        mfa: bool = False,
        max_age: int | None = None,
    ) -> HttpResponse | None:
        """None if the person may see this page; otherwise where to send them instead."""
        user = ctx.user
        mfa = mfa or self.settings.require_mfa
        here = safe_next(request.full_path or request.path, self.settings.default_next)
        stale = (
            user is not None
            and max_age is not None
            and self.clock() - float(user.auth_time or 0) > max_age
        )
        if user is None or (mfa and not user.has_mfa) or stale:
            if request.method not in ("GET", "HEAD"):
                return HttpResponse.page(
                    401,
                    pages.session_ended_page(
                        self.login_url(self.settings.default_next), service=self.service_name
                    ),
                )
            return HttpResponse.redirect(self.login_url(here, mfa=mfa, max_age=max_age))
        if roles is not None and not user.has_any_role(roles):
            log.info("Refused a page: sub %s lacks any of the roles %s", user.sub, list(roles))
            return HttpResponse.page(403, pages.forbidden_page(service=self.service_name))
        return None

    # -- RP-initiated logout (J07) --------------------------------------------------------------

    def logout(self, ctx: Context, request: HttpRequest) -> HttpResponse:
        """GET: ask to confirm. POST with the CSRF token: end the local session, then the
        provider's (RP-Initiated Logout 1.0 §2)."""
        if request.method != "POST":
            if ctx.auth is None:
                return HttpResponse.redirect(self.settings.default_next)
            token = ctx.csrf_token or ""
            return HttpResponse.page(
                200,
                pages.sign_out_page(self.settings.logout_path, token, service=self.service_name),
            )
        sent = (request.form().get("csrf_token") or [""])[0]
        expected = ctx.csrf_token
        if ctx.auth is None:
            return HttpResponse.redirect(self.settings.default_next, 303)
        if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
            raise LogoutStateError("The sign-out form has expired; please try again", check="csrf")
        auth = ctx.auth
        id_token = auth.get("id_token")
        self._end(ctx)
        try:
            endpoint = self._metadata().get("end_session_endpoint")
        except SecureAccessError:
            endpoint = None  # degraded mode: the local session is over; the provider's is not
        if not endpoint:
            return HttpResponse.page(200, pages.signed_out_page(service=self.service_name))
        params: dict[str, str] = {"client_id": self.settings.client_id}
        if isinstance(id_token, str):
            params["id_token_hint"] = id_token
        if self.settings.post_logout_redirect_uri:
            state = secrets.token_urlsafe(32)
            params["post_logout_redirect_uri"] = self.settings.post_logout_redirect_uri
            params["state"] = state
            self._fresh_session(ctx, {"logout_state": state, "logout_at": self.clock()})
        log.info("Signed out: sub %s", auth.get("sub"))
        separator = "&" if "?" in str(endpoint) else "?"
        return HttpResponse.redirect(str(endpoint) + separator + urlencode(params), 303)

    def after_logout_return(self, ctx: Context, request: HttpRequest) -> HttpResponse | None:
        """On the post-logout redirect URI: check the ``state`` the provider sends back (J07)."""
        expected = (ctx.data or {}).get("logout_state")
        uri = self.settings.post_logout_redirect_uri
        if not expected or not uri or request.path != (urlsplit(uri).path or "/"):
            return None
        self._end(ctx)  # the logout session has done its one job
        state = request.arg("state")
        if state is None:
            raise LogoutStateError(
                "Secure Access did not confirm the sign-out (no state)",
                check="rp-init-logout-no-state",
            )
        if not secrets.compare_digest(state.encode(), str(expected).encode()):
            raise LogoutStateError(
                "The sign-out confirmation was not for this browser",
                check="rp-init-logout-other-state",
            )
        ctx.just_signed_out = True
        return None

    def backchannel_logout(self, request: HttpRequest) -> HttpResponse:
        """Back-channel logout (J06), by :class:`~.backchannel.BackchannelLogout`."""
        return self.backchannel.handle(request)

    def end_sessions(self, *, sub: str | None, sid: str | None) -> int:
        """End local sessions by ``sid``, or all of ``sub``'s (Back-Channel Logout 1.0 §2.7)."""
        return self.backchannel.end_sessions(sub=sub, sid=sid)

    # -- dispatch ---------------------------------------------------------------------------------

    def error_response(self, error: SecureAccessError) -> HttpResponse:
        log.warning("Sign-in refused: %s", error)
        body = pages.error_page(
            error, retry_url=self.settings.login_path, service=self.service_name
        )
        return HttpResponse.page(error.status, body)

    def route(self, ctx: Context, request: HttpRequest) -> HttpResponse | None:
        """Answer the library's own URLs (raising on refusal); None for every other request."""
        settings = self.settings
        path = request.path
        if path == settings.backchannel_logout_path:
            return self.backchannel.handle(request)
        if path == settings.login_path:
            if request.method not in ("GET", "HEAD"):
                return HttpResponse(405, [("Allow", "GET")])
            max_age = request.arg("max_age")
            return self.start_login(
                ctx,
                next_url=request.arg("next"),
                mfa=request.arg("mfa") == "1",
                max_age=int(max_age)
                if max_age and max_age.isdigit() and len(max_age) < 9
                else None,
            )
        if path == settings.redirect_path:
            if request.method not in ("GET", "HEAD"):
                return HttpResponse(405, [("Allow", "GET")])
            return self.finish_login(ctx, request)
        if path == settings.logout_path:
            return self.logout(ctx, request)
        return self.after_logout_return(ctx, request)
