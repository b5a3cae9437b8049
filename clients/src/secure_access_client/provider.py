"""The provider as this service sees it: its discovery document and its signing keys.

- **J02**: discovery is fetched from the pinned issuer (``<issuer>/.well-known/openid-
  configuration``, OpenID Connect Discovery 1.0 §4) and refused unless its ``issuer`` is exactly
  the pinned value (§4.3). Its endpoints must be https (http only on loopback).
- **J02 Also**: the JWKS is cached for ``metadata_cache_seconds``. A ``kid`` that is not in the
  cache refetches the JWKS once, and at most every ``jwks_min_refresh_interval`` seconds, so a
  flood of tokens with made-up ``kid`` values cannot turn this service into a JWKS hammer. A
  token without ``kid`` is verified only if exactly one key fits its algorithm, otherwise it
  is refused (fail closed).
- Responses are size-capped and fetched with a timeout and without following redirects. An
  unreachable provider raises :class:`ProviderUnavailable` (the degraded mode in
  docs/integrating.md), a broken one :class:`DiscoveryError`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

import requests
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from secure_access_client.errors import DiscoveryError, InvalidToken, ProviderUnavailable
from secure_access_client.settings import Settings, _is_loopback
from secure_access_client.tokens import key_fits

log = logging.getLogger("secure_access_client")

#: Largest discovery document or JWKS accepted, in bytes.
MAX_DOCUMENT_BYTES = 256 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"
_REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
_OPTIONAL_ENDPOINTS = (
    "userinfo_endpoint",
    "end_session_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
)


class ProviderSource(Protocol):
    """What the relying party needs from the provider. :class:`Provider` fetches it over HTTP;
    :class:`StaticProvider` holds it in memory (for tests, see :mod:`.testing`)."""

    def metadata(self) -> Mapping[str, Any]: ...

    def key_for(self, kid: str | None, alg: str) -> Key: ...


@dataclass(frozen=True)
class _PublishedKey:
    kid: str | None
    jwk: dict[str, Any]
    key: Key


def import_jwks(document: Mapping[str, Any]) -> list[_PublishedKey]:
    """The usable public keys of a JWKS. Keys we cannot use are skipped, not fatal."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise DiscoveryError("The provider's JWKS has no keys list", check="jwks-invalid")
    keys: list[_PublishedKey] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            continue  # a symmetric key in a public JWKS is never used (L02)
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            key = import_key(public)
        except (JoseError, ValueError, TypeError):
            log.warning("Skipping a JWKS key that cannot be imported (kid %r)", entry.get("kid"))
            continue
        kid = entry.get("kid")
        keys.append(_PublishedKey(kid if isinstance(kid, str) else None, public, key))
    return keys


def choose_key(keys: list[_PublishedKey], kid: str | None, alg: str) -> Key | None:
    """The key for ``kid``/``alg``, None if there is none; raises if the choice is ambiguous."""
    if kid is None:
        fitting = [k for k in keys if key_fits(k.key, alg, k.jwk)]
        if len(fitting) > 1:
            raise InvalidToken(
                "The token names no key and the provider has several that fit",
                check="kid-absent-multiple-matching-keys",
            )
        return fitting[0].key if fitting else None
    named = [k for k in keys if k.kid == kid]
    if not named:
        return None
    fitting = [k for k in named if key_fits(k.key, alg, k.jwk)]
    if len(fitting) != 1:
        raise InvalidToken(
            f"The provider's key {kid} is not for the token's algorithm {alg}",
            check="key-alg-mismatch",
        )
    return fitting[0].key


def _check_endpoint(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DiscoveryError(f"The provider's {name} is missing", check="discovery-invalid")
    parts = urlsplit(value)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname)
    ):
        raise DiscoveryError(f"The provider's {name} is not https", check="discovery-invalid")
    return value


