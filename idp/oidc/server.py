"""The OAuth 2.0 / OpenID Connect authorization server: every Authlib subclass, registered once.

CONVENTIONS 6: this is the one module that subclasses Authlib and registers the grants,
extensions and endpoints; the views in :mod:`idp.oidc.endpoints` only call
``authorization.create_*_response()``. It implements:

- RFC 6749 §3.1 (parameters at most once), §3.1.2 (redirection endpoint), §4.1 (the code
  grant), §4.4 (client credentials), §5.2 (token errors), §6 (refresh), §2.3 (client
  authentication, one method per request); RFC 7636 (PKCE); RFC 7523 §3 and OIDC Core §9
  (``private_key_jwt``); RFC 7009 (revocation); RFC 7662 (introspection); RFC 6750 §2, §3
  (bearer tokens at UserInfo); RFC 9207 (``iss`` in authorization responses); OpenID Connect
  Core 1.0 §3.1 (the code flow), §5.3 (UserInfo), §11 (offline access), §12 (refresh).

security-requirements.md, item by item:

- **F01**, **V1**: ``redirect_uri`` is compared by simple string equality with the registered
  list (:meth:`Client.check_redirect_uri`). A missing, duplicated or unregistered URI, or an
  unknown client, raises an error *without* a redirect URI, which the view shows as our own
  error page (:meth:`AuthorizationServer.get_authorization_grant` checks these before
  anything else, so a bad ``response_type`` or scope cannot reach an unvalidated URI: **V2**).
  A client with several registered URIs must send one.
- **F02**: ``response_type=code`` only; the grants are authorization_code, refresh_token and
  client_credentials, each only for services registered for it.
- **F03**, **F04**, **V4**: :class:`RequiredS256` makes PKCE mandatory for every client with
  S256 only; a verifier is checked for length and charset, and one presented for a code
  without a challenge is refused.
- **F05**, **F09**, **F10**: ``openid`` is required; unknown scopes and parameters are
  ignored; ``nonce`` is optional in the code flow; ``state`` comes back unchanged and ``iss``
  is in every authorization response, success or error.
- **G01**-**G03**: codes live in :mod:`idp.oidc.codes` (atomic single use, replay revokes).
- **G04**, **V6**, **V7**: client secrets are checked through the service registry's HMAC
  comparison, never in plaintext; ``private_key_jwt`` assertions are verified against the
  service's registered JWKS with an explicit algorithm allow-list, ``iss`` = ``sub`` =
  client_id, ``aud`` our issuer or an endpoint, ``exp`` required (and at most an hour away)
  and a ``jti`` that may be used once (Redis ``SET NX`` until ``exp``).
- **G05**: refresh tokens rotate on every use; reuse revokes the family (:mod:`idp.oidc.tokens`).
- **G06**: every error body has an RFC 6749 §5.2 code and an ``error_description`` limited to
  the characters §5.2 allows (so never CR, LF or TAB); token, UserInfo, revocation and
  introspection responses carry ``Cache-Control: no-store`` and ``Pragma: no-cache``.
- **L02**: JOSE input is size-capped before parsing, decoded with explicit keys and algorithms.

Decisions: the client credentials grant has a scope vocabulary of its own
(:data:`CLIENT_CREDENTIALS_SCOPES`: the service-to-service API's), so its tokens carry no user
scopes and no ID token, and the code flow never grants an API scope. ``exists_nonce`` never
reports a replay: codes are single use and the relying party checks its nonce, while a nonce
check here would break the re-validation of a request resumed after sign-in.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Final, cast
from urllib.parse import quote, unquote, urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer as _FlaskAuthorizationServer
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc6749.endpoint import Endpoint
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode as _OpenIDCode
from authlib.oidc.core import OpenIDToken as _OpenIDToken
from flask import Flask, Response, g, has_request_context
from flask import request as flask_request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.datastructures import MultiDict

from idp.extensions import db
from idp.models import Organisation, Service, User, UserStatus
from idp.models.base import utcnow
from idp.oidc import codes, tokens
from idp.oidc.claims import user_claims
from idp.oidc.discovery import (
    AUTHORIZATION_PATH,
    INTROSPECTION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    get_issuer,
)
from idp.oidc.keys import SIGNING_ALGS, get_keyring, jws_registry
from idp.services import access, audit, authentication
from idp.services.clients import (
    API_SCOPES,
    CLIENT_ID_PATTERN,
    TOKEN_ENDPOINT_AUTH_METHODS,
    USER_SCOPES,
    secret_is_current,
)
from idp.services.crypto import token_hash
from idp.services.service_cache import get_service_cache
from idp.services.sso_sessions import SsoSession
from idp.services.transaction import transaction
from idp.store import get_store

#: Client authentication methods, in the order they are tried (the service registry's list).
AUTH_METHODS: Final[list[str]] = list(TOKEN_ENDPOINT_AUTH_METHODS)
#: Scopes the client credentials grant may grant: the service-to-service API's (idp.api).
#: User scopes never apply to it, and these never apply to the code flow.
CLIENT_CREDENTIALS_SCOPES: Final[frozenset[str]] = frozenset(API_SCOPES)
#: ``Authorization`` headers longer than this are refused before anything parses them (L02).
MAX_AUTHORIZATION_HEADER: Final = 8192
#: Client assertions longer than this are refused before JOSE parsing (L02, CVE-2025-61920).
MAX_ASSERTION_LENGTH: Final = 8192
#: An assertion may not claim to live longer than this (it bounds the jti store too).
MAX_ASSERTION_LIFETIME_SECONDS: Final = 3600
ASSERTION_LEEWAY_SECONDS: Final = 60
#: Authorization parameters beyond these lengths are refused: they travel in URLs, tokens and
#: the stored request (``state``, ``nonce`` and the rest), or are parsed (``id_token_hint``).
MAX_PARAMETER_LENGTH: Final = 2048
MAX_HINT_LENGTH: Final = 8192
MAX_LOGIN_HINT_LENGTH: Final = 320
PROMPTS: Final = frozenset({"none", "login", "consent", "select_account"})

#: Parameters of an authorization request we read; each may appear once (RFC 6749 §3.1).
AUTHORIZATION_PARAMETERS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "code_challenge",
    "code_challenge_method",
    "acr_values",
    "login_hint",
    "id_token_hint",
    "response_mode",
    "ui_locales",
    "claims_locales",
    "display",
    "claims",
    "request",
    "request_uri",
    "registration",
)
#: Parameters of token, revocation and introspection requests; each may appear once.
TOKEN_PARAMETERS: Final = (
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "token",
    "token_type_hint",
)
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
CODE_VERIFIER: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_MAX_AGE: Final = re.compile(r"[0-9]{1,9}")
_JTI_KEY: Final = "oidc:client-assertion-jti:{}:{}"
#: RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_NOT_DESCRIPTION_CHARS: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
NO_STORE_HEADERS: Final = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
#: The WSGI environ key under which the machine lane hands the full path a code it has
#: already redeemed (:func:`_redeem`). Request headers reach the environ only as ``HTTP_*``,
#: so a client cannot set it.
LANE_REDEMPTION: Final = "idp.oidc.lane_redemption"


# -- requests -----------------------------------------------------------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    """Parameters as lists (to spot duplicates); ``data`` gives the first of each."""

    def __init__(self, params: Mapping[str, Sequence[str]]) -> None:
        self._lists = {k: list(v) for k, v in params.items()}
        self._first = {k: v[0] for k, v in self._lists.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._first

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return defaultdict(list, self._lists)


class ProtocolRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth request built from explicit parameters, at a URI built from our issuer.

    Token, revocation, introspection and UserInfo requests take their parameters from the
    form body only (RFC 6749 §3.2, §4.1.3; RFC 7009 §2.1; RFC 7662 §2.1; RFC 6750 §2.2), never
    from the query string. Authorization requests take them from the query (GET) or the form
    (POST), or from a request stored while the person signed in.
    """

    def __init__(
        self, method: str, path: str, params: Mapping[str, Sequence[str]], headers: Any
    ) -> None:
        super().__init__(method=method, uri=get_issuer() + path, headers=headers)
        self.payload = _Payload(params)
        #: The SSO session an authorization is granted in (set by the authorization view).
        self.sso: SsoSession | None = None
        #: How the user authenticated, for every token of this request.
        self.authn: tokens.Authentication | None = None
        #: What this token request issued (for the code's spent marker).
        self.issued: codes.Issued | None = None
        #: What a failed client authentication tried, for the audit record.
        self.attempted_client: tuple[str | None, str, str] | None = None
        #: Whether this authorization request was answered with a code.
        self.code_issued = False
        #: The organisation the person acts for (public id; set by the authorization view
        #: after the choose-organisation step, issue 7), bound into the code.
        self.organisation_id: str | None = None

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


