"""The service registry: the rules for registering relying services (OIDC clients).

Implements (security-requirements.md):

- **G04** / ASVS 10.4.10, 10.4.16: a client secret is 256 random bits, shown once, and stored
  only as an HMAC-SHA-256 keyed hash (:func:`idp.services.crypto.keyed_hash`; DESIGN §3). It is
  checked in constant time against every hash the service holds. A service may hold several
  secrets at once (rotation, CONVENTIONS 3); expired secrets and disabled services are refused.
  ``private_key_jwt`` services register a public JWKS instead and get no secret.
- **F01**, **E03** / RFC 9700 §2.1, §2.6 / OIDC Core §3.1.2.1 / RFC 6749 §3.1.2: redirect URIs
  are absolute ``https`` URLs (``http`` only for loopback hosts outside production) with no
  fragment, no wildcard, no user-info, no backslash, no dot segments and nothing that needs
  normalising; they are stored verbatim so the authorization endpoint can compare them by
  simple string comparison. The same rules apply to post-logout redirect URIs (RP-Initiated
  Logout 1.0 §3) and the back-channel logout URI (Back-Channel Logout 1.0 §2.2).
- **F02**: grants are limited to ``authorization_code``, ``refresh_token`` and
  ``client_credentials``; scopes to the supported set, with ``openid`` required for the code flow.
- **H01**: a service's ID tokens are signed with RS256, ES256 or EdDSA, never ``none`` or HS*.
- **K03**: every registration and secret change is audited (``service.registered``,
  ``service.updated``, ``service.secret_added``, ``service.secret_expiry_set``,
  ``service.secret_revoked``); a secret never is.

Declarative files: :func:`load_service_files` reads ``config/services/*.toml``, one service per
file, with the fields of :class:`ServiceSpec` plus ``[[roles]]`` and ``client_secret_env``: the
*name* of an environment variable holding the secret, so the secret never sits in the file.
Loading is idempotent and all-or-nothing: every file is validated before anything is written.

These functions add and flush; the caller commits (:func:`idp.services.transaction.transaction`).
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from flask import current_app
from joserfc.jwk import RSAKey, import_key
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from idp.config import INSECURE_MARKER, Settings
from idp.extensions import db
from idp.models.base import utcnow
from idp.models.organisation import OrganisationType
from idp.models.service import AccessPolicy, Service, ServiceRole, ServiceSecret, ServiceStatus
from idp.services import audit, crypto

#: Scopes a person's sign-in (the authorization code flow) may grant: claims about them.
USER_SCOPES: Final[tuple[str, ...]] = (
    "openid",
    "profile",
    "email",
    "organisation",
    "roles",
    "offline_access",
)
#: Scopes of the service-to-service API (``/api/v1``, :mod:`idp.api`), granted only by the
#: client credentials grant (RFC 6749 §4.4) and never in the code flow: ``users:read`` reads
#: the people who have access to the calling service and their roles there, ``users:invite``
#: invites a person to it. A service registers them in ``allowed_scopes`` like any other.
API_SCOPES: Final[tuple[str, ...]] = ("users:read", "users:invite")
SUPPORTED_SCOPES: Final[tuple[str, ...]] = (*USER_SCOPES, *API_SCOPES)
SUPPORTED_GRANT_TYPES: Final[tuple[str, ...]] = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
)
SECRET_AUTH_METHODS: Final[tuple[str, ...]] = ("client_secret_basic", "client_secret_post")
TOKEN_ENDPOINT_AUTH_METHODS: Final[tuple[str, ...]] = (*SECRET_AUTH_METHODS, "private_key_jwt")
#: The algorithms the provider signs with (RS256 always; OIDC Core §15.1). The key ring in
#: idp.oidc.keys implements exactly these; it imports them from here (services never import
#: the protocol layer).
SIGNING_ALGS: Final[tuple[str, ...]] = ("RS256", "ES256", "EdDSA")
DEFAULT_SCOPES: Final[tuple[str, ...]] = ("openid", "profile", "email")
DEFAULT_GRANT_TYPES: Final[tuple[str, ...]] = ("authorization_code", "refresh_token")

CLIENT_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
ROLE_CODE_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ENV_NAME_PATTERN: Final = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_HOST_PATTERN: Final = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
MAX_URI_LENGTH: Final = 2000
#: A generated secret is 43 characters; a secret supplied from the environment must be at
#: least this long (high entropy is what makes a fast keyed hash sufficient).
MIN_SECRET_LENGTH: Final = 32
#: Longer "secrets" are refused before hashing.
MAX_SECRET_LENGTH: Final = 512
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class ServiceError(Exception):
    """Base class for service-registry errors."""


class ServiceValidationError(ServiceError, ValueError):
    """A registration or update breaks the rules; ``problems`` lists every broken rule."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class ServiceExists(ServiceError):
    """A service with this client_id is already registered."""


