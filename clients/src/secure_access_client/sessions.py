"""Server-side storage for local sessions, their indexes, and seen Logout Token ``jti`` values.

Sessions live on the server (never in a signed cookie) because a back-channel logout arrives
without the person's browser: the service must find and end their sessions by ``sid`` or
``sub`` (Back-Channel Logout 1.0 §2.7; J06). The cookie holds only a random value with 256 bits
of entropy; stores keep its SHA-256, so a copy of the store yields no usable cookie.

Two stores ship: :class:`FileSessionStore` (the default: a folder, for one machine) and
:class:`RedisSessionStore` (``SECURE_ACCESS_REDIS_URL``: for several instances; needs the
``redis`` extra). A store knows nothing of OpenID Connect; :mod:`.relying_party` decides what
goes in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from secure_access_client.errors import ConfigurationError


def digest(*parts: str) -> str:
    """A store key for a cookie value, a ``sid``, a ``jti``...: hex SHA-256 of the parts."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class SessionStore(Protocol):
    """The interface :class:`~secure_access_client.relying_party.RelyingParty` uses."""

    def load(self, key: str) -> dict[str, Any] | None:
        """The live record under ``key``, or None."""
        ...

    def save(self, key: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` under ``key`` for ``ttl`` seconds (replacing any record)."""
        ...

    def delete(self, key: str) -> None: ...

    def add_to_index(self, index: str, key: str, ttl: int) -> None:
        """Remember that session ``key`` belongs to ``index`` (e.g. a ``sid``).

        ``ttl`` is the longest any session may live, so an index outlives all its members.
        """
        ...

    def index_members(self, index: str) -> list[str]: ...

    def drop_index(self, index: str) -> None: ...

    def remember_once(self, marker: str, ttl: int) -> bool:
        """Atomically record ``marker`` for ``ttl`` seconds; False if it was already there."""
        ...

    def forget(self, marker: str) -> None:
        """Remove ``marker`` (a lock that :meth:`remember_once` took)."""
        ...


class FileSessionStore:
    """Sessions as JSON files in a private folder (mode 0700), written atomically.

    For one machine: several processes of one service may share the folder. Expired files are
    swept every :attr:`SWEEP_EVERY` saves.
    """

    SWEEP_EVERY = 200

    def __init__(self, directory: str, *, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(directory)
        self._clock = clock
        self._saves = 0
        self._lock = threading.Lock()
        for sub in ("sessions", "index", "seen"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.chmod(self.root, 0o700)

    def _path(self, kind: str, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError("store keys are hex digests")
        return self.root / kind / key

    def _write(self, path: Path, payload: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as handle:
                payload = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("expires_at", 0) <= self._clock():
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return payload

    def load(self, key: str) -> dict[str, Any] | None:
        payload = self._read(self._path("sessions", key))
        data = payload.get("data") if payload else None
        return data if isinstance(data, dict) else None

    def save(self, key: str, data: dict[str, Any], ttl: int) -> None:
        self._write(self._path("sessions", key), {"expires_at": self._clock() + ttl, "data": data})
        with self._lock:
            self._saves += 1
            sweep = self._saves % self.SWEEP_EVERY == 0
        if sweep:
            self.sweep()

    def delete(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self._path("sessions", key).unlink()

    def add_to_index(self, index: str, key: str, ttl: int) -> None:
        folder = self._path("index", index)
        folder.mkdir(exist_ok=True, mode=0o700)
        self._path("sessions", key)  # validates the key
        (folder / key).touch()

    def index_members(self, index: str) -> list[str]:
        folder = self._path("index", index)
        try:
            return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        except OSError:
            return []

    def drop_index(self, index: str) -> None:
        folder = self._path("index", index)
        for member in self.index_members(index):
            with contextlib.suppress(OSError):
                (folder / member).unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()

    def remember_once(self, marker: str, ttl: int) -> bool:
        path = self._path("seen", marker)
        payload = json.dumps({"expires_at": self._clock() + ttl})
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self._read(path) is not None:
                return False  # seen, and not yet expired
            return self.remember_once(marker, ttl)  # the old marker expired and was removed
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload)
        return True

    def forget(self, marker: str) -> None:
        with contextlib.suppress(OSError):
            self._path("seen", marker).unlink()

    def sweep(self) -> None:
        """Delete expired sessions and markers, and index entries of sessions that are gone."""
        for kind in ("sessions", "seen"):
            for path in (self.root / kind).iterdir():
                if not path.name.startswith("."):
                    self._read(path)
        live = {p.name for p in (self.root / "sessions").iterdir()}
        for folder in (self.root / "index").iterdir():
            for entry in folder.iterdir():
                if entry.name not in live:
                    with contextlib.suppress(OSError):
                        entry.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty


class RedisSessionStore:
    """Sessions in Redis, shared by every instance of the service.

    Keys: ``<prefix>s:<digest>`` (a JSON string with a TTL), ``<prefix>i:<digest>`` (a set of
    session digests), ``<prefix>j:<digest>`` (a seen ``jti``, ``SET NX EX``).
    """

    def __init__(self, url_or_client: Any, *, prefix: str = "secure-access:") -> None:
        if isinstance(url_or_client, str):
            try:
                import redis
            except ImportError:
                raise ConfigurationError(
                    "SECURE_ACCESS_REDIS_URL needs the redis package: "
                    "pip install 'secure-access-client[redis]'",
                    check="settings",
                ) from None
            self.redis = redis.Redis.from_url(
                url_or_client, socket_connect_timeout=2, socket_timeout=2
            )
        else:
            self.redis = url_or_client
        self.prefix = prefix

    def load(self, key: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.prefix + "s:" + key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def save(self, key: str, data: dict[str, Any], ttl: int) -> None:
        self.redis.set(
            self.prefix + "s:" + key, json.dumps(data, separators=(",", ":")), ex=max(1, ttl)
        )

    def delete(self, key: str) -> None:
        self.redis.delete(self.prefix + "s:" + key)

    def add_to_index(self, index: str, key: str, ttl: int) -> None:
        name = self.prefix + "i:" + index
        pipe = self.redis.pipeline()
        pipe.sadd(name, key)
        # Callers pass the longest any session may live, so the newest member's EXPIRE never
        # cuts an older member's entry short.
        pipe.expire(name, max(1, ttl))
        pipe.execute()

    def index_members(self, index: str) -> list[str]:
        members = self.redis.smembers(self.prefix + "i:" + index)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def drop_index(self, index: str) -> None:
        self.redis.delete(self.prefix + "i:" + index)

    def remember_once(self, marker: str, ttl: int) -> bool:
        return bool(self.redis.set(self.prefix + "j:" + marker, b"1", nx=True, ex=max(1, ttl)))

    def forget(self, marker: str) -> None:
        self.redis.delete(self.prefix + "j:" + marker)


def default_session_dir(client_id: str) -> str:
    """The folder for :class:`FileSessionStore` when ``SECURE_ACCESS_SESSION_DIR`` is unset."""
    slug = digest(client_id)[:16]
    return os.path.join(tempfile.gettempdir(), f"secure-access-sessions-{slug}")