def multi_params(values: MultiDict[str, str]) -> dict[str, list[str]]:
    return {key: values.getlist(key) for key in values}


def authorization_request(params: Mapping[str, Sequence[str]]) -> ProtocolRequest:
    return ProtocolRequest(flask_request.method, AUTHORIZATION_PATH, params, flask_request.headers)


def body_request(path: str) -> ProtocolRequest:
    return ProtocolRequest(
        flask_request.method, path, multi_params(flask_request.form), flask_request.headers
    )


# -- responses ----------------------------------------------------------------------------------


def clean_description(text: str | None) -> str:
    """G06: only the characters RFC 6749 §5.2 allows, and not too many of them."""
    return _NOT_DESCRIPTION_CHARS.sub("", text or "").strip()[:200]


def add_query(uri: str, params: Iterable[tuple[str, str]]) -> str:
    """Add parameters to a redirect URI, keeping the registered URI byte for byte.

    RFC 6749 §3.1.2 ("MUST retain the query component"). Authlib's ``add_params_to_uri``
    re-encodes an existing query, which would change a registered URI (F01). Registered URIs
    never have a fragment, so there is none to keep.
    """
    encoded = urlencode(list(params), quote_via=quote)
    if "?" not in uri:
        return f"{uri}?{encoded}"
    return uri + encoded if uri.endswith(("?", "&")) else f"{uri}&{encoded}"


class BearerError(OAuth2Error):  # type: ignore[misc]
    """RFC 6750 §3, §3.1: an error at a bearer-token endpoint, with ``WWW-Authenticate``."""

    def __init__(self, error: str | None, description: str = "", status_code: int = 401) -> None:
        super().__init__(description=clean_description(description), status_code=status_code)
        self.error = error
        self.scope: str | None = None

    def get_headers(self) -> list[tuple[str, str]]:
        parts = []
        if self.error:
            parts.append(f'error="{self.error}"')
            if self.description:
                parts.append(f'error_description="{self.description}"')
            if self.scope:
                parts.append(f'scope="{self.scope}"')
        challenge = "Bearer " + ", ".join(parts) if parts else "Bearer"
        return [
            ("Content-Type", "application/json"),
            *NO_STORE_HEADERS,
            ("WWW-Authenticate", challenge),
        ]

    def __call__(self, uri: str | None = None) -> tuple[int, dict[str, str], list[Any]]:
        body = {"error": self.error} if self.error else {}
        if self.error and self.description:
            body["error_description"] = self.description
        return self.status_code, body, self.get_headers()


def error_response(error: OAuth2Error) -> tuple[int, Any, list[tuple[str, str]]]:
    """An error as (status, body, headers): a redirect when the error carries a validated
    redirect URI (with ``state`` and ``iss``, F10), else JSON per RFC 6749 §5.2 (G06)."""
    if isinstance(error, BearerError):
        return error()
    error.description = clean_description(error.get_error_description())
    body: list[tuple[str, str]] = [("error", str(error.error))]
    if error.description:
        body.append(("error_description", error.description))
    if error.redirect_uri:
        if error.state is not None:
            body.append(("state", str(error.state)))
        body.append(("iss", get_issuer()))
        return 302, "", [("Location", add_query(error.redirect_uri, body)), *NO_STORE_HEADERS]
    headers = [(k, v) for k, v in error.get_headers() if k not in ("Cache-Control", "Pragma")]
    return error.status_code, dict(body), [*headers, *NO_STORE_HEADERS]


# -- clients ------------------------------------------------------------------------------------


