"""OIDC fixtures: a signed-up person and a registered relying service.

The relying party (:mod:`tests.oidc.rp`) talks to the real provider through the test client.
The browser tests of the code flow are in ``tests/e2e/test_oidc_code_flow.py``, where the
session-wide browser lives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request, request_started
from flask.testing import FlaskClient

from idp.models import User
from tests.factories import make_user
from tests.oidc.rp import RP

EMAIL = "ada@school.example"


def register_machine(
    client: FlaskClient, scopes: tuple[str, ...] = ("openid",), **options: Any
) -> RP:
    """A service that only uses the client_credentials grant (a nightly export job)."""
    options.setdefault("client_id", "nightly-export")
    return RP.register(
        client, redirect_uris=(), grant_types=("client_credentials",), scopes=scopes, **options
    )


@pytest.fixture
def flask_requests(app: Flask) -> Iterator[list[str]]:
    """Paths of the requests that reached Flask: the machine lane's answers never do."""
    seen: list[str] = []

    def note(sender: Flask, **_: Any) -> None:
        seen.append(request.path)

    request_started.connect(note, app)
    yield seen
    request_started.disconnect(note, app)


@pytest.fixture
def user() -> User:
    return make_user(email=EMAIL)


@pytest.fixture
def rp(client: FlaskClient) -> RP:
    return RP.register(client)


def token_requests_at_once(
    app: Flask, data: dict[str, str], headers: dict[str, str], count: int = 4
) -> list[tuple[int, Any]]:
    """``count`` identical token requests released together from their own threads (races
    on single-use codes and refresh tokens); each result's status and JSON body."""
    barrier = threading.Barrier(count)
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        response = app.test_client().post("/token", data=data, headers=headers)
        with lock:
            results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == count
    return results
