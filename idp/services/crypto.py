"""Small cryptographic building blocks shared by the services.

- :func:`encrypt` / :func:`decrypt`: AES-256-GCM under the key-encryption keys from settings
  (signing keys, TOTP secrets, outbox payloads at rest). The first key encrypts; every key
  decrypts, so keys rotate without re-encrypting everything at once. Ciphertexts name the key
  they were made with by a short fingerprint.
- :func:`keyed_hash` / :func:`verify_keyed_hash`: HMAC-SHA-256 for high-entropy secrets
  (client secrets). A slow password hash would add nothing for 256-bit random values and
  would cap the token endpoint at a few dozen grants a second (DESIGN.md §3).
- :func:`token_hash`: SHA-256 for single-use link tokens (C02: "only its SHA-256 is stored").
- :func:`new_token`: 256 random bits, URL-safe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from pydantic import SecretStr

from idp.config import Settings

_VERSION = "v1"


class DecryptionError(ValueError):
    """The ciphertext was made with an unknown key or has been tampered with."""


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _derive(secret: SecretStr, purpose: bytes) -> bytes:
    # Settings hold human-manageable strings; derive fixed-length keys per purpose from them.
    return hashlib.sha256(purpose + b"\x00" + secret.get_secret_value().encode()).digest()


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"fingerprint" + key).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(plaintext: bytes, *, context: str, keys: Sequence[SecretStr] | None = None) -> str:
    """Encrypt ``plaintext``; ``context`` (e.g. "totp") is bound in as associated data."""
    key = _derive((keys or _settings().key_encryption_keys)[0], b"kek")
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext, context.encode())
    return f"{_VERSION}.{_fingerprint(key)}.{_b64(nonce)}.{_b64(sealed)}"


def decrypt(ciphertext: str, *, context: str, keys: Sequence[SecretStr] | None = None) -> bytes:
    try:
        version, fingerprint, nonce, sealed = ciphertext.split(".")
    except ValueError:
        raise DecryptionError("malformed ciphertext") from None
    if version != _VERSION:
        raise DecryptionError("unknown ciphertext version")
    for secret in keys or _settings().key_encryption_keys:
        key = _derive(secret, b"kek")
        if hmac.compare_digest(_fingerprint(key), fingerprint):
            try:
                return AESGCM(key).decrypt(_unb64(nonce), _unb64(sealed), context.encode())
            except Exception:
                raise DecryptionError("ciphertext failed authentication") from None
    raise DecryptionError("no key-encryption key matches this ciphertext")


def keyed_hash(value: str, *, keys: Sequence[SecretStr] | None = None) -> str:
    """HMAC-SHA-256 of ``value`` under the first client-secret key (hex)."""
    key = _derive((keys or _settings().client_secret_hmac_keys)[0], b"hmac")
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def keyed_hash_candidates(value: str, *, keys: Sequence[SecretStr] | None = None) -> list[str]:
    """The hashes of ``value`` under every configured key, newest first (for look-ups)."""
    return [
        hmac.new(_derive(k, b"hmac"), value.encode(), hashlib.sha256).hexdigest()
        for k in (keys or _settings().client_secret_hmac_keys)
    ]


def verify_keyed_hash(value: str, stored: str, *, keys: Sequence[SecretStr] | None = None) -> bool:
    """Constant-time check of ``value`` against a stored keyed hash, under any configured key."""
    return any(hmac.compare_digest(c, stored) for c in keyed_hash_candidates(value, keys=keys))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)