class Client(ClientMixin):  # type: ignore[misc]
    """Authlib's view of one of our registered services (:class:`~idp.models.Service`)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    @property
    def client_id(self) -> str:
        return self.service.client_id

    @property
    def id_token_signed_response_alg(self) -> str:
        return self.service.id_token_signed_response_alg

    def get_client_id(self) -> str:
        return self.service.client_id

    def get_default_redirect_uri(self) -> str | None:
        # F01 Also: with several registered URIs the request must say which one.
        uris = self.service.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this service may have, in request order; others are ignored
        (OIDC Core §3.1.2.1: scope values not understood SHOULD be ignored)."""
        if not scope:
            return ""
        allowed = set(self.service.allowed_scopes) & set(USER_SCOPES)  # never API scopes
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # F01: simple string comparison with the URIs as registered. No normalising.
        return isinstance(redirect_uri, str) and redirect_uri in self.service.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        # G04: HMAC-SHA-256 keyed hashes compared in constant time, never plaintext.
        return secret_is_current(self.service, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # Every service is confidential and authenticates the one way it registered.
        return method == self.service.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.service.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.service.grant_types


#: Requests that only read their client's service (never assign it, never read its roles).
_READ_ONLY_PATHS: Final = frozenset(
    {TOKEN_PATH, USERINFO_PATH, REVOCATION_PATH, INTROSPECTION_PATH}
)


def query_client(client_id: Any) -> Client | None:
    """The active service registered as ``client_id`` (looked up once per request)."""
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.match(client_id):
        return None
    cache: dict[str, Client | None] = g.setdefault("oidc_clients", {})
    if client_id not in cache:
        # The service and its secret hashes, from this process's cache (issue 4): one store
        # read instead of two queries; any change to a service invalidates it at once.
        # The protocol endpoints machines call only read the service: the shared cached copy
        # will do, without merging it into this request's session (issue 4).
        service = get_service_cache().find_active(
            client_id, attach=flask_request.path not in _READ_ONLY_PATHS
        )
        cache[client_id] = Client(service) if service is not None else None
    return cache[client_id]


def _note_attempt(request: ProtocolRequest, client_id: str | None, method: str, why: str) -> None:
    request.attempted_client = (client_id, method, why)


def parse_basic(header: str) -> tuple[str, str] | None:
    """The (client_id, secret) of a Basic ``Authorization`` header, None for another scheme.

    Raises ValueError for a Basic header that is not valid base64 of ``id:secret``.
    RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    """
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError("malformed Basic credentials") from error
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise ValueError("malformed Basic credentials")
    return unquote(client_id), unquote(secret)


def _basic_credentials(request: ProtocolRequest) -> tuple[str, str] | None:
    try:
        return parse_basic(request.headers.get("Authorization") or "")
    except ValueError:
        _note_attempt(request, None, "client_secret_basic", "malformed Basic credentials")
        return None


def authenticate_client_secret_basic(query: Any, request: ProtocolRequest) -> Client | None:
    credentials = _basic_credentials(request)
    if credentials is None:
        return None
    client_id, secret = credentials
    client = query(client_id)
    if client is None or not secret or not client.check_client_secret(secret):
        _note_attempt(request, client_id, "client_secret_basic", "unknown client or wrong secret")
        return None
    return client  # type: ignore[no-any-return]


def authenticate_client_secret_post(query: Any, request: ProtocolRequest) -> Client | None:
    client_id = request.form.get("client_id")
    secret = request.form.get("client_secret")
    if not client_id or not secret:
        return None
    client = query(client_id)
    if client is None or not client.check_client_secret(secret):
        _note_attempt(request, client_id, "client_secret_post", "unknown client or wrong secret")
        return None
    return client  # type: ignore[no-any-return]


@lru_cache(maxsize=256)
def _client_key_set(jwks: str) -> KeySet:
    """A service's registered public keys, imported once per distinct JWKS (kept per process;
    a changed JWKS is a different key, so rotation needs no invalidation)."""
    return KeySet.import_key_set(json.loads(jwks))


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2, §3; G04, V6, V7)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"
    #: Header members that would let the token choose its own key: never honoured (V6).
    REFUSED_HEADERS: Final = frozenset({"jwk", "jku", "x5u"})

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=ASSERTION_LEEWAY_SECONDS)

    def __call__(self, query: Any, request: ProtocolRequest) -> Client | None:
        assertion = request.form.get("client_assertion")
        if assertion is None and request.form.get("client_assertion_type") is None:
            return None
        claimed = request.form.get("client_id")
        try:
            client: Client | None = super().__call__(query, request)
        except InvalidClientError as error:
            _note_attempt(
                request, claimed, self.CLIENT_AUTH_METHOD, clean_description(error.description)
            )
            raise
        except (JoseError, ValueError, TypeError, KeyError, IndexError) as error:
            _note_attempt(request, claimed, self.CLIENT_AUTH_METHOD, "unreadable assertion")
            raise InvalidClientError(description="The client assertion is not valid.") from error
        if client is None:
            _note_attempt(request, claimed, self.CLIENT_AUTH_METHOD, "wrong client_assertion_type")
            return None
        if claimed is not None and claimed != client.client_id:
            _note_attempt(request, claimed, self.CLIENT_AUTH_METHOD, "client_id differs from sub")
            raise InvalidClientError(description="client_id does not match the assertion.")
        return client

    def extract_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(assertion, str) or len(assertion) > MAX_ASSERTION_LENGTH:
            raise InvalidClientError(description="The client assertion is too large.")
        return super().extract_assertion(assertion)  # type: ignore[no-any-return]

    def get_audiences(self) -> list[str]:
        issuer = get_issuer()
        return [issuer, *(issuer + p for p in (TOKEN_PATH, REVOCATION_PATH, INTROSPECTION_PATH))]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        jwks = client.service.jwks
        if not jwks:
            raise InvalidClientError(description="The client has no registered keys.")
        return _client_key_set(json.dumps(jwks, sort_keys=True))

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        # L02: our key set and an explicit allow-list; never none, HS* or a header's key.
        try:
            token = jwt.decode(
                assertion,
                resolve_key,
                algorithms=list(SIGNING_ALGS),
                registry=jws_registry(SIGNING_ALGS),
            )
        except JoseError as error:
            raise InvalidClientError(description="The client assertion is not valid.") from error
        if self.REFUSED_HEADERS.intersection(token.header):
            raise InvalidClientError(description="Keys in the assertion header are refused.")
        exp = token.claims.get("exp")
        if isinstance(exp, int) and exp > time.time() + MAX_ASSERTION_LIFETIME_SECONDS:
            raise InvalidClientError(description="The client assertion lives too long.")
        self.verify_claims(token.claims)
        return dict(token.claims)

    def validate_jti(self, claims: Mapping[str, Any], jti: Any) -> bool:
        """V7: each assertion ``jti`` is accepted once per client, remembered until ``exp``."""
        if not isinstance(jti, str) or not jti or len(jti) > 512:
            return False
        ttl = max(1, int(claims["exp"]) - int(time.time()) + ASSERTION_LEEWAY_SECONDS)
        key = _JTI_KEY.format(claims["sub"], token_hash(jti))
        return bool(get_store().set(key, b"1", nx=True, ex=ttl))