class ServiceNotFound(ServiceError, LookupError):
    """No service has this client_id."""


class SecretNotFound(ServiceError, LookupError):
    """The service holds no secret with this id."""


class ServiceFileError(ServiceError, ValueError):
    """One or more declarative service files are invalid; nothing was written."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class RoleSpec:
    """A role a service defines, optionally limited to some organisation types."""

    code: str
    name: str
    description: str = ""
    organisation_types: tuple[str, ...] | None = None

    @classmethod
    def coerce(cls, value: RoleSpec | Mapping[str, Any]) -> RoleSpec:
        if isinstance(value, RoleSpec):
            return value
        types = value.get("organisation_types")
        return cls(
            code=str(value.get("code", "")),
            name=str(value.get("name", "")),
            description=str(value.get("description", "")),
            organisation_types=tuple(types) if types is not None else None,
        )


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a service registers, except its secrets. Validated by :meth:`problems`."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    allowed_scopes: tuple[str, ...] = DEFAULT_SCOPES
    grant_types: tuple[str, ...] = DEFAULT_GRANT_TYPES
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 (a method name)
    jwks: dict[str, Any] | None = None
    require_mfa: bool = False
    roles: tuple[RoleSpec, ...] = ()
    description: str = ""
    start_url: str | None = None
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 (an algorithm name)
    first_party: bool = True
    access_token_lifetime: int = 600
    id_token_lifetime: int = 600
    refresh_token_lifetime: int = 86400
    #: Who may sign in: "granted" (people an approver gave access) or "open" (any active
    #: account). Issue 7; idp.services.access.has_access applies it.
    access_policy: AccessPolicy = AccessPolicy.GRANTED

    @property
    def uses_secret(self) -> bool:
        return self.token_endpoint_auth_method in SECRET_AUTH_METHODS

    def problems(self, *, production: bool) -> list[str]:
        """Every rule this spec breaks, one sentence each (empty when it is valid)."""
        found: list[str] = []
        if not CLIENT_ID_PATTERN.match(self.client_id):
            found.append(
                f"client_id {self.client_id!r} must be 3-64 characters of letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
        if not self.name.strip() or len(self.name) > 120:
            found.append("name must be 1-120 characters")
        found += _grant_and_scope_problems(self)
        for uri in self.redirect_uris:
            found += [f"redirect_uri {uri!r}: {p}" for p in uri_problems(uri, production)]
        if len(set(self.redirect_uris)) != len(self.redirect_uris):
            found.append("redirect_uris lists the same URI twice")
        for uri in self.post_logout_redirect_uris:
            found += [
                f"post_logout_redirect_uri {uri!r}: {p}" for p in uri_problems(uri, production)
            ]
        for label, optional in (
            ("backchannel_logout_uri", self.backchannel_logout_uri),
            ("start_url", self.start_url),
        ):
            if optional is not None:
                found += [f"{label} {optional!r}: {p}" for p in uri_problems(optional, production)]
        found += _auth_method_problems(self)
        if self.id_token_signed_response_alg not in SIGNING_ALGS:
            found.append(f"id_token_signed_response_alg must be one of {', '.join(SIGNING_ALGS)}")
        for label, value, low, high in (
            ("access_token_lifetime", self.access_token_lifetime, 60, 900),  # G07
            ("id_token_lifetime", self.id_token_lifetime, 60, 600),  # H02
            ("refresh_token_lifetime", self.refresh_token_lifetime, 300, 86400),  # G05
        ):
            if not low <= value <= high:
                found.append(f"{label} must be between {low} and {high} seconds")
        found += _role_problems(self.roles)
        if self.access_policy not in tuple(AccessPolicy):
            found.append(f"access_policy must be one of {', '.join(AccessPolicy)}")
        return found


def _grant_and_scope_problems(spec: ServiceSpec) -> list[str]:
    found: list[str] = []
    if not spec.grant_types:
        found.append("grant_types must not be empty")
    unknown = [g for g in spec.grant_types if g not in SUPPORTED_GRANT_TYPES]
    if unknown:
        found.append(
            f"unsupported grant_types {unknown}: use {', '.join(SUPPORTED_GRANT_TYPES)} "
            "(implicit and password grants are not offered)"
        )
    if "refresh_token" in spec.grant_types and "authorization_code" not in spec.grant_types:
        found.append("the refresh_token grant needs the authorization_code grant")
    unknown = [s for s in spec.allowed_scopes if s not in SUPPORTED_SCOPES]
    if unknown:
        found.append(f"unsupported scopes {unknown}: use {', '.join(SUPPORTED_SCOPES)}")
    if len(set(spec.allowed_scopes)) != len(spec.allowed_scopes):
        found.append("allowed_scopes lists a scope twice")
    if "authorization_code" in spec.grant_types:
        if "openid" not in spec.allowed_scopes:
            found.append("allowed_scopes must include openid for the authorization_code grant")
        if not spec.redirect_uris:
            found.append("the authorization_code grant needs at least one redirect_uri")
    if "offline_access" in spec.allowed_scopes and "refresh_token" not in spec.grant_types:
        found.append("the offline_access scope needs the refresh_token grant")
    api = [s for s in spec.allowed_scopes if s in API_SCOPES]
    if api and "client_credentials" not in spec.grant_types:
        found.append(f"the API scopes {api} need the client_credentials grant")
    return found


def _auth_method_problems(spec: ServiceSpec) -> list[str]:
    method = spec.token_endpoint_auth_method
    if method not in TOKEN_ENDPOINT_AUTH_METHODS:
        return [
            f"token_endpoint_auth_method {method!r} is not supported: use "
            f"{', '.join(TOKEN_ENDPOINT_AUTH_METHODS)} (every service is a confidential client)"
        ]
    if method == "private_key_jwt":
        if spec.jwks is None:
            return ["private_key_jwt needs the service's public keys in jwks"]
        return jwks_problems(spec.jwks)
    if spec.jwks is not None:
        return [f"jwks is only for private_key_jwt, not {method}"]
    return []


def _role_problems(roles: Sequence[RoleSpec]) -> list[str]:
    found: list[str] = []
    codes = [r.code for r in roles]
    if len(set(codes)) != len(codes):
        found.append("roles lists the same code twice")
    valid_types = {t.value for t in OrganisationType}
    for role in roles:
        if not ROLE_CODE_PATTERN.match(role.code):
            found.append(
                f"role code {role.code!r} must be 1-64 lower-case letters, digits, '_', '.' or '-'"
            )
        if not role.name.strip() or len(role.name) > 120:
            found.append(f"role {role.code!r}: name must be 1-120 characters")
        unknown = sorted(set(role.organisation_types or ()) - valid_types)
        if unknown:
            found.append(
                f"role {role.code!r}: unknown organisation_types {unknown}; "
                f"use {', '.join(sorted(valid_types))}"
            )
    return found


def uri_problems(uri: str, production: bool) -> list[str]:
    """Why ``uri`` cannot be registered (empty when it can). F01, E03, RFC 9700 §2.1.

    The URI is stored exactly as given and later compared byte for byte, so anything a browser
    or a URL parser might read differently from us is refused rather than normalised.
    """
    if not isinstance(uri, str) or not uri:
        return ["must be a non-empty string"]
    if len(uri) > MAX_URI_LENGTH:
        return [f"must be at most {MAX_URI_LENGTH} characters"]
    if not uri.isascii() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return ["must be ASCII with no spaces or control characters (punycode any IDN host)"]
    if "\\" in uri:
        return ["must not contain a backslash"]
    if "*" in uri:
        return ["must not contain a wildcard: every URI is matched exactly"]
    if "#" in uri:
        return ["must not contain a fragment (OIDC Core §3.1.2.1)"]
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not uri.startswith(f"{parts.scheme}://"):
        return ["must be an absolute https URL"]
    if "@" in parts.netloc or "%" in parts.netloc:
        return ["must not contain user-info or percent-encoding in the host"]
    try:
        port = parts.port
    except ValueError:
        return ["has an invalid port"]
    host = parts.hostname or ""
    if port == 0 or not host:
        return ["must name a host"]
    ip = _ip(host)
    if ip is None and not _HOST_PATTERN.match(host):
        return [f"has an invalid host name {host!r}"]
    loopback = host.lower() == "localhost" or (ip is not None and ip.is_loopback)
    found: list[str] = []
    if parts.scheme == "http" and (production or not loopback):
        found.append("must use https (http is allowed only for loopback hosts outside production)")
    if production and loopback:
        found.append("must not point at a loopback host in production")
    segments = parts.path.split("/")
    # "..;" and ";..;" are dot segments to servers that strip path parameters (Tomcat).
    if any(piece in (".", "..") for segment in segments for piece in segment.split(";")):
        found.append("must not contain '.' or '..' path segments")
    return found


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def jwks_problems(jwks: Mapping[str, Any]) -> list[str]:
    """Why ``jwks`` is not an acceptable public key set for private_key_jwt (G04)."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        return ["jwks must be a JWKS document with a non-empty keys list"]
    found: list[str] = []
    kids: list[str] = []
    for index, key in enumerate(keys):
        if not isinstance(key, Mapping):
            found.append(f"jwks key {index} is not an object")
            continue
        private = sorted(_PRIVATE_JWK_MEMBERS.intersection(key))
        if private:
            found.append(
                f"jwks key {index} carries private or symmetric members {private}: register "
                "the public key only"
            )
            continue
        if key.get("kty") not in ("RSA", "EC", "OKP"):
            found.append(f"jwks key {index}: kty must be RSA, EC or OKP")
            continue
        if "alg" in key and key["alg"] not in SIGNING_ALGS:
            found.append(f"jwks key {index}: alg must be one of {', '.join(SIGNING_ALGS)}")
        try:
            imported = import_key(dict(key))
        except Exception as error:  # joserfc raises several types for malformed keys
            found.append(f"jwks key {index} cannot be read: {error}")
            continue
        if isinstance(imported, RSAKey) and imported.raw_value.key_size < 2048:
            found.append(f"jwks key {index}: RSA keys must be at least 2048 bits")
        if "kid" in key:
            kids.append(str(key["kid"]))
    if len(keys) > 1 and len(kids) != len(keys):
        found.append("every key in a jwks with several keys needs a kid")
    if len(set(kids)) != len(kids):
        found.append("jwks kids must be unique")
    return found


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


