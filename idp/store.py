"""The short-lived state store: Redis, or an in-process stand-in with the same API.

Everything that may expire lives here (SSO sessions, codes, counters, queues). The interface
*is* the redis-py client API, so code written against it runs unchanged on real Redis and on
fakeredis (with Lua, so atomic scripts work on both). Losing this store logs people out; it
never loses an account or an audit record.
"""

from __future__ import annotations

import logging

import fakeredis
import redis
from flask import Flask, current_app

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


def init_app(app: Flask, url: str | None) -> None:
    app.extensions["store"] = connect_store(url)


def get_store() -> Store:
    """The current app's store."""
    store: Store = current_app.extensions["store"]
    return store