def check_metadata(document: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """Validate a discovery document against the pinned settings (J02)."""
    if document.get("issuer") != settings.issuer:
        raise DiscoveryError(
            "The discovery document names another issuer than the configured one",
            check="discovery-issuer-mismatch",
        )
    for name in _REQUIRED_ENDPOINTS:
        _check_endpoint(name, document.get(name))
    for name in _OPTIONAL_ENDPOINTS:
        if document.get(name) is not None:
            _check_endpoint(name, document.get(name))
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise DiscoveryError("The provider does not offer the code flow", check="discovery-invalid")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise DiscoveryError("The provider does not offer PKCE S256", check="discovery-invalid")
    algs = document.get("id_token_signing_alg_values_supported")
    if isinstance(algs, list) and not set(algs) & set(settings.algorithms):
        raise DiscoveryError(
            "The provider signs with none of the allowed algorithms", check="discovery-invalid"
        )
    return dict(document)


def fetch_json(session: requests.Session, url: str, timeout: float, what: str) -> dict[str, Any]:
    """GET a JSON object with a timeout and a size cap; never follows redirects."""
    try:
        with session.get(
            url,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code >= 500:
                raise ProviderUnavailable(
                    f"The provider's {what} answered {response.status_code}", check="unavailable"
                )
            if response.status_code != 200:
                raise DiscoveryError(
                    f"The provider's {what} answered {response.status_code}",
                    check="discovery-invalid",
                )
            body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise ProviderUnavailable(
            f"The provider's {what} cannot be reached ({type(error).__name__})",
            check="unavailable",
        ) from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DiscoveryError(f"The provider's {what} is too large", check="discovery-invalid")
    try:
        document = json.loads(body)
    except ValueError:
        raise DiscoveryError(
            f"The provider's {what} is not JSON", check="discovery-invalid"
        ) from None
    if not isinstance(document, dict):
        raise DiscoveryError(
            f"The provider's {what} is not a JSON object", check="discovery-invalid"
        )
    return document


class Provider:
    """Discovery and JWKS of the pinned issuer, fetched over HTTP and cached (J02)."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self._clock = clock
        self._lock = threading.RLock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: list[_PublishedKey] = []
        self._keys_at: float | None = None
        #: How many times the JWKS was fetched (for tests and metrics).
        self.jwks_fetches = 0

    def metadata(self) -> Mapping[str, Any]:
        now = self._clock()
        cached = self._metadata
        if cached is not None and now - self._metadata_at < self.settings.metadata_cache_seconds:
            return cached
        with self._lock:
            document = fetch_json(
                self.http,
                self.settings.issuer + DISCOVERY_PATH,
                self.settings.http_timeout,
                "discovery document",
            )
            self._metadata = check_metadata(document, self.settings)
            self._metadata_at = now
            return self._metadata

    def _fetch_keys(self, now: float) -> None:
        document = fetch_json(
            self.http, str(self.metadata()["jwks_uri"]), self.settings.http_timeout, "JWKS"
        )
        self._keys = import_jwks(document)
        self._keys_at = now
        self.jwks_fetches += 1

    def key_for(self, kid: str | None, alg: str) -> Key:
        now = self._clock()
        with self._lock:
            if self._keys_at is None or now - self._keys_at >= self.settings.metadata_cache_seconds:
                self._fetch_keys(now)
            key = choose_key(self._keys, kid, alg)
            assert self._keys_at is not None
            if key is None and now - self._keys_at >= self.settings.jwks_min_refresh_interval:
                # An unknown kid: the provider may have rotated. Look once more (rate-limited).
                self._fetch_keys(now)
                key = choose_key(self._keys, kid, alg)
        if key is None:
            raise InvalidToken(
                "The token was signed with a key the provider does not publish", check="unknown-kid"
            )
        return key


class StaticProvider:
    """A provider held in memory: given metadata and a JWKS, no HTTP (for test helpers)."""

    def __init__(self, metadata: Mapping[str, Any], jwks: Mapping[str, Any]) -> None:
        self._metadata = dict(metadata)
        self._keys = import_jwks(jwks)

    def metadata(self) -> Mapping[str, Any]:
        return self._metadata

    def key_for(self, kid: str | None, alg: str) -> Key:
        key = choose_key(self._keys, kid, alg)
        if key is None:
            raise InvalidToken(
                "The token was signed with a key the provider does not publish", check="unknown-kid"
            )
        return key
