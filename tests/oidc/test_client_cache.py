"""G04 with the per-process service cache (idp.services.service_cache, issue 4).

The token endpoint keeps services and their secret hashes in memory. These tests warm that
cache first, then change the registry the ways operators do, and show the very next request
sees the change: a revoked secret, a disabled service, a store that lost the version key
(a Redis restart) and a secret that simply reached its expiry time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import delete, update

from idp.extensions import db
from idp.models.base import utcnow
from idp.models.service import Service, ServiceSecret, ServiceStatus
from idp.services import clients
from idp.services.service_cache import VERSION_KEY
from idp.services.transaction import transaction
from idp.store import get_store
from tests.oidc.conftest import register_machine
from tests.oidc.rp import RP

GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def machine(client) -> RP:
    return register_machine(client)


def token_status(machine: RP) -> int:
    return machine.post("/token", GRANT).status_code


def test_a_revoked_secret_stops_working_at_the_next_request(machine):
    assert token_status(machine) == 200  # the service and its secret are now cached
    service = clients.get_service(machine.client_id)
    old_id = service.secrets[0].id
    with transaction():
        new_secret = clients.add_secret(service, label="rotated")
    # During the overlap both work (CONVENTIONS 3).
    assert token_status(machine) == 200
    assert token_status(RP(machine.client, machine.client_id, new_secret)) == 200
    with transaction():
        clients.revoke_secret(service, old_id)
    refused = machine.post("/token", GRANT)
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"
    assert token_status(RP(machine.client, machine.client_id, new_secret)) == 200


def test_a_disabled_service_gets_no_more_tokens_at_once(machine):
    assert token_status(machine) == 200
    with transaction():
        clients.get_service(machine.client_id).status = ServiceStatus.DISABLED
    assert token_status(machine) == 401


def test_a_store_that_lost_the_version_makes_the_cache_read_again(machine):
    """A change the ORM did not see (hand-written SQL) plus a Redis restart: not served stale."""
    assert token_status(machine) == 200
    with transaction():
        db.session.execute(delete(ServiceSecret))  # behind the cache's back
    get_store().delete(VERSION_KEY)  # what a store restart looks like
    assert token_status(machine) == 401


def test_a_secret_past_its_expiry_is_refused_without_any_invalidation(machine):
    assert token_status(machine) == 200
    expires = utcnow() + timedelta(hours=1)
    with transaction():
        # Core, so the cache is not told: expiry alone must be enough.
        db.session.execute(update(ServiceSecret).values(expires_at=expires))
    get_store().delete(VERSION_KEY)
    assert token_status(machine) == 200  # re-read, and cached with its expiry time
    with time_machine.travel(expires + timedelta(minutes=1)):
        assert token_status(machine) == 401


@pytest.fixture
def shared_window(app) -> Iterator[float]:
    """Requests in this process share one read of the versions for 1 s, as production
    shares them for ``cache_version_window_seconds`` (tests default to 0)."""
    shared = app.extensions["store_versions"]
    shared.window, shared._values = 1.0, None
    yield shared.window
    shared.window, shared._values = 0.0, None


def disable_elsewhere(client_id: str) -> None:
    """What another process (the console, the CLI) does: commit, then publish a version."""
    with transaction():
        db.session.execute(
            update(Service)
            .where(Service.client_id == client_id)
            .values(status=ServiceStatus.DISABLED)
        )
    get_store().set(VERSION_KEY, secrets.token_hex(16))  # Core: this process is not told


def test_a_change_made_in_another_process_is_seen_within_the_window(machine, shared_window):
    assert token_status(machine) == 200  # cached, and the versions read for 1 s
    disable_elsewhere(machine.client_id)
    # The next request reuses the versions read a moment ago: no store round trip, so
    # this process still answers from its cache (the price of the window, bounded) ...
    assert token_status(machine) == 200
    # ... and once the window has passed it reads them again and refuses.
    deadline = time.monotonic() + shared_window + 0.2
    while token_status(machine) == 200:
        assert time.monotonic() < deadline, "a disabled service still gets tokens"
        time.sleep(0.05)
    assert token_status(machine) == 401


def test_a_change_made_in_this_process_is_seen_at_once_whatever_the_window(machine, shared_window):
    assert token_status(machine) == 200
    with transaction():  # through the ORM: this process publishes and forgets its versions
        clients.get_service(machine.client_id).status = ServiceStatus.DISABLED
    assert token_status(machine) == 401
