"""Registered services (and their secret hashes), cached in each process for the OIDC endpoints.

Why (issue 4, token endpoint throughput): every token request looked its service up twice in
PostgreSQL, once to find the client and once more with its secret hashes to authenticate it,
about a millisecond of CPU per grant for rows that change a few times a year.

How, and how stale it can be (G04: a revoked or expired secret must stop working promptly):

- Each process keeps the service rows it has seen, with their secrets, as *detached* ORM
  objects that are never attached to a session. A request gets its own copy in its own session
  through ``Session.merge(..., load=False)`` (SQLAlchemy's documented way to use a cache:
  no SQL, and nothing the request does can change the cached object).
- Any commit that adds, changes or deletes a :class:`Service`, :class:`ServiceSecret` or
  :class:`ServiceRole` through the ORM (registering, rotating or revoking a secret, disabling a
  service, editing it in the console) writes a new random value under :data:`VERSION_KEY` in
  the store, *after* the commit. Lookups read that value and drop the whole cache when it
  differs from the one the cache was filled under. The process that made the change sees it
  at its next request; every other process within ``cache_version_window_seconds`` (0.1 s
  by default: a process's requests share one read of the versions,
  :class:`~idp.store.SharedVersions`).
- Backstops: entries older than :data:`MAX_AGE_SECONDS` are re-read anyway (a change made
  behind the ORM's back, such as hand-written SQL, or a version that could not be published
  because the store was down), and while the store cannot be read nothing is served from the
  cache at all. Expired secrets need no invalidation: expiry is checked on every use.

The version is read before the rows, so a change committed in between makes the next request
see a newer version and re-read: the cache can never keep a stale row under a fresh version.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session, joinedload

from idp.extensions import db
from idp.models.service import Service, ServiceRole, ServiceSecret, ServiceStatus
from idp.store import claim_version, publish_version, read_version, register_version_key

log = logging.getLogger(__name__)

#: The store key whose value changes whenever a service, secret or role changes.
VERSION_KEY: Final = "idp:oidc:services:version"
#: An entry is re-read at least this often even if the version never changes.
MAX_AGE_SECONDS: Final = 60.0
register_version_key(VERSION_KEY)  # read with the others, once per request

_WATCHED: Final = (Service, ServiceSecret, ServiceRole)
_CHANGED: Final = "idp_services_changed"


class ServiceCache:
    """Active services by ``client_id`` (or None for "no such active service"), per process."""

    def __init__(self, *, max_age: float = MAX_AGE_SECONDS) -> None:
        self._max_age = max_age
        self._lock = threading.Lock()
        self._version: str | None = None
        self._entries: dict[str, tuple[float, Service | None]] = {}

    def find_active(self, client_id: str, *, attach: bool = True) -> Service | None:
        """The active service registered as ``client_id``, with its secrets, in this session.

        ``attach=False`` returns the cached copy itself, detached and shared by every thread of
        the process, for requests that only read its columns and secrets (the token endpoint
        and UserInfo: merging a copy into the session was about a fourteenth of their CPU,
        issue 4). Such a caller must not assign it to a relationship or touch ``roles``.
        """
        version = _read_version()
        now = time.monotonic()
        if version is None:
            return _load(client_id)  # cannot tell whether the cache is current: do not use it
        entry = self._entries.get(client_id) if version == self._version else None
        if entry is None or now - entry[0] >= self._max_age:
            service = _load(client_id)
            with self._lock:
                if version != self._version:
                    self._entries = {}
                    self._version = version
                self._entries[client_id] = (now, _detached_copy(service))
            return service
        cached = entry[1]
        if cached is None or not attach:
            return cached
        return db.session.merge(cached, load=False)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._version = None


def _load(client_id: str) -> Service | None:
    """One round trip: the active service and all its secret hashes."""
    return (
        db.session.scalars(
            select(Service)
            .where(Service.client_id == client_id, Service.status == ServiceStatus.ACTIVE)
            .options(joinedload(Service.secrets))
        )
        .unique()
        .one_or_none()
    )


def _detached_copy(service: Service | None) -> Service | None:
    """A copy of ``service`` (and its loaded secrets) belonging to no session."""
    if service is None:
        return None
    scratch = Session()  # unbound: merge(load=False) never queries
    try:
        copy = scratch.merge(service, load=False)
        scratch.expunge_all()
    finally:
        scratch.close()
    return copy


def _read_version() -> str | None:
    version = read_version(VERSION_KEY)  # with the key ring's, in one round trip per request
    return version if version is not None else claim_version(VERSION_KEY)


def services_changed() -> None:
    """Tell every process's cache that services changed (called after commit)."""
    if not publish_version(VERSION_KEY):
        log.warning(
            "could not publish the services version; caches refresh within %ss",
            MAX_AGE_SECONDS,
        )


def get_service_cache() -> ServiceCache:
    """The current app's cache."""
    cache: ServiceCache | None = current_app.extensions.get("oidc_service_cache")
    if cache is None:
        cache = current_app.extensions.setdefault("oidc_service_cache", ServiceCache())
    return cache


# -- invalidation: any ORM change to a watched row, published once its commit is done -----------


@event.listens_for(Session, "before_flush")
def _note_changes(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_CHANGED):
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, _WATCHED):
            session.info[_CHANGED] = True
            return


@event.listens_for(Session, "after_commit")
def _publish_changes(session: Session) -> None:
    # A flag left by a rolled-back change only costs one extra refresh at the next commit.
    if session.info.pop(_CHANGED, False):
        services_changed()
