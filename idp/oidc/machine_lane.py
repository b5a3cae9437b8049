"""The machine lane: the busiest machine-to-machine requests, answered without the framework.

Why (issue 4: the token endpoint must issue at least as many grants per second as
node-oidc-provider on the same machine). A client_credentials grant's own work (read the form,
check an HMAC secret, sign an ES256 JWT, write JSON) is about 0.06 ms of CPU; through Flask's
request machinery and Authlib's grant classes it was 0.9 ms, and node-oidc-provider answers
for 0.2 ms (bench/results/grant_overhead.md, token.md). The framework is not wrong; it is just
most of the cost of a request whose answer is a few hundred bytes of JSON.

How, without a second implementation of the protocol to keep in step:

- A WSGI middleware in front of the Flask app. It answers only the *ordinary, successful*
  form of these requests: a ``client_credentials`` grant authenticated with
  ``client_secret_basic`` or ``client_secret_post`` (RFC 6749 §4.4, §2.3.1), the discovery
  document (OIDC Discovery §4) and the JWKS (RFC 7517 §5); and, with the same client
  authentication, a code redemption or refresh (:mod:`idp.oidc.user_grant_lane`, which says
  how a grant that changes state is handed on safely).
- Anything else, and anything at all unusual about one of those (another grant, a parameter
  it does not expect, a duplicated parameter, a wrong or expired secret, a scope the service
  may not have, a missing or odd ``Content-Type``, a query string, a large body, an untrusted
  ``Host``, an exception), *falls through* to the Flask app with the body it read put back.
  So every error, and its audit record, comes from the one full implementation
  (:mod:`idp.oidc.server`), which the conformance tests exercise. The one exception: a user
  grant that fails after its write, and whose write cannot be taken back either, is answered
  503 here (:class:`user_grant_lane.Unfinished`).
- What it does answer is the same answer the full path gives: the same checks in the same
  functions (the service cache, :meth:`Client.check_client_secret`, the cc scope rule), the
  same token (:func:`tokens.mint_access_token`), the same audit record
  (:func:`audit.record_routine`), the same headers (:func:`security_headers`, the request id).
  ``tests/oidc/test_machine_lane.py`` compares the two answer for answer.
- ``IDP_MACHINE_LANE=false`` turns it off (everything then goes through Flask), should a
  difference ever be suspected in production.

It runs inside ProxyFix (so the client address is the one the audit record should carry) and
inside an app context (the database session, settings and caches), but not a request context.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any, Final, cast
from urllib.parse import unquote_plus

from flask import Flask, Response
from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from idp.config import Settings
from idp.extensions import db
from idp.oidc import codes, tokens, user_grant_lane
from idp.oidc.discovery import JWKS_PATH, TOKEN_PATH, discovery_document
from idp.oidc.keys import get_keyring
from idp.oidc.server import (
    CLIENT_CREDENTIALS_SCOPES,
    MAX_AUTHORIZATION_HEADER,
    NO_STORE_HEADERS,
    Client,
    parse_basic,
    record_token_issued,
)
from idp.services import audit
from idp.services.clients import CLIENT_ID_PATTERN
from idp.services.service_cache import get_service_cache
from idp.store import request_scope
from idp.web.headers import security_headers
from idp.web.requests import request_id

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
#: A client_credentials request is a few hundred bytes; anything larger takes the full path.
MAX_BODY: Final = 2048
#: Form parameters the lane understands, per grant. Any other sends the request down the full path.
_CC_PARAMETERS: Final = frozenset({"grant_type", "scope", "client_id", "client_secret"})
_GRANT_PARAMETERS: Final = {
    "client_credentials": _CC_PARAMETERS,
    "authorization_code": user_grant_lane.CODE_PARAMETERS,
    "refresh_token": user_grant_lane.REFRESH_PARAMETERS,
}
_PARAMETERS: Final = frozenset().union(*_GRANT_PARAMETERS.values())
#: RFC 6749 Appendix A: scope tokens (NQCHAR, space-separated) and secrets (VSCHAR).
_SCOPE: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e ]{0,512}")
_SECRET: Final = re.compile(r"[\x20-\x7e]{1,512}")
_FORM_TYPES: Final = frozenset(
    {"application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8"}
)
#: OIDC Discovery and RFC 7517 documents: public, cacheable, readable cross-origin (E08).
_PUBLIC_JSON: Final = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "public, max-age=300"),
    ("Access-Control-Allow-Origin", "*"),
]


class Answer:
    """A finished response: status line, headers and body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class MachineLane:
    """WSGI middleware: answer the ordinary machine requests, pass everything else on."""

    def __init__(self, app: Flask, inner: WsgiApp, settings: Settings) -> None:
        self.app = app
        self.inner = inner
        self.settings = settings
        self._security = security_headers(settings)
        self._discovery: bytes | None = None
        self._jwks: tuple[tuple[str, ...], bytes] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO")
        method = environ.get("REQUEST_METHOD")
        if (path == TOKEN_PATH and method == "POST") or (
            path in (DISCOVERY_PATH, JWKS_PATH) and method == "GET"
        ):
            answer = self._try(environ, path)
            if answer is not None:
                start_response(answer.status, answer.headers)
                return [answer.body]
        return self.inner(environ, start_response)

    def _try(self, environ: dict[str, Any], path: str) -> Answer | None:
        """The lane's answer, or None to let the full path answer (with the body restored)."""
        if environ.get("QUERY_STRING") or not self._trusted_host(environ):
            return None
        body: bytes | None = None
        try:
            if path == TOKEN_PATH:
                body = _read_small_body(environ)
                if body is None:
                    return None  # nothing was read
            with self.app.app_context(), request_scope(environ):
                if path == TOKEN_PATH:
                    return self._token(environ, body or b"")
                if path == JWKS_PATH:
                    return self._public(environ, self._jwks_bytes())
                return self._public(environ, self._discovery_bytes())
        except user_grant_lane.Unfinished as error:
            # The class only, as below. Too late to hand on (see Unfinished).
            log.error(
                "machine lane: %s failed after writing: %s", path, type(error.__cause__).__name__
            )
            return self._unavailable(environ)
        except Exception as error:
            # The class only: a driver's message can quote parameters (never log a secret).
            log.warning(
                "machine lane: passing %s to the full path after %s", path, type(error).__name__
            )
            return None
        finally:
            if body is not None:  # the full path (or nobody) reads it again
                environ["wsgi.input"] = BytesIO(body)

    def _trusted_host(self, environ: dict[str, Any]) -> bool:
        try:
            get_host(environ, self.app.config["TRUSTED_HOSTS"])
        except SecurityError:
            return False
        return True

    # -- the token endpoint (RFC 6749 §3.2) ---------------------------------------------------

    def _token(self, environ: dict[str, Any], body: bytes) -> Answer | None:
        form = _parse_form(body)
        if form is None:
            return None
        grant_type = form.get("grant_type", "")
        allowed = _GRANT_PARAMETERS.get(grant_type)
        if allowed is None or not form.keys() <= allowed:
            return None
        client = _authenticate(environ, form)
        if client is None:
            return None
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        origin = audit.RequestOrigin.from_environ(environ, rid)
        if grant_type == "client_credentials":
            payload = _client_credentials(form, client, origin)
        elif grant_type == "authorization_code":
            payload = user_grant_lane.authorization_code(environ, form, client, origin)
        else:
            payload = user_grant_lane.refresh_token(environ, form, client, origin)
        if payload is None:
            return None
        # Serialised as Authlib's Flask integration does (``flask.json.dumps``: sorted keys).
        encoded = self.app.json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), *NO_STORE_HEADERS]
        return self._finish(headers, encoded, rid)

    # -- discovery and JWKS --------------------------------------------------------------------

    def _jwks_bytes(self) -> bytes:
        """The JWKS (it changes with rotation and with time, so it is asked for each time),
        serialised once per distinct key set: a ``kid`` is the key's thumbprint (RFC 7638),
        so the same kids are the same document."""
        document = get_keyring().jwks()
        kids = tuple(key["kid"] for key in document["keys"])
        cached = self._jwks
        if cached is None or cached[0] != kids:
            cached = self._jwks = (kids, self._jsonify(document))
        return cached[1]

    def _discovery_bytes(self) -> bytes:
        """The discovery document depends on settings only: serialised once."""
        if self._discovery is None:
            self._discovery = self._jsonify(discovery_document())
        return self._discovery

    def _jsonify(self, document: dict[str, Any]) -> bytes:
        """``document`` exactly as Flask's ``jsonify`` writes it on the full path."""
        response = cast(Response, self.app.json.response(document))
        return response.get_data()

    def _public(self, environ: dict[str, Any], payload: bytes) -> Answer:
        """Discovery or JWKS, serialised exactly as Flask's ``jsonify`` does on the full path."""
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        return self._finish(list(_PUBLIC_JSON), payload, rid)

    def _unavailable(self, environ: dict[str, Any]) -> Answer:
        """503 with ``Retry-After`` (RFC 9110 §15.6.4), in the JSON of an OAuth error."""
        payload = self.app.json.dumps(
            {
                "error": "temporarily_unavailable",
                "error_description": "Tokens could not be issued. Try again shortly.",
            }
        ).encode()
        headers = [("Content-Type", "application/json"), *NO_STORE_HEADERS, ("Retry-After", "30")]
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        return self._finish(headers, payload, rid, "503 SERVICE UNAVAILABLE")

    def _finish(
        self, headers: list[tuple[str, str]], payload: bytes, rid: str, status: str = "200 OK"
    ) -> Answer:
        headers.append(("Content-Length", str(len(payload))))
        headers.extend(self._security)
        headers.append(("X-Request-Id", rid))
        return Answer(status, headers, payload)


