"""Discovery and the JWKS: ``/.well-known/openid-configuration`` and ``/.well-known/jwks.json``.

Implements OpenID Connect Discovery 1.0 §3 (provider metadata) and §4 (the configuration
response), RFC 8414 §2 for the OAuth members, RP-Initiated Logout 1.0 §3.1
(``end_session_endpoint``), Back-Channel Logout 1.0 §2.1 (``backchannel_logout_*``), RFC 9207
§3 (``authorization_response_iss_parameter_supported``) and, from security-requirements.md:

- **H05**: the document is JSON and lists the issuer, every endpoint, ``response_types_supported:
  ["code"]``, the grants, ``code_challenge_methods_supported: ["S256"]`` (F03), the logout
  members and the client authentication methods; it lists exactly what is implemented.
- **H01**: ``id_token_signing_alg_values_supported`` is the key ring's algorithms, no more.
- **H04**: the JWKS publishes next, active and not-yet-unpublished retired keys, public parts only.
- **E08 Also** / RFC 9700 §2.6: CORS (``Access-Control-Allow-Origin: *``) on these two
  documents only, so browser-based tools can read them; never on /authorize.
- **F10**, **J02**: the issuer comes from settings and every URL is built from it, never from
  the request's Host header.

Both documents are public and the same for everyone, so they may be cached for five minutes
(overriding the app-wide ``no-store``).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify
from flask.wrappers import Response

from idp.config import Settings
from idp.oidc.keys import SIGNING_ALGS, get_keyring
from idp.services.clients import (
    SUPPORTED_GRANT_TYPES,
    SUPPORTED_SCOPES,
    TOKEN_ENDPOINT_AUTH_METHODS,
)

bp = Blueprint("oidc_discovery", __name__)

#: ``acr`` values (OIDC Core §2): a password alone, or a password plus a second factor.
ACR_SINGLE_FACTOR: Final = "urn:secure-access:acr:pwd"
ACR_MFA: Final = "urn:secure-access:acr:mfa"
ACR_VALUES: Final[tuple[str, ...]] = (ACR_SINGLE_FACTOR, ACR_MFA)

#: Claims we can put in ID tokens or UserInfo responses (DESIGN §5).
CLAIMS_SUPPORTED: Final[tuple[str, ...]] = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "at_hash",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "organisation",
    "organisations",
    "roles",
)
PROMPT_VALUES: Final[tuple[str, ...]] = ("none", "login", "consent", "select_account")

# Endpoint paths, relative to the issuer. The protocol endpoints must be served at these.
AUTHORIZATION_PATH: Final = "/authorize"
TOKEN_PATH: Final = "/token"  # noqa: S105 (a URL path, not a secret)
USERINFO_PATH: Final = "/userinfo"
JWKS_PATH: Final = "/.well-known/jwks.json"
REVOCATION_PATH: Final = "/revoke"
INTROSPECTION_PATH: Final = "/introspect"
END_SESSION_PATH: Final = "/logout"
SERVICE_DOCUMENTATION_PATH: Final = "/developers"

#: Discovery and the JWKS may sit in caches this long (seconds). Relying services' JWKS caches
#: are why a new key waits key_publish_before_use_seconds before it signs.
CACHE_SECONDS: Final = 300


def get_issuer(settings: Settings | None = None) -> str:
    """The issuer identifier: the ``issuer`` setting, or ``public_base_url`` without a slash.

    Raises ValueError for a value OIDC Discovery §3 does not allow (not http(s), a query or
    fragment, a trailing slash).
    """
    settings = settings or current_app.extensions["settings"]
    issuer = settings.issuer or settings.public_base_url.rstrip("/")
    parts = urlsplit(issuer)
    if (
        parts.scheme not in ("https", "http")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or "?" in issuer
        or "#" in issuer
        or issuer.endswith("/")
    ):
        raise ValueError(
            f"IDP_ISSUER {issuer!r} must be an https URL with no query, fragment or trailing slash"
        )
    if settings.is_production and parts.scheme != "https":
        raise ValueError(f"IDP_ISSUER {issuer!r} must use https in production")
    return issuer


def endpoint_url(path: str, settings: Settings | None = None) -> str:
    """The absolute URL of one of our endpoints, built from the issuer."""
    return get_issuer(settings) + path


def discovery_document(settings: Settings | None = None) -> dict[str, Any]:
    """The provider metadata (OIDC Discovery 1.0 §3), listing exactly what is implemented."""
    issuer = get_issuer(settings)
    auth_methods = list(TOKEN_ENDPOINT_AUTH_METHODS)
    algs = list(SIGNING_ALGS)
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZATION_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "userinfo_endpoint": issuer + USERINFO_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "end_session_endpoint": issuer + END_SESSION_PATH,
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],  # F02: code flow only
        "response_modes_supported": ["query"],
        "grant_types_supported": list(SUPPORTED_GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,  # H01: asymmetric only, never none
        # userinfo_signing_alg_values_supported is deliberately absent: UserInfo is plain JSON.
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "code_challenge_methods_supported": ["S256"],  # F03: never plain
        "claims_supported": list(CLAIMS_SUPPORTED),
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": list(PROMPT_VALUES),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,  # F10, RFC 9207
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "ui_locales_supported": ["en-GB"],
        "service_documentation": issuer + SERVICE_DOCUMENTATION_PATH,
    }


def _public_json(body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    # E08 Also: cross-origin reads are allowed on discovery and the JWKS only.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    return _public_json(discovery_document())


@bp.get(JWKS_PATH)
def jwks() -> Response:
    return _public_json(get_keyring().jwks())
