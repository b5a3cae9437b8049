"""Fixtures for the client library's own tests.

The provider here is :class:`tests.fake_op.FakeOP`, a real HTTP server on loopback that signs
real tokens, scripted per test to behave like a broken or hostile provider (this is how the
OpenID Foundation's RP conformance tests work). The integration tests under ``integration/``
use the real Secure Access provider instead.

``Clock`` drives time on both sides, so expiry is tested by moving the clock, never by waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_op import Clock, FakeOP
from flask import Flask
from rp_helpers import make_rp_app


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than about 30 seconds")


@pytest.fixture(scope="session")
def fake_op_server() -> Iterator[FakeOP]:
    op = FakeOP()
    op.start()
    yield op
    op.stop()


#: The tests' "now" (15 January 2027): both sides use the fake clock, never the real one.
START = 1_800_000_000


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def op(fake_op_server: FakeOP, clock: Clock) -> FakeOP:
    fake_op_server.reset(clock)
    return fake_op_server


@pytest.fixture
def rp(op: FakeOP, tmp_path: Path, clock: Clock) -> Flask:
    return make_rp_app(op, tmp_path, clock)


@pytest.fixture
def browser(rp: Flask) -> Any:
    return rp.test_client()