# -- registering and updating ----------------------------------------------------------------


def register_service(
    client_id: str,
    name: str,
    *,
    redirect_uris: Sequence[str],
    allowed_scopes: Sequence[str],
    grant_types: Sequence[str],
    post_logout_redirect_uris: Sequence[str] = (),
    backchannel_logout_uri: str | None = None,
    token_endpoint_auth_method: str = "client_secret_basic",  # noqa: S107 (a method name)
    jwks: Mapping[str, Any] | None = None,
    require_mfa: bool = False,
    roles: Sequence[RoleSpec | Mapping[str, Any]] = (),
    description: str = "",
    start_url: str | None = None,
    id_token_signed_response_alg: str = "RS256",  # noqa: S107 (an algorithm name)
    first_party: bool = True,
    access_token_lifetime: int = 600,
    id_token_lifetime: int = 600,
    refresh_token_lifetime: int = 86400,
    access_policy: AccessPolicy | str = AccessPolicy.GRANTED,
    secret: str | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> tuple[Service, str | None]:
    """Register a service and return it with its new secret, which is never shown again.

    The secret is None for ``private_key_jwt`` services, and when ``secret`` is given (the
    declarative loader passes the one from the environment; the caller already knows it).
    Raises :class:`ServiceValidationError` listing every broken rule, or :class:`ServiceExists`.
    """
    spec = ServiceSpec(
        client_id=client_id,
        name=name,
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        backchannel_logout_uri=backchannel_logout_uri,
        allowed_scopes=tuple(allowed_scopes),
        grant_types=tuple(grant_types),
        token_endpoint_auth_method=token_endpoint_auth_method,
        jwks=dict(jwks) if jwks is not None else None,
        require_mfa=require_mfa,
        roles=tuple(RoleSpec.coerce(r) for r in roles),
        description=description,
        start_url=start_url,
        id_token_signed_response_alg=id_token_signed_response_alg,
        first_party=first_party,
        access_token_lifetime=access_token_lifetime,
        id_token_lifetime=id_token_lifetime,
        refresh_token_lifetime=refresh_token_lifetime,
        access_policy=_policy(access_policy),
    )
    return register_spec(spec, secret=secret, actor=actor, now=now)


def _policy(value: AccessPolicy | str) -> AccessPolicy:
    """The enum for ``value``; an unknown word is left as text for :meth:`ServiceSpec.problems`
    to name (the column needs the enum member, which ``has_access`` compares by identity)."""
    try:
        return AccessPolicy(value)
    except ValueError:
        return value  # type: ignore[return-value]


def register_spec(
    spec: ServiceSpec,
    *,
    secret: str | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> tuple[Service, str | None]:
    """:func:`register_service` for a ready-made :class:`ServiceSpec`."""
    problems = spec.problems(production=_settings().is_production)
    if secret is not None and not spec.uses_secret:
        problems.append(f"{spec.token_endpoint_auth_method} services have no client secret")
    if problems:
        raise ServiceValidationError(problems)
    if find_service(spec.client_id, active_only=False) is not None:
        raise ServiceExists(f"a service with client_id {spec.client_id!r} already exists")
    service = Service(client_id=spec.client_id, status=ServiceStatus.ACTIVE, secrets=[], roles=[])
    _apply_fields(service, spec)
    _apply_roles(service, spec.roles)
    db.session.add(service)
    db.session.flush()
    audit.record(
        "service.registered",
        actor=actor,
        target=service.client_id,
        target_type="service",
        **_audit_view(spec),
    )
    shown: str | None = None
    if spec.uses_secret:
        if secret is None:
            shown = add_secret(service, label="initial", actor=actor, now=now)
        else:
            add_secret(service, label="initial", actor=actor, now=now, secret=secret)
    return service, shown


_SPEC_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(ServiceSpec) if f.name not in ("client_id", "roles")
)


def _column_value(spec: ServiceSpec, name: str) -> Any:
    value = getattr(spec, name)
    return list(value) if isinstance(value, tuple) else value


def _apply_fields(service: Service, spec: ServiceSpec) -> list[str]:
    """Copy ``spec`` onto ``service``; return the names of the fields that changed."""
    changed: list[str] = []
    for name in _SPEC_FIELDS:
        value = _column_value(spec, name)
        if getattr(service, name, None) != value:
            setattr(service, name, value)
            changed.append(name)
    return changed


def _apply_roles(service: Service, roles: Sequence[RoleSpec]) -> list[str]:
    """Make ``service.roles`` match ``roles`` by code; return a description of each change."""
    changes: list[str] = []
    existing = {role.code: role for role in service.roles}
    for spec in roles:
        types = list(spec.organisation_types) if spec.organisation_types is not None else None
        role = existing.pop(spec.code, None)
        if role is None:
            service.roles.append(
                ServiceRole(
                    code=spec.code,
                    name=spec.name,
                    description=spec.description,
                    organisation_types=types,
                )
            )
            changes.append(f"+{spec.code}")
        elif (role.name, role.description, role.organisation_types) != (
            spec.name,
            spec.description,
            types,
        ):
            role.name, role.description, role.organisation_types = (
                spec.name,
                spec.description,
                types,
            )
            changes.append(f"~{spec.code}")
    for code, role in existing.items():
        # The file is the source of truth: a role it no longer lists is removed, and with it
        # every assignment of that role (access_grant_roles cascades).
        service.roles.remove(role)
        changes.append(f"-{code}")
    return changes


def _audit_view(spec: ServiceSpec) -> dict[str, Any]:
    return {
        "redirect_uris": list(spec.redirect_uris),
        "post_logout_redirect_uris": list(spec.post_logout_redirect_uris),
        "backchannel_logout_uri": spec.backchannel_logout_uri,
        "allowed_scopes": list(spec.allowed_scopes),
        "grant_types": list(spec.grant_types),
        "token_endpoint_auth_method": spec.token_endpoint_auth_method,
        "require_mfa": spec.require_mfa,
        "access_policy": str(spec.access_policy),
        "roles": [r.code for r in spec.roles],
    }


def update_service(service: Service, spec: ServiceSpec, *, actor: str = "system") -> list[str]:
    """Make ``service`` match ``spec``; return what changed (empty: nothing, and no audit row)."""
    if spec.client_id != service.client_id:
        raise ServiceValidationError(["client_id cannot change"])
    problems = spec.problems(production=_settings().is_production)
    if problems:
        raise ServiceValidationError(problems)
    changed = _apply_fields(service, spec)
    role_changes = _apply_roles(service, spec.roles)
    if role_changes:
        changed.append("roles")
    if changed:
        db.session.flush()
        audit.record(
            "service.updated",
            actor=actor,
            target=service.client_id,
            target_type="service",
            changed=changed,
            role_changes=role_changes,
            **_audit_view(spec),
        )
    return changed


def find_service(client_id: str, *, active_only: bool = True) -> Service | None:
    """The service registered as ``client_id`` (disabled ones only if ``active_only=False``)."""
    query = select(Service).where(Service.client_id == client_id)
    if active_only:
        query = query.where(Service.status == ServiceStatus.ACTIVE)
    result: Service | None = db.session.scalar(query)
    return result


def get_service(client_id: str, *, active_only: bool = False) -> Service:
    service = find_service(client_id, active_only=active_only)
    if service is None:
        raise ServiceNotFound(f"no service with client_id {client_id!r}")
    return service


# -- secrets ---------------------------------------------------------------------------------


def secret_problems(secret: str, *, production: bool) -> list[str]:
    if len(secret) < MIN_SECRET_LENGTH:
        return [f"a client secret must be at least {MIN_SECRET_LENGTH} random characters"]
    if len(secret) > MAX_SECRET_LENGTH:
        return [f"a client secret must be at most {MAX_SECRET_LENGTH} characters"]
    if production and INSECURE_MARKER in secret.lower():
        return ["a client secret marked insecure cannot be used in production"]
    return []


def add_secret(
    service: Service,
    *,
    label: str = "",
    expires_at: datetime | None = None,
    actor: str = "system",
    now: datetime | None = None,
    secret: str | None = None,
) -> str:
    """Give ``service`` another valid secret (rotation) and return it; only its hash is kept.

    Existing secrets stay valid until they expire or are revoked. ``secret`` supplies the
    value instead of generating one (declarative files); it must be long and unused.
    """
    if service.token_endpoint_auth_method not in SECRET_AUTH_METHODS:
        raise ServiceValidationError(
            [f"{service.token_endpoint_auth_method} services have no client secret"]
        )
    if secret is None:
        secret = secrets.token_urlsafe(32)
    else:
        problems = secret_problems(secret, production=_settings().is_production)
        if problems:
            raise ServiceValidationError(problems)
    candidates = crypto.keyed_hash_candidates(secret)
    if db.session.scalar(select(ServiceSecret.id).where(ServiceSecret.secret_hash.in_(candidates))):
        raise ServiceValidationError(["this secret is already registered; use a new one"])
    row = ServiceSecret(
        secret_hash=crypto.keyed_hash(secret),
        label=label[:120],
        created_at=now or utcnow(),
        expires_at=expires_at,
    )
    service.secrets.append(row)
    db.session.flush()
    audit.record(
        "service.secret_added",
        actor=actor,
        target=service.client_id,
        target_type="service",
        secret_id=row.id,
        label=row.label,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return secret


def _secret_row(service: Service, secret_id: int) -> ServiceSecret:
    for row in service.secrets:
        if row.id == secret_id:
            return row
    raise SecretNotFound(f"service {service.client_id!r} has no secret {secret_id}")


def revoke_secret(service: Service, secret_id: int, *, actor: str = "system") -> None:
    """Delete one secret at once: anything still presenting it fails from now on."""
    row = _secret_row(service, secret_id)
    service.secrets.remove(row)
    db.session.flush()
    audit.record(
        "service.secret_revoked",
        actor=actor,
        target=service.client_id,
        target_type="service",
        secret_id=secret_id,
        label=row.label,
    )


def expire_secret(
    service: Service, secret_id: int, expires_at: datetime, *, actor: str = "system"
) -> None:
    """Let one secret work until ``expires_at`` (the end of a rotation's overlap)."""
    row = _secret_row(service, secret_id)
    row.expires_at = expires_at
    db.session.flush()
    audit.record(
        "service.secret_expiry_set",
        actor=actor,
        target=service.client_id,
        target_type="service",
        secret_id=secret_id,
        expires_at=expires_at.isoformat(),
    )


def _matching_secrets(service: Service, secret: str) -> list[ServiceSecret]:
    # Every stored hash is compared with every candidate, with no early exit, in constant time.
    candidates = crypto.keyed_hash_candidates(secret)
    matches: list[ServiceSecret] = []
    for row in service.secrets:
        hit = False
        for candidate in candidates:
            hit |= hmac.compare_digest(candidate, row.secret_hash)
        if hit:
            matches.append(row)
    return matches


def authenticate_client_secret(
    client_id: str, secret: str, *, now: datetime | None = None
) -> Service | None:
    """The service, if ``secret`` is one of its current secrets; otherwise None (G04).

    Refused: unknown or disabled services, services registered for ``private_key_jwt``,
    expired secrets. The caller reports every refusal the same way (``invalid_client``).
    """
    if not client_id or not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    # One round trip: the service and all its secret hashes.
    service = (
        db.session.scalars(
            select(Service)
            .where(Service.client_id == client_id)
            .options(joinedload(Service.secrets))
        )
        .unique()
        .one_or_none()
    )
    if service is None:
        crypto.keyed_hash_candidates(secret)  # the same work whether or not the client exists
        return None
    return service if secret_is_current(service, secret, now=now) else None


def secret_is_current(service: Service, secret: str, *, now: datetime | None = None) -> bool:
    """:func:`authenticate_client_secret` for a service already loaded with its secrets (the
    token endpoint's per-process cache, :mod:`idp.services.service_cache`). Expiry is checked
    here, at every use, so an expired secret never needs a cache refresh to stop working."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return False
    at = now or utcnow()
    valid = any(
        row.expires_at is None or row.expires_at > at for row in _matching_secrets(service, secret)
    )
    return (
        valid
        and service.status is ServiceStatus.ACTIVE
        and service.token_endpoint_auth_method in SECRET_AUTH_METHODS
    )


# -- declarative files -----------------------------------------------------------------------


class _RoleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    code: str
    name: str
    description: str = ""
    organisation_types: list[str] | None = None


class _ServiceFile(BaseModel):
    """The schema of one ``config/services/*.toml`` file: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    client_id: str
    name: str
    description: str = ""
    start_url: str | None = None
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []
    backchannel_logout_uri: str | None = None
    allowed_scopes: list[str] = list(DEFAULT_SCOPES)
    grant_types: list[str] = list(DEFAULT_GRANT_TYPES)
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 (a method name)
    client_secret_env: str | None = None
    jwks: dict[str, Any] | None = None
    require_mfa: bool = False
    first_party: bool = True
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 (an algorithm name)
    access_token_lifetime: int = 600
    id_token_lifetime: int = 600
    refresh_token_lifetime: int = 86400
    access_policy: str = AccessPolicy.GRANTED.value
    roles: list[_RoleFile] = []

    def spec(self) -> ServiceSpec:
        return ServiceSpec(
            client_id=self.client_id,
            name=self.name,
            description=self.description,
            start_url=self.start_url,
            redirect_uris=tuple(self.redirect_uris),
            post_logout_redirect_uris=tuple(self.post_logout_redirect_uris),
            backchannel_logout_uri=self.backchannel_logout_uri,
            allowed_scopes=tuple(self.allowed_scopes),
            grant_types=tuple(self.grant_types),
            token_endpoint_auth_method=self.token_endpoint_auth_method,
            jwks=self.jwks,
            require_mfa=self.require_mfa,
            first_party=self.first_party,
            id_token_signed_response_alg=self.id_token_signed_response_alg,
            access_token_lifetime=self.access_token_lifetime,
            id_token_lifetime=self.id_token_lifetime,
            refresh_token_lifetime=self.refresh_token_lifetime,
            access_policy=_policy(self.access_policy),
            roles=tuple(
                RoleSpec(
                    code=r.code,
                    name=r.name,
                    description=r.description,
                    organisation_types=(
                        tuple(r.organisation_types) if r.organisation_types is not None else None
                    ),
                )
                for r in self.roles
            ),
        )


@dataclass
class LoadReport:
    """What :func:`load_service_files` did, by client_id."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    secrets_added: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.secrets_added)


@dataclass(frozen=True)
class _Loaded:
    path: Path
    spec: ServiceSpec
    secret_env: str | None
    secret: str | None


def _read_file(
    path: Path, environ: Mapping[str, str], production: bool
) -> tuple[_Loaded | None, list[str]]:
    name = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return None, [f"{name}: cannot be read as TOML: {error}"]
    try:
        parsed = _ServiceFile.model_validate(data)
    except ValidationError as error:
        return None, [
            f"{name}: {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
            for e in error.errors()
        ]
    spec = parsed.spec()
    problems = [f"{name}: {p}" for p in spec.problems(production=production)]
    env_name, secret = parsed.client_secret_env, None
    if spec.uses_secret:
        if env_name is None:
            problems.append(
                f"{name}: {spec.token_endpoint_auth_method} needs client_secret_env, the name "
                "of the environment variable that holds the secret (never the secret itself)"
            )
        elif not ENV_NAME_PATTERN.match(env_name):
            problems.append(f"{name}: client_secret_env {env_name!r} is not a variable name")
        elif not environ.get(env_name):
            problems.append(
                f"{name}: the environment variable {env_name} (client_secret_env) is not set; "
                "set it to the service's client secret"
            )
        else:
            secret = environ[env_name]
            problems += [
                f"{name}: {env_name}: {p}" for p in secret_problems(secret, production=production)
            ]
    elif env_name is not None:
        problems.append(f"{name}: client_secret_env is only for client_secret_* methods")
    return _Loaded(path, spec, env_name, secret), problems


def load_service_files(
    folder: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> LoadReport:
    """Register or update one service per ``*.toml`` file in ``folder``; idempotent.

    Every file is read and validated first; if any is invalid, :class:`ServiceFileError`
    lists every problem and nothing is written. Then each service is created or brought in
    line with its file (a changed redirect URI replaces the old one; roles follow the file),
    and the secret from ``client_secret_env`` is added unless it is already one of the
    service's secrets. Earlier secrets stay valid (rotation overlap) until revoked or expired.
    Services without a file are left alone.
    """
    env = os.environ if environ is None else environ
    production = _settings().is_production
    directory = Path(folder)
    if not directory.is_dir():
        raise ServiceFileError([f"{directory} is not a folder"])
    loaded: list[_Loaded] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        item, found = _read_file(path, env, production)
        problems += found
        if item is not None:
            loaded.append(item)
    seen: dict[str, str] = {}
    for item in loaded:
        other = seen.setdefault(item.spec.client_id, item.path.name)
        if other != item.path.name:
            problems.append(
                f"{item.path.name}: client_id {item.spec.client_id!r} is also in {other}"
            )
    if problems:
        raise ServiceFileError(problems)

    report = LoadReport()
    at = now or utcnow()
    for item in loaded:
        label = f"from ${item.secret_env}" if item.secret_env else ""
        service = find_service(item.spec.client_id, active_only=False)
        try:
            if service is None:
                register_spec(item.spec, secret=item.secret, actor=actor, now=at)
                report.created.append(item.spec.client_id)
                continue
            changed = update_service(service, item.spec, actor=actor)
            if changed:
                report.updated[service.client_id] = changed
            else:
                report.unchanged.append(service.client_id)
            if item.secret is not None:
                matches = _matching_secrets(service, item.secret)
                if not matches:
                    add_secret(service, label=label, actor=actor, now=at, secret=item.secret)
                    report.secrets_added.append(service.client_id)
                elif all(m.expires_at is not None and m.expires_at <= at for m in matches):
                    raise ServiceValidationError(
                        [f"the secret in ${item.secret_env} has expired; set a new one"]
                    )
        except ServiceError as error:
            # Validated above, so this is a conflict with the database (a reused secret, an
            # expired one): nothing is committed, because the caller's transaction rolls back.
            raise ServiceFileError([f"{item.path.name}: {error}"]) from error
    return report
