"""The ``SECURE_ACCESS_*`` settings: what each one means, its default and its checks.

A Flask service puts them in ``app.config``; a plain WSGI service passes a mapping (often
``os.environ``) to :meth:`Settings.from_mapping`. Only three are required: the issuer, the
client id and a client secret (or a private key). Everything is validated at start-up, so a
typo fails loudly there rather than as a confusing sign-in error later.

Security-relevant choices (security-requirements.md):

- **J02**: ``SECURE_ACCESS_ISSUER`` is the pinned issuer. Discovery is fetched from it and must
  name exactly it; nothing is taken from a request's Host header.
- **J03**: ``SECURE_ACCESS_ALGORITHMS`` is the signature algorithm allow-list, ``["RS256"]`` by
  default (the service's registered ``id_token_signed_response_alg``). ``none`` and HS* can
  never be allowed.
- **J04**: ``SECURE_ACCESS_REQUIRE_AT_HASH`` (default on): Secure Access always sends
  ``at_hash`` (H03), so an ID Token without one is refused.
- **J08**: the local session lasts at most ``SECURE_ACCESS_SESSION_LIFETIME`` from the
  provider's ``auth_time`` (default 12 h, the provider's absolute limit) and at most
  ``SECURE_ACCESS_SESSION_IDLE_TIMEOUT`` between requests (default 1 h, the provider's idle
  limit), so it never outlives the provider's session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from secure_access_client.errors import ConfigurationError

PREFIX = "SECURE_ACCESS_"

#: ``acr`` value meaning "a password plus a second factor" (the provider's discovery document).
ACR_MFA = "urn:secure-access:acr:mfa"
#: Algorithms the library can verify. ``none`` and HS* are absent on purpose (J03, L02).
SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
DEFAULT_SCOPES = ("openid", "profile", "email", "organisation", "roles")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,255}$")


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def _check_url(name: str, value: str, *, allow_path: bool = True) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{PREFIX}{name} must be an absolute https URL", check="settings")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        # Plain http is for a laptop only: tokens and cookies must never cross a network in clear.
        raise ConfigurationError(
            f"{PREFIX}{name} must use https (http is accepted for loopback addresses only)",
            check="settings",
        )
    if parts.fragment or (not allow_path and parts.path not in ("", "/")):
        raise ConfigurationError(f"{PREFIX}{name} has a fragment or a path", check="settings")
    return value


def _words(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            loaded = json.loads(text)
            return tuple(str(v) for v in loaded)
        return tuple(w for w in re.split(r"[\s,]+", text) if w)
    return tuple(str(v) for v in value)


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _number(
    name: str, value: Any, default: float, *, minimum: float = 0, maximum: float = float("inf")
) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{PREFIX}{name} must be a number", check="settings") from None
    if not minimum <= number <= maximum:
        raise ConfigurationError(
            f"{PREFIX}{name} must be between {minimum:g} and {maximum:g}", check="settings"
        )
    return number


def _path(name: str, value: Any, default: str) -> str:
    path = str(value) if value else default
    if not path.startswith("/") or path.startswith("//") or "?" in path or "#" in path:
        raise ConfigurationError(f"{PREFIX}{name} must be a path like {default}", check="settings")
    return path


def _private_key(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    if isinstance(value, Mapping):
        jwk = dict(value)
    else:
        text = str(value).strip()
        if not text.startswith("{"):
            with open(text, encoding="utf-8") as handle:  # a path to a JWK file
                text = handle.read()
        jwk = json.loads(text)
    if "d" not in jwk or not jwk.get("kid"):
        raise ConfigurationError(
            f"{PREFIX}PRIVATE_KEY must be a private JWK with a kid", check="settings"
        )
    return jwk


@dataclass(frozen=True)
class Settings:
    """Every setting, validated. Build it with :meth:`from_mapping`."""

    #: The pinned issuer, e.g. ``https://sign-in.education.example`` (J02).
    issuer: str
    #: The service's client id at Secure Access.
    client_id: str
    #: The public origin of this service, e.g. ``https://collect.example``: the redirect URI is
    #: built from it, never from the request's Host header.
    base_url: str
    #: Client secrets, newest first. The first is sent; several may be listed during rotation.
    client_secrets: tuple[str, ...] = ()
    #: A private JWK (with ``kid``) for ``private_key_jwt`` instead of a secret.
    private_key: dict[str, Any] | None = None
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 (a method name)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    #: Where the provider sends people back (must be registered exactly: F01).
    redirect_path: str = "/auth/callback"
    login_path: str = "/auth/sign-in"
    logout_path: str = "/auth/sign-out"
    backchannel_logout_path: str = "/auth/backchannel-logout"
    #: A registered post-logout redirect URI (J07). Unset: the provider shows its own page.
    post_logout_redirect_uri: str | None = None
    #: Where to go after sign-in when the person did not ask for a particular page.
    default_next: str = "/"
    #: Signature algorithm allow-list for ID Tokens and Logout Tokens (J03, J06).
    algorithms: tuple[str, ...] = ("RS256",)
    #: Every sign-in asks for, and must get, a second factor (``acr`` = :data:`ACR_MFA`).
    require_mfa: bool = False
    require_at_hash: bool = True
    #: Ask the UserInfo endpoint for the claims the scopes grant (names, email, organisation).
    fetch_userinfo: bool = True
    #: Longest local session, counted from the provider's ``auth_time`` (J08).
    session_lifetime: int = 43200
    #: Longest gap between two requests before the local session ends (J08).
    session_idle_timeout: int = 3600
    #: Allowed clock difference with the provider, in seconds (J03: at most 60).
    clock_skew: int = 60
    #: An ID Token or Logout Token issued longer ago than this is refused (J03 "iat not far in
    #: the past"); it also bounds how long a Logout Token's ``jti`` must be remembered.
    max_token_age: int = 600
    #: How long a started sign-in (state, nonce, PKCE verifier) stays usable (J01).
    login_timeout: int = 900
    http_timeout: float = 5.0
    #: How long discovery and the JWKS are cached. An unknown ``kid`` refetches the JWKS once,
    #: at most every ``jwks_min_refresh_interval`` seconds (J02 Also).
    metadata_cache_seconds: int = 300
    jwks_min_refresh_interval: int = 30
    #: ``redis://`` URL for the server-side sessions. Unset: files under ``session_dir``.
    redis_url: str | None = None
    session_dir: str | None = None
    cookie_name: str = ""
    cookie_secure: bool = True

    @property
    def redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + self.redirect_path

    @property
    def backchannel_logout_uri(self) -> str:
        return self.base_url.rstrip("/") + self.backchannel_logout_path

    @property
    def session_cookie_name(self) -> str:
        if self.cookie_name:
            return self.cookie_name
        # One cookie per service: services on one host (e.g. 127.0.0.1 on different ports, as in
        # the demo) share a cookie jar, and must not overwrite each other's session cookie.
        slug = re.sub(r"[^A-Za-z0-9_-]", "_", self.client_id)[:64]
        return ("__Host-" if self.cookie_secure else "") + "sa_" + slug

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], prefix: str = PREFIX) -> Settings:
        """Read ``SECURE_ACCESS_*`` keys from ``config`` (``app.config``, ``os.environ``...)."""

        def get(name: str) -> Any:
            value = config.get(prefix + name)
            return None if value == "" else value

        issuer = get("ISSUER")
        client_id = get("CLIENT_ID")
        base_url = get("BASE_URL")
        for name, value in (("ISSUER", issuer), ("CLIENT_ID", client_id), ("BASE_URL", base_url)):
            if not value:
                raise ConfigurationError(f"{prefix}{name} is not set", check="settings")
        issuer = str(issuer)
        if issuer.endswith("/") or "?" in issuer or "#" in issuer:
            raise ConfigurationError(
                f"{prefix}ISSUER must have no trailing slash, query or fragment", check="settings"
            )
        _check_url("ISSUER", issuer)
        _check_url("BASE_URL", str(base_url))
        if not _CLIENT_ID.match(str(client_id)):
            raise ConfigurationError(f"{prefix}CLIENT_ID is not a client id", check="settings")

        secrets = _words(get("CLIENT_SECRETS")) or _words(
            [get("CLIENT_SECRET")] if get("CLIENT_SECRET") else []
        )
        private_key = _private_key(get("PRIVATE_KEY"))
        if not secrets and not private_key:
            raise ConfigurationError(
                f"{prefix}CLIENT_SECRET (or {prefix}PRIVATE_KEY) is not set", check="settings"
            )
        method = str(
            get("TOKEN_ENDPOINT_AUTH_METHOD")
            or ("private_key_jwt" if private_key else "client_secret_basic")
        )
        if method not in AUTH_METHODS:
            raise ConfigurationError(
                f"{prefix}TOKEN_ENDPOINT_AUTH_METHOD must be one of {', '.join(AUTH_METHODS)}",
                check="settings",
            )
        if method == "private_key_jwt" and not private_key:
            raise ConfigurationError(f"{prefix}PRIVATE_KEY is not set", check="settings")

        algorithms = _words(get("ALGORITHMS")) or ("RS256",)
        unsupported = [a for a in algorithms if a not in SUPPORTED_ALGORITHMS]
        if unsupported:
            # none and HS* land here: they are never acceptable for these tokens (J03, L02).
            raise ConfigurationError(
                f"{prefix}ALGORITHMS has algorithms that are not allowed: {', '.join(unsupported)}",
                check="settings",
            )
        scopes = _words(get("SCOPES")) or DEFAULT_SCOPES
        if "openid" not in scopes:
            raise ConfigurationError(f"{prefix}SCOPES must include openid", check="settings")

        post_logout = get("POST_LOGOUT_REDIRECT_URI")
        if post_logout:
            _check_url("POST_LOGOUT_REDIRECT_URI", str(post_logout))

        default_next = _path("DEFAULT_NEXT", get("DEFAULT_NEXT"), "/")
        return cls(
            issuer=issuer,
            client_id=str(client_id),
            base_url=str(base_url).rstrip("/"),
            client_secrets=secrets,
            private_key=private_key,
            token_endpoint_auth_method=method,
            scopes=scopes,
            redirect_path=_path("REDIRECT_PATH", get("REDIRECT_PATH"), "/auth/callback"),
            login_path=_path("LOGIN_PATH", get("LOGIN_PATH"), "/auth/sign-in"),
            logout_path=_path("LOGOUT_PATH", get("LOGOUT_PATH"), "/auth/sign-out"),
            backchannel_logout_path=_path(
                "BACKCHANNEL_LOGOUT_PATH",
                get("BACKCHANNEL_LOGOUT_PATH"),
                "/auth/backchannel-logout",
            ),
            post_logout_redirect_uri=str(post_logout) if post_logout else None,
            default_next=default_next,
            algorithms=algorithms,
            require_mfa=_flag(get("REQUIRE_MFA"), False),
            require_at_hash=_flag(get("REQUIRE_AT_HASH"), True),
            fetch_userinfo=_flag(get("FETCH_USERINFO"), True),
            session_lifetime=int(
                _number("SESSION_LIFETIME", get("SESSION_LIFETIME"), 43200, minimum=60)
            ),
            session_idle_timeout=int(
                _number("SESSION_IDLE_TIMEOUT", get("SESSION_IDLE_TIMEOUT"), 3600, minimum=60)
            ),
            clock_skew=int(_number("CLOCK_SKEW", get("CLOCK_SKEW"), 60, maximum=60)),  # J03
            max_token_age=int(_number("MAX_TOKEN_AGE", get("MAX_TOKEN_AGE"), 600, minimum=60)),
            login_timeout=int(_number("LOGIN_TIMEOUT", get("LOGIN_TIMEOUT"), 900, minimum=60)),
            http_timeout=_number("HTTP_TIMEOUT", get("HTTP_TIMEOUT"), 5.0, minimum=0.1),
            metadata_cache_seconds=int(
                _number("METADATA_CACHE_SECONDS", get("METADATA_CACHE_SECONDS"), 300)
            ),
            jwks_min_refresh_interval=int(
                _number("JWKS_MIN_REFRESH_INTERVAL", get("JWKS_MIN_REFRESH_INTERVAL"), 30)
            ),
            redis_url=str(get("REDIS_URL")) if get("REDIS_URL") else None,
            session_dir=str(get("SESSION_DIR")) if get("SESSION_DIR") else None,
            cookie_name=str(get("COOKIE_NAME") or ""),
            cookie_secure=_flag(get("COOKIE_SECURE"), True),
        )