# -- PKCE ---------------------------------------------------------------------------------------


class RequiredS256(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only (F03, F04; RFC 7636 §4.2-§4.6; RFC 9700 §2.1.1, §4.8).

    Authlib's CodeChallenge lets a request without a challenge through and defaults to
    ``plain`` (security-requirements "1a"): here a missing challenge or method, or any method
    but S256, is ``invalid_request``.
    """

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if not challenge:
            raise InvalidRequestError("Missing 'code_challenge': PKCE with S256 is required.")
        if method != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        if not _S256_CHALLENGE.fullmatch(challenge):
            raise InvalidRequestError("Invalid 'code_challenge'.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        verifier = grant.request.form.get("code_verifier")
        code: codes.AuthorizationCode = grant.request.authorization_code
        if not code.code_challenge:
            # RFC 9700 §4.8.2: no challenge at authorization, so no verifier (and no code).
            raise InvalidGrantError("The code was issued without a code challenge.")
        if not verifier:
            raise InvalidRequestError("Missing 'code_verifier'.")
        if not CODE_VERIFIER.fullmatch(verifier):
            raise InvalidRequestError("Invalid 'code_verifier'.")
        super().validate_code_verifier(grant, result)


# -- ID tokens ----------------------------------------------------------------------------------


def _id_token(token: Mapping[str, Any], request: ProtocolRequest, nonce: str | None) -> str:
    client: Client = request.client
    assert request.authn is not None
    return id_token_for(client, request.user, token, request.authn, nonce)


def id_token_for(
    client: Client,
    user: User,
    token: Mapping[str, Any],
    authn: tokens.Authentication,
    nonce: str | None,
) -> str:
    """The ID token that goes with ``token`` (its scope and access token; OIDC Core §3.1.3.6)."""
    return tokens.make_id_token(
        client.service,
        user,
        scopes=str(token.get("scope", "")).split(),
        authn=authn,
        access_token=token.get("access_token"),
        nonce=nonce,
    )


class OpenIDCode(_OpenIDCode):  # type: ignore[misc]
    """The ID token of the code flow (OIDC Core §3.1.3.3, §3.1.3.6), signed by our key ring."""

    def __init__(self) -> None:
        super().__init__(require_nonce=False)  # F09: optional in the code flow

    def exists_nonce(self, nonce: str, request: ProtocolRequest) -> bool:
        return False  # see the module docstring

    def encode_id_token(self, token: Mapping[str, Any], request: ProtocolRequest) -> str:
        code: codes.AuthorizationCode = request.authorization_code
        return _id_token(token, request, code.nonce)


class OpenIDRefresh(_OpenIDToken):  # type: ignore[misc]
    """A new ID token on refresh (OIDC Core §12.2): same sub, sid, auth_time; no nonce."""

    def encode_id_token(self, token: Mapping[str, Any], request: ProtocolRequest) -> str:
        return _id_token(token, request, None)


# -- grants -------------------------------------------------------------------------------------


def active_user(user_id: int | None = None, sub: str | None = None) -> User | None:
    """The active person, as a read-only snapshot standing in for the ORM ``User``.

    Grants and UserInfo only read the person (sub, names, email, status, id for the
    organisation and role queries); the snapshot loads the ORM ``User`` for anything else
    (:class:`~idp.services.authentication.Account`), so it is typed as one (issue 4).
    """
    account = authentication.read_account(sub=sub, user_id=user_id)
    if account is None or account.status is not UserStatus.ACTIVE:
        return None
    return cast(User, account)


def _issue(
    grant: grants.BaseGrant,
    user: User,
    scope: str,
    include_refresh_token: bool,
    parent: tokens.RefreshTokenRow | None = None,
) -> dict[str, Any]:
    request: ProtocolRequest = grant.request
    assert request.authn is not None
    response, access = mint_user_access(request.client, user, scope, request.authn)
    family = None
    if include_refresh_token:
        family = add_refresh_token(request.client, user, scope, request.authn, response, parent)
    request.issued = codes.Issued(access.jti, access.expires_at, family)
    return response


def mint_user_access(
    client: Client, user: User, scope: str, authn: tokens.Authentication
) -> tuple[dict[str, Any], tokens.IssuedAccessToken]:
    """The token response of a user grant, so far with its access token only (RFC 6749 §5.1)."""
    access = tokens.mint_access_token(client.service, sub=user.sub, scope=scope, authn=authn)
    response: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": scope,
    }
    return response, access


def add_refresh_token(
    client: Client,
    user: User,
    scope: str,
    authn: tokens.Authentication,
    response: dict[str, Any],
    parent: tokens.RefreshTokenRow | None = None,
) -> str | None:
    """Add a refresh token to ``response`` when the service is registered for the grant (G05
    "or by policy"): a new family, or ``parent``'s successor. Written in the caller's unit of
    work; :func:`commit_issued` commits it. The family's id, or None when none was issued."""
    if not client.check_grant_type("refresh_token"):
        return None
    refresh_scope = parent.scope if parent is not None else scope
    offline = parent.offline_access if parent is not None else ("offline_access" in scope.split())
    issued = tokens.issue_refresh_token(
        client.service, user, scope=refresh_scope, authn=authn, offline=offline, parent=parent
    )
    response["refresh_token"] = issued.token
    return issued.family_id


def _revoke_issued(issued: codes.Issued) -> None:
    if issued.jti:
        tokens.revoke_access_token(issued.jti, issued.jti_expires_at)
    if issued.family_id:
        tokens.revoke_family(issued.family_id)


def _code_reused(
    client_id: str, previous: codes.AuthorizationCode | None, issued: codes.Issued
) -> None:
    """G02: a code was presented again: revoke what it issued and audit it (own transaction)."""
    with transaction():
        _revoke_issued(issued)
        audit.record(
            "oidc.code_reuse_detected",
            actor=client_id,
            target=previous.sub if previous else None,
            target_type="user",
            outcome=audit.DENIED,
            client_id=client_id,
            sid=previous.sid if previous else None,
            revoked_jti=issued.jti,
            revoked_family=issued.family_id,
        )


def code_authentication(code: codes.AuthorizationCode) -> tokens.Authentication:
    """The sign-in a code stands for, carried into every token derived from it."""
    return tokens.Authentication(
        sid=code.sid,
        auth_time=code.auth_time,
        amr=tuple(code.amr),
        acr=code.acr,
        organisation_id=code.organisation_id,
    )


def _redeem(code: str) -> codes.Redemption:
    """Take ``code`` out of the store, or take the redemption the machine lane made of it.

    The lane redeems a code before it knows whether it can finish the request itself; when it
    cannot (a wrong verifier, an inactive person, the code already spent), it hands the request
    on with its redemption, and the grant carries on from there exactly as if it had redeemed
    the code itself. A code is redeemed once per request either way.
    """
    handed = flask_request.environ.pop(LANE_REDEMPTION, None)
    if handed is not None and handed[0] == code:
        redemption: codes.Redemption = handed[1]
        return redemption
    return codes.redeem(code)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """The code grant (RFC 6749 §4.1; OIDC Core §3.1), codes in Redis (:mod:`idp.oidc.codes`)."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @staticmethod
    def validate_no_multiple_request_parameter(request: OAuth2Request) -> None:
        """Checked in :meth:`validate_authorization_request`, where the error can redirect."""

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        try:
            check_authorization_parameters(self.request)
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def create_authorization_response(
        self, redirect_uri: str, grant_user: User | None
    ) -> tuple[int, str, list[tuple[str, str]]]:
        """As Authlib's, but the URI keeps the registered query byte for byte and carries
        ``iss`` (RFC 9207 §2; F01, F10)."""
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        self.request.user = grant_user
        self.redirect_uri = redirect_uri
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = [("code", code)]
        if self.request.payload.state is not None:  # exactly as received (RFC 6749 §4.1.2)
            params.append(("state", self.request.payload.state))
        params.append(("iss", get_issuer()))
        return 302, "", [("Location", add_query(redirect_uri, params)), *NO_STORE_HEADERS]

    def generate_authorization_code(self) -> str:
        return codes.new_code()

    def save_authorization_code(self, code: str, request: ProtocolRequest) -> None:
        sso = request.sso
        user: User = request.user
        if sso is None or sso.sub != user.sub:
            raise AccessDeniedError(redirect_uri=self.redirect_uri)
        data = request.payload.data
        record = codes.AuthorizationCode(
            client_id=request.client.client_id,
            redirect_uri=self.redirect_uri,
            redirect_uri_sent=data.get("redirect_uri") is not None,
            scope=request.scope,
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            sub=user.sub,
            sid=sso.sid,
            auth_time=sso.auth_time,
            amr=list(sso.amr),
            acr=sso.acr,
            nonce=data.get("nonce") or None,
            organisation_id=request.organisation_id,
        )
        codes.save(code, record)
        request.code_issued = True
        audit.record(
            "oidc.code_issued",
            actor=user.sub,
            target=request.client.client_id,
            target_type="service",
            sid=sso.sid,
            scope=request.scope,
            organisation=request.organisation_id,
        )

    def query_authorization_code(self, code: str, client: Client) -> codes.AuthorizationCode | None:
        redemption = _redeem(code)
        if redemption.reused:
            _code_reused(client.client_id, redemption.previous, redemption.issued)
            raise InvalidGrantError("The code has already been used.")
        record = redemption.code
        if record is None or record.client_id != client.client_id or record.is_expired():
            return None  # G03: bound to the client; G01: 60 seconds
        return record

    def validate_token_request(self) -> None:
        super().validate_token_request()
        code: codes.AuthorizationCode = self.request.authorization_code
        sent = self.request.payload.redirect_uri
        if not code.redirect_uri_sent and sent is not None and sent != code.redirect_uri:
            raise InvalidGrantError("Invalid 'redirect_uri' in request.")
        self.request.authn = code_authentication(code)

    def authenticate_user(self, authorization_code: codes.AuthorizationCode) -> User | None:
        return active_user(sub=authorization_code.sub)  # a deactivated user gets nothing

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        return _issue(self, user, scope or "", include_refresh_token)

    def delete_authorization_code(self, authorization_code: codes.AuthorizationCode) -> None:
        """The code left the store when it was redeemed; note what it issued (G02)."""
        issued = self.request.issued or codes.Issued()
        if not codes.record_issued(authorization_code, issued):
            _code_reused(self.request.client.client_id, authorization_code, issued)
            raise InvalidGrantError("The code has already been used.")


def refresh_user(found: tokens.FoundRefreshToken, service: Service) -> User:
    """The person a refresh token was issued to, while they may still use ``service``.

    Issue 7: access changes take effect at the next refresh. Access taken away (at the
    chosen organisation, or everywhere when none was chosen) ends the refresh chain.
    """
    row = found.row
    if found.account.status is not UserStatus.ACTIVE:
        raise InvalidGrantError("The user account is not active.")
    user = cast(User, found.account)  # a snapshot standing in for the ORM User (active_user)
    org = db.session.get(Organisation, row.organisation_id) if row.organisation_id else None
    if not access.has_access(user, service, org):
        raise InvalidGrantError("The user no longer has access to this service.")
    return user


def refresh_authentication(
    row: tokens.RefreshTokenRow, organisation_public_id: str | None = None
) -> tokens.Authentication:
    """The sign-in a refresh token carries into every token derived from it (OIDC Core §12.2).
    ``organisation_public_id``: the chosen organisation's, when already read with the row."""
    if organisation_public_id is None:
        organisation_public_id = tokens.organisation_public_id(row.organisation_id)
    return tokens.Authentication(
        sid=row.sid,
        auth_time=row.auth_time,
        amr=tuple(row.amr or ()),
        acr=row.acr,
        organisation_id=organisation_public_id,
    )


@dataclass
class StoredRefreshToken:
    """Authlib's view of a refresh-token row (``TokenMixin`` where the grant needs it)."""

    found: tokens.FoundRefreshToken

    def check_client(self, client: Client) -> bool:
        return self.found.row.service_id == client.service.id

    def get_scope(self) -> str:
        return self.found.row.scope


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation on every use and family revocation on reuse (RFC 6749 §6;
    RFC 9700 §4.14.2; OIDC Core §12; G05)."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefreshToken | None:
        found = tokens.find_refresh_token(refresh_token)
        return StoredRefreshToken(found) if found is not None else None

    def validate_token_request(self) -> None:
        super().validate_token_request()  # client, token bound to it (G05), scope not widened
        stored: StoredRefreshToken = self.request.refresh_token
        row = stored.found.row
        if stored.found.family_revoked or row.revoked_at is not None:
            raise InvalidGrantError("The refresh token has been revoked.")
        if row.used_at is not None:
            self._reused(row)
        now = utcnow()
        if now >= row.expires_at or now >= row.family_expires_at:
            raise InvalidGrantError("The refresh token has expired.")
        # The token is claimed when its successor is written, in the same statement
        # (tokens.issue_refresh_token): of concurrent uses, exactly one wins (G05).
        self.request.authn = refresh_authentication(row)

    def _reused(self, row: tokens.RefreshTokenRow) -> None:
        """G05: a used refresh token came back: revoke its whole family, audit, refuse."""
        with transaction():
            count = tokens.revoke_family(row.family_id)
            audit.record(
                "token.refresh_reuse_detected",
                actor=self.request.client.client_id,
                target=str(row.user_id),
                target_type="user",
                outcome=audit.DENIED,
                family_id=row.family_id,
                sid=row.sid,
                revoked=count,
            )
        raise InvalidGrantError("The refresh token has already been used.")

    def authenticate_user(self, refresh_token: StoredRefreshToken) -> User:
        found = refresh_token.found
        try:
            return refresh_user(found, self.request.client.service)
        except InvalidGrantError:
            # Refused once, refused for good: the chain ends here, so access granted again
            # later does not bring this token back (issue 7). Committed with the error
            # response by the view's unit of work.
            tokens.revoke_family(found.row.family_id)
            raise

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        row = self.request.refresh_token.found.row
        try:
            return _issue(self, user, scope or "", include_refresh_token, parent=row)
        except tokens.RefreshTokenSpent:
            self._reused(row)  # used (or revoked) since it was read: a concurrent use
            raise

    def revoke_old_credential(self, refresh_token: StoredRefreshToken) -> None:
        """Nothing left to do: the token was marked used before anything was issued."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials (RFC 6749 §4.4): an access token about the client itself."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        requested = set((self.request.payload.scope or "").split())
        allowed = CLIENT_CREDENTIALS_SCOPES & set(self.request.client.service.allowed_scopes)
        if not requested <= allowed:
            raise InvalidScopeError("The client credentials grant has no such scope.")

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        client: Client = self.request.client
        granted = " ".join(dict.fromkeys((scope or "").split()))
        # RFC 9068 §2.2: with no resource owner, sub identifies the client.
        access = tokens.mint_access_token(
            client.service, sub=client.client_id, scope=granted, authn=None
        )
        self.request.issued = codes.Issued(access.jti, access.expires_at, None)
        return {
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": access.expires_in,
            "scope": granted,
        }


# -- revocation and introspection ---------------------------------------------------------------


@dataclass
class TokenRecord:
    """An access or refresh token found by value, for revocation and introspection."""

    kind: str  # "access_token" or "refresh_token"
    client_id: str
    claims: dict[str, Any]
    refresh: tokens.FoundRefreshToken | None = None

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def is_expired(self) -> bool:
        return int(self.claims["exp"]) <= int(time.time())

    def is_revoked(self) -> bool:
        if self.refresh is not None:
            row = self.refresh.row
            return (
                self.refresh.family_revoked
                or row.revoked_at is not None
                or (row.used_at is not None)
            )
        return tokens.is_access_token_revoked(self.claims)

    def revoke(self) -> None:
        if self.refresh is not None:
            tokens.revoke_family(self.refresh.row.family_id)  # the family goes with it (G05)
        else:
            tokens.revoke_access_token(self.claims["jti"], int(self.claims["exp"]))


def find_token(value: str) -> TokenRecord | None:
    """Our access token (a signature we can verify) or refresh token (a stored hash)."""
    if not isinstance(value, str) or not value:
        return None
    if value.count(".") == 2:
        try:
            claims = tokens.verify_access_token(value, allow_expired=True, check_revoked=False)
        except tokens.InvalidAccessToken:
            return None
        return TokenRecord("access_token", claims["client_id"], claims)
    found = tokens.find_refresh_token(value)
    if found is None:
        return None
    service = db.session.get(Service, found.row.service_id)
    user = db.session.get(User, found.row.user_id)
    if service is None or user is None:
        return None
    row = found.row
    claims = {
        "sub": user.sub,
        "aud": service.client_id,
        "scope": row.scope,
        "iat": int(row.created_at.timestamp()),
        "exp": int(min(row.expires_at, row.family_expires_at).timestamp()),
        "iss": get_issuer(),
    }
    return TokenRecord("refresh_token", service.client_id, claims, found)


def _check_token_params(request: ProtocolRequest) -> None:
    if not request.form.get("token"):
        raise InvalidRequestError("Missing 'token'.")
    # An unknown token_type_hint is ignored: RFC 7009 §2.1 and RFC 7662 §2.1 make it a hint.


class RevocationEndpoint(_RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Unknown tokens get 200 (§2.2); revoking a refresh token revokes its family."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def check_params(self, request: ProtocolRequest, client: Client) -> None:
        _check_token_params(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return find_token(token_string)

    def revoke_token(self, token: TokenRecord, request: ProtocolRequest) -> None:
        token.revoke()
        audit.record(
            "token.revoked",
            actor=token.client_id,
            target=str(token.claims.get("sub")),
            target_type="user",
            kind=token.kind,
        )


class IntrospectionEndpoint(_IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662. A client may introspect only tokens issued to it; others are inactive."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def check_params(self, request: ProtocolRequest, client: Client) -> None:
        _check_token_params(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return find_token(token_string)

    def check_permission(self, token: TokenRecord, client: Client, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: TokenRecord) -> dict[str, Any]:
        claims = token.claims
        body: dict[str, Any] = {
            "active": True,
            "client_id": token.client_id,
            "scope": claims.get("scope", ""),
            "sub": claims["sub"],
            "aud": claims["aud"],
            "iss": claims["iss"],
            "exp": claims["exp"],
            "iat": claims["iat"],
        }
        if token.kind == "access_token":
            body["token_type"] = "Bearer"  # noqa: S105 (RFC 6750 token type)
            body["jti"] = claims["jti"]
            for name in ("auth_time", "acr", "amr"):
                if name in claims:
                    body[name] = claims[name]
        return body


# -- UserInfo -----------------------------------------------------------------------------------


def bearer_token(request: ProtocolRequest) -> str:
    """RFC 6750 §2.1 (header) or §2.2 (form body on POST); exactly one of them."""
    header = request.headers.get("Authorization")
    in_body = request.payload.datalist.get("access_token", [])
    from_header: str | None = None
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            from_header = value.strip()
            if not from_header:
                raise BearerError("invalid_request", "The bearer token is empty.", 400)
    if len(in_body) > 1 or (from_header is not None and in_body):
        raise BearerError("invalid_request", "Send the access token in one place only.", 400)
    token = from_header if from_header is not None else (in_body[0] if in_body else None)
    if not token:
        raise BearerError(None)  # RFC 6750 §3.1: no credentials, so no error code
    return token


class UserInfoEndpoint(Endpoint):  # type: ignore[misc]
    """OIDC Core §5.3: the claims of the granted scopes, for a live access token (H05 Also)."""

    ENDPOINT_NAME = "userinfo"

    def create_endpoint_request(self, request: Any) -> ProtocolRequest:
        if flask_request.method == "POST" and flask_request.mimetype == (
            "application/x-www-form-urlencoded"
        ):
            return body_request(USERINFO_PATH)
        return ProtocolRequest(flask_request.method, USERINFO_PATH, {}, flask_request.headers)

    def __call__(self, request: ProtocolRequest) -> tuple[int, dict[str, Any], list[Any]]:
        value = bearer_token(request)
        try:
            claims = tokens.verify_access_token(value)
        except tokens.InvalidAccessToken as error:
            raise BearerError("invalid_token", error.reason) from error
        if "openid" not in claims["scope"].split():
            scope_error = BearerError("insufficient_scope", "The token lacks openid.", 403)
            scope_error.scope = "openid"
            raise scope_error
        service = get_service_cache().find_active(claims["client_id"], attach=False)
        user = active_user(sub=claims["sub"])
        if service is None or user is None:
            raise BearerError("invalid_token", "The access token is no longer valid.")
        body = user_claims(
            user,
            claims["scope"].split(),
            service,
            organisation_id=claims.get("organisation_id"),
        )
        return 200, body, [("Content-Type", "application/json"), *NO_STORE_HEADERS]


# -- the server ---------------------------------------------------------------------------------


def check_authorization_parameters(request: ProtocolRequest) -> None:
    """The rules Authlib's code grant leaves to us (F03, F05, F06, F08; OIDC Core §3.1.2.1,
    §6). Raised errors redirect: the client and redirect URI are valid by now."""
    lists = request.payload.datalist
    for name in AUTHORIZATION_PARAMETERS:
        if len(lists.get(name, [])) > 1:
            raise InvalidRequestError(f"Multiple '{name}' in request.")
    data = request.payload.data
    # OIDC Core §6.1, §6.2, §7.2.1: what we do not support is refused with its own error code.
    for name, code in (
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
        ("registration", "registration_not_supported"),
    ):
        if name in data:
            raise OAuth2Error(error=code, description=f"The '{name}' parameter is not supported.")
    if data.get("response_mode", "query") != "query":
        raise InvalidRequestError("Only response_mode=query is supported.")
    if "openid" not in (request.scope or "").split():
        raise InvalidScopeError("The scope must include openid.")
    prompts = (data.get("prompt") or "").split()
    if not set(prompts) <= PROMPTS:
        raise InvalidRequestError("Unsupported 'prompt' value.")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    if "max_age" in data and not _MAX_AGE.fullmatch(data["max_age"]):
        raise InvalidRequestError("'max_age' must be a whole number of seconds.")
    limits = {"id_token_hint": MAX_HINT_LENGTH, "login_hint": MAX_LOGIN_HINT_LENGTH}
    for name in AUTHORIZATION_PARAMETERS:
        if len(data.get(name, "")) > limits.get(name, MAX_PARAMETER_LENGTH):
            raise InvalidRequestError(f"'{name}' is too long.")
    if "id_token_hint" in data and hint_subject(data["id_token_hint"], request.client) is None:
        raise InvalidRequestError("'id_token_hint' is not an ID token we issued to this client.")


def hint_subject(hint: str, client: Client) -> str | None:
    """The ``sub`` of ``hint`` if it is an ID token we issued to ``client`` (expiry allowed;
    OIDC Core §3.1.2.1). Access and logout tokens are not ID tokens (V6, V15)."""
    if not hint or len(hint) > MAX_HINT_LENGTH or hint.count(".") != 2:
        return None
    try:
        decoded = get_keyring().decode_own_token(hint)
    except (JoseError, ValueError, TypeError, KeyError, IndexError):
        return None
    claims = decoded.claims
    aud = claims.get("aud")
    if (
        decoded.header.get("typ", "JWT") != "JWT"
        or "events" in claims
        or claims.get("iss") != get_issuer()
        or (aud != client.client_id and not (isinstance(aud, list) and client.client_id in aud))
        or not isinstance(claims.get("sub"), str)
    ):
        return None
    sub: str = claims["sub"]
    return sub


class AuthorizationServer(_FlaskAuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask server with our requests, errors, client lookup and audit."""

    def __init__(self) -> None:
        super().__init__(query_client=query_client, save_token=self._save)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        path = {"/revoke": REVOCATION_PATH, "/introspect": INTROSPECTION_PATH}.get(
            flask_request.path, TOKEN_PATH
        )
        return body_request(path)

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        response: Response = super().handle_response(status_code, payload, headers)
        return response

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        return self.handle_response(*error_response(error))

    def create_authorization_response(
        self, request: Any = None, grant_user: User | None = None, grant: Any = None
    ) -> Response:
        response: Response = super().create_authorization_response(request, grant_user, grant)
        return response

    def get_authorization_grant(self, request: ProtocolRequest) -> Any:
        """F01, V1, V2: the client and redirect URI are checked before anything else; until
        they are, errors carry no redirect URI (the view shows them as our own page)."""
        lists = request.payload.datalist
        for name in ("client_id", "redirect_uri"):
            if len(lists.get(name, [])) > 1:
                raise InvalidRequestError(f"Multiple '{name}' in request.")
        client = self.query_client(request.payload.data.get("client_id"))
        if client is None:
            raise InvalidClientError(description="Unknown or missing client_id.")
        sent = request.payload.data.get("redirect_uri")
        redirect_uri = client.get_default_redirect_uri() if sent is None else sent
        if redirect_uri is None:
            raise InvalidRequestError("Missing 'redirect_uri'.")
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("The redirect_uri is not registered for this client.")
        state = request.payload.state
        if not request.payload.data.get("response_type"):
            raise InvalidRequestError(
                "Missing 'response_type'.", redirect_uri=redirect_uri, state=state
            )
        if "authorization_code" not in client.service.grant_types:
            raise UnauthorizedClientError(redirect_uri=redirect_uri, state=state)
        return super().get_authorization_grant(request)

    def authenticate_client(
        self, request: ProtocolRequest, methods: list[str], endpoint: str = "token"
    ) -> Client:
        """RFC 6749 §2.3: one method per request; every failure is audited (never the secret)."""
        presented = [
            name
            for name, present in (
                (
                    "client_secret_basic",
                    (request.headers.get("Authorization") or "").lower().startswith("basic "),
                ),
                ("client_secret_post", "client_secret" in request.payload.data),
                ("private_key_jwt", "client_assertion" in request.payload.data),
            )
            if present
        ]
        if len(presented) > 1:
            raise InvalidRequestError("Use one client authentication method per request.")
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            self._audit_failure(request, presented, endpoint, error)
            raise
        claimed = request.payload.data.get("client_id")
        if claimed is not None and claimed != client.client_id:
            self._audit_failure(request, presented, endpoint, None)
            raise InvalidClientError(description="client_id does not match the credentials.")
        return client

    @staticmethod
    def _audit_failure(
        request: ProtocolRequest,
        presented: list[str],
        endpoint: str,
        error: InvalidClientError | None,
    ) -> None:
        client_id, method, why = request.attempted_client or (
            request.payload.data.get("client_id"),
            presented[0] if presented else "none",
            "no client credentials" if not presented else "method not registered for client",
        )
        if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.match(client_id):
            client_id = None  # whatever was sent is not a client_id: never log it raw
        audit.record(
            "oidc.client_auth_failed",
            actor=client_id,
            target=client_id,
            target_type="service",
            outcome=audit.FAILURE,
            reason=why,
            method=method,
            endpoint=endpoint,
        )

    def create_token_response(self, request: Any = None) -> Response:
        """RFC 6749 §3.1, §3.2: the token request's parameters each appear once."""
        # A grant commits up to three times (a refresh token's claim, what it issued, the
        # view's unit of work). Expiring every loaded row at each commit made the rest of the
        # request read the service, the user and the token row again: up to five queries a
        # grant for values this request had just read or written itself (issue 4). The
        # session is this request's alone and ends with it.
        db.session().expire_on_commit = False
        oauth_request = self.create_oauth2_request(request)
        lists = oauth_request.payload.datalist
        for name in TOKEN_PARAMETERS:
            if len(lists.get(name, [])) > 1:
                return self.handle_error_response(
                    oauth_request, InvalidRequestError(f"Multiple '{name}' in request.")
                )
        if not oauth_request.payload.grant_type:
            return self.handle_error_response(
                oauth_request, InvalidRequestError("Missing 'grant_type'.")
            )
        response: Response = super().create_token_response(oauth_request)
        return response

    def create_endpoint_response(self, name: str, request: Any = None) -> Response:
        if name in ("revocation", "introspection"):
            oauth_request = self.create_oauth2_request(request)
            lists = oauth_request.payload.datalist
            for param in TOKEN_PARAMETERS:
                if len(lists.get(param, [])) > 1:
                    return self.handle_error_response(
                        oauth_request, InvalidRequestError(f"Multiple '{param}' in request.")
                    )
        response: Response = super().create_endpoint_response(name, request)
        return response

    @staticmethod
    def _save(token: Mapping[str, Any], request: ProtocolRequest) -> None:
        """Commit what the grant wrote, and record ``oidc.token_issued`` (a routine record).

        The commit comes now, before Authlib's ``delete_authorization_code`` writes the code's
        spent marker naming the refresh family, so a replay that reads the marker finds the
        family's rows to revoke (G02); a refresh token's claim commits with what replaced it
        (G05). Written synchronously, the audit row is part of that transaction. Batched
        (``audit_batch_seconds`` > 0, :mod:`idp.services.audit_writer`), it goes to the writer
        only once the commit has succeeded, so no record names a token that was not issued;
        a client_credentials grant then writes nothing to the database at all (issue 4).
        """
        record = partial(
            record_token_issued,
            request.client,
            request.user,
            request.payload.grant_type,
            str(token.get("scope", "")),
            request.issued or codes.Issued(),
            request.authn.sid if request.authn is not None else None,
        )
        commit_issued(record)


