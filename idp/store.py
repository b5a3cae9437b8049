"""The short-lived state store: Redis, or an in-process stand-in with the same API.

Everything that may expire lives here (SSO sessions, codes, counters, queues). The interface
*is* the redis-py client API, so code written against it runs unchanged on real Redis and on
fakeredis (with Lua, so atomic scripts work on both). Losing this store logs people out; it
never loses an account or an audit record.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import fakeredis
import redis
from flask import Flask, current_app, has_request_context, request

log = logging.getLogger(__name__)

Store = redis.Redis


def connect_store(url: str | None) -> Store:
    """Return a client for ``url``, or the in-process store when no URL is configured."""
    if url:
        # Short timeouts: a stalled Redis must turn into a clear 503, not a hung worker.
        # redis-py reconnects on the next command, so a Redis restart needs no idp restart.
        return redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=15
        )
    log.warning(
        "IDP_REDIS_URL is not set: using an in-process store. It is for one process on one "
        "machine only; sessions and counters are lost on restart and not shared."
    )
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def init_app(app: Flask, url: str | None, version_window: float = 0.0) -> None:
    app.extensions["store"] = connect_store(url)
    app.extensions["store_versions"] = SharedVersions(version_window)


def get_store() -> Store:
    """The current app's store."""
    store: Store = current_app.extensions["store"]
    return store


#: Keys whose value says "this table changed" to a per-process cache (signing keys, services).
_VERSION_KEYS: list[str] = []
_ENVIRON_KEY = "idp.store_versions"
#: The WSGI environ of a request served outside Flask (:mod:`idp.oidc.machine_lane`).
_LANE_ENVIRON: ContextVar[MutableMapping[str, Any] | None] = ContextVar(
    "idp_lane_environ", default=None
)


@contextmanager
def request_scope(environ: MutableMapping[str, Any]) -> Iterator[None]:
    """Treat ``environ`` as the current request for :func:`read_version`, outside Flask."""
    token = _LANE_ENVIRON.set(environ)
    try:
        yield
    finally:
        _LANE_ENVIRON.reset(token)


def _request_environ() -> MutableMapping[str, Any] | None:
    if has_request_context():
        environ: MutableMapping[str, Any] = request.environ
        return environ
    return _LANE_ENVIRON.get()


def register_version_key(key: str) -> None:
    """Declare a cache-version key, so :func:`read_version` fetches it with the others."""
    if key not in _VERSION_KEYS:
        _VERSION_KEYS.append(key)


class SharedVersions:
    """The cache versions one process read last, reused by its requests for ``window`` s.

    Why (issue 4): the ``MGET`` of the versions was a fifth of a client_credentials grant's
    CPU, paid by every request for values that change a few times a year. With a window of
    0.1 s a busy process asks about ten times a second instead of thousands. The cost is
    staleness, and it is bounded: a change made in another process (a secret revoked in the
    console, a key rotated by the CLI) is seen here within the window; the process that made
    it forgets these values when it publishes (:func:`publish_version`), so it sees its own
    change at once. Values that could not be read (store down) are never reused.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._values: tuple[float, dict[str, str | None]] | None = None

    def current(self) -> dict[str, str | None]:
        keys = list(_VERSION_KEYS)
        held = self._values
        now = time.monotonic()
        if held is not None and now - held[0] < self.window and held[1].keys() >= set(keys):
            return held[1]
        try:
            values = get_store().mget(keys)
        except redis.RedisError:
            return dict.fromkeys(keys)
        versions = {k: _decode(v) for k, v in zip(keys, values, strict=True)}
        # A missing version (a store restart) is claimed by the next request: not reused.
        if self.window > 0 and None not in versions.values():
            self._values = (now, versions)  # one tuple: threads see old or new, never half
        return versions

    def forget(self) -> None:
        self._values = None


def read_version(key: str) -> str | None:
    """The value of a cache-version key, or None if it is unset or the store is unreachable.

    Within a request every registered version is read in one ``MGET``, once: a token request
    consults both the key ring and the service cache, sometimes twice (issue 4: each store
    round trip is about a tenth of a grant's CPU), and requests in the same process within
    ``cache_version_window_seconds`` share one read (:class:`SharedVersions`). Outside a
    request (the worker, the CLI), each call reads the store afresh, because an app context
    there can live for hours.
    """
    register_version_key(key)
    environ = _request_environ()
    if environ is None:
        return _decode(_get(key))
    # Kept in the WSGI environ: strictly one request's, even where an app context (and so
    # ``g``) outlives requests, as in tests that push one.
    versions: dict[str, str | None] | None = environ.get(_ENVIRON_KEY)
    if versions is None or key not in versions:
        versions = _shared_versions().current()
        environ[_ENVIRON_KEY] = versions
    return versions[key]


def _shared_versions() -> SharedVersions:
    shared: SharedVersions = current_app.extensions["store_versions"]
    return shared


def claim_version(key: str) -> str | None:
    """After a store restart a version key is gone: set one, unless another process just did.

    Returns the version to trust now, or None (not trusted this time: the next read takes
    whatever is there).
    """
    token = secrets.token_hex(16)
    try:
        if get_store().set(key, token, nx=True):
            return token
    except redis.RedisError:
        pass
    return None


def publish_version(key: str) -> bool:
    """Say "this table changed" to every process's cache (call after the commit).

    False when the store could not be written: the caches then catch up at their maximum age.
    """
    forget_versions()
    try:
        get_store().set(key, secrets.token_hex(16))
    except redis.RedisError:
        return False
    finally:
        # After the write: a thread that re-read just before it must not keep the old value.
        _shared_versions().forget()
    return True


def forget_versions() -> None:
    """Make the next :func:`read_version` in this request read the store again."""
    environ = _request_environ()
    if environ is not None:
        environ.pop(_ENVIRON_KEY, None)


def _get(key: str) -> bytes | str | None:
    try:
        value: bytes | str | None = get_store().get(key)
    except redis.RedisError:
        return None
    return value


def _decode(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