def _authenticate(environ: dict[str, Any], form: dict[str, str]) -> Client | None:
    """The client, when it authenticated plainly with ``client_secret_basic`` or
    ``client_secret_post`` (RFC 6749 §2.3.1) by the method it registered; else None."""
    header = environ.get("HTTP_AUTHORIZATION")
    if header is not None:
        # client_secret_basic; a client_id or secret in the body as well is for the full
        # path to refuse (RFC 6749 §2.3: one method per request).
        if len(header) > MAX_AUTHORIZATION_HEADER or form.keys() & {"client_id", "client_secret"}:
            return None
        try:
            credentials = parse_basic(header)
        except ValueError:
            return None
        method = "client_secret_basic"
    else:
        credentials = (form.get("client_id", ""), form.get("client_secret", ""))
        method = "client_secret_post"
    if credentials is None:
        return None
    client_id, secret = credentials
    if not CLIENT_ID_PATTERN.match(client_id) or not _SECRET.fullmatch(secret):
        return None
    service = get_service_cache().find_active(client_id, attach=False)
    if service is None:
        return None
    client = Client(service)
    if not (
        client.check_endpoint_auth_method(method, "token") and client.check_client_secret(secret)
    ):
        return None
    return client


def _client_credentials(
    form: dict[str, str], client: Client, origin: audit.RequestOrigin
) -> dict[str, Any] | None:
    """An ordinary client_credentials grant (RFC 6749 §4.4): the token response, or None."""
    scope = form.get("scope", "")
    if not _SCOPE.fullmatch(scope):
        return None
    allowed = CLIENT_CREDENTIALS_SCOPES & set(client.service.allowed_scopes)
    if not (client.check_grant_type("client_credentials") and set(scope.split()) <= allowed):
        return None
    granted = " ".join(dict.fromkeys(scope.split()))
    # RFC 9068 §2.2: with no resource owner, sub identifies the client.
    access = tokens.mint_access_token(
        client.service, sub=client.client_id, scope=granted, authn=None
    )
    issued = codes.Issued(access.jti, access.expires_at, None)
    record_token_issued(client, None, "client_credentials", granted, issued, None, origin)
    # The audit row, when it is written synchronously (IDP_AUDIT_BATCH_SECONDS=0). A
    # session that was never used has nothing to commit: do not make one to find out.
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()
    return {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": granted,
    }


def _read_small_body(environ: dict[str, Any]) -> bytes | None:
    """The whole body of a small form POST, or None (then nothing has been read)."""
    content_type = (environ.get("CONTENT_TYPE") or "").lower()
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    if content_type not in _FORM_TYPES or not 0 < length <= MAX_BODY:
        return None
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return None
    body: bytes = environ["wsgi.input"].read(length)
    return body


def _parse_form(body: bytes) -> dict[str, str] | None:
    """A plain ``application/x-www-form-urlencoded`` body of known, single parameters."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    form: dict[str, str] = {}
    for pair in text.split("&"):
        name, equals, value = pair.partition("=")
        if not equals or name not in _PARAMETERS or name in form:
            return None
        try:
            form[name] = unquote_plus(value, errors="strict")
        except UnicodeDecodeError:
            return None
    return form


def init_app(app: Flask, settings: Settings) -> None:
    """Put the lane in front of the Flask app (call before ProxyFix wraps it)."""
    if settings.machine_lane:
        app.wsgi_app = MachineLane(app, app.wsgi_app, settings)  # type: ignore[method-assign]