def record_token_issued(
    client: Client,
    user: User | None,
    grant_type: str,
    scope: str,
    issued: codes.Issued,
    sid: str | None,
    origin: audit.RequestOrigin | None = None,
) -> None:
    """The ``oidc.token_issued`` record of any grant, on either path (the machine lane passes
    ``origin``, having no Flask request). A routine record: no ORM flush, the busiest audit
    event there is (:func:`audit.record_routine`)."""
    audit.record_routine(
        "oidc.token_issued",
        actor=client.client_id,
        target=user.sub if user is not None else client.client_id,
        target_type="user" if user is not None else "service",
        origin=origin,
        grant_type=grant_type,
        scope=scope,
        jti=issued.jti,
        family_id=issued.family_id,
        sid=sid,
    )


def commit_issued(record: Callable[[], None]) -> None:
    """Commit what a grant wrote, with its ``oidc.token_issued`` record (see ``_save``).

    A session that was never used has nothing to commit (the machine lane's one-statement
    writes commit themselves): a batched record then needs no session at all (issue 4)."""
    batched = audit.routine_batched()
    if batched and not (db.session.registry.has() and db.session().in_transaction()):
        record()
        return
    with transaction():
        if not batched:
            record()
    if batched:
        record()


def oversized_authorization_header() -> bool:
    """L02: an ``Authorization`` header this long is refused before anything parses it."""
    return (
        has_request_context()
        and len(flask_request.headers.get("Authorization", "")) > MAX_AUTHORIZATION_HEADER
    )


def _build() -> AuthorizationServer:
    server = AuthorizationServer()
    server.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
    server.register_client_auth_method("client_secret_post", authenticate_client_secret_post)
    server.register_client_auth_method("private_key_jwt", PrivateKeyJwt())
    server.register_grant(AuthorizationCodeGrant, [RequiredS256(), OpenIDCode()])
    server.register_grant(RefreshTokenGrant, [OpenIDRefresh()])
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(UserInfoEndpoint)
    return server


#: The one authorization server. Views call ``authorization.create_*_response()``.
authorization: Final = _build()


def init_app(app: Flask) -> None:
    """Bind the server's configuration to ``app`` and subscribe the token module's events."""
    authorization.init_app(app)
    tokens.init_app(app)
