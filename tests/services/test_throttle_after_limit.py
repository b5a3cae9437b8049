"""B01, B03, B06: the sign-in's per-IP limit and per-account check in one atomic script.

``Throttle.check_after_limit`` replaced two store round trips on the sign-in POST (issue 3).
It must behave exactly like ``RateLimiter.hit`` followed by ``Throttle.check``: a refused IP
is not counted against the account, and a locked account still counts against the IP.
"""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from idp.services.throttle import Kind, Outcome, RateLimiter, Throttle, account_key_for, ip_key
from idp.store import get_store
from tests.clock import Clock

MINUTE = 60
ACCOUNT = account_key_for("ada@school.example", sub="6f1c2b9e-0000-4000-8000-0000000000ad")
IP = "signin-" + ip_key("198.51.100.7")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(app: Flask, clock: Clock) -> Throttle:
    return Throttle(get_store(), max_failures=10, window_seconds=15 * MINUTE, clock=clock)


def attempt(throttle: Throttle, account: str = ACCOUNT, ip: str = IP, limit: int = 3):
    return throttle.check_after_limit(
        account, Kind.PASSWORD, limit_key=ip, limit=limit, window_seconds=15 * MINUTE
    )


def test_b06_the_ip_limit_refuses_without_touching_the_account(throttle: Throttle) -> None:
    outcomes = [attempt(throttle).outcome for _ in range(4)]
    assert outcomes == [Outcome.ALLOWED] * 3 + [Outcome.LIMITED]
    refused = attempt(throttle)
    assert refused.retry_after == 15 * MINUTE
    # Three attempts reached the account (each counted until resolved); the refused ones not.
    assert throttle.lock_state(ACCOUNT)["password"].failures == 3


def test_b01_a_locked_account_is_refused_and_still_counts_against_the_ip(
    throttle: Throttle,
) -> None:
    for _ in range(10):
        throttle.record_failure(ACCOUNT, Kind.PASSWORD)
    locked = attempt(throttle, limit=100)
    assert locked.outcome is Outcome.LOCKED
    limiter = RateLimiter(get_store(), clock=throttle.clock)
    assert limiter.hit(IP, 100, 15 * MINUTE).count == 2  # the locked attempt, and this one


def test_b01_success_clears_only_the_attempt_that_check_counted(throttle: Throttle) -> None:
    assert attempt(throttle).allowed
    batch = get_store().pipeline(transaction=False)
    throttle.record_success(ACCOUNT, Kind.PASSWORD, batch=batch)
    assert throttle.lock_state(ACCOUNT)["password"].failures == 1  # not until it is sent
    batch.execute()
    assert "password" not in throttle.lock_state(ACCOUNT)


def test_b03_concurrent_attempts_let_exactly_the_limit_through(app: Flask, clock: Clock) -> None:
    # No progressive delay here, so exactly the account's cap gets through, not fewer.
    throttle = Throttle(
        get_store(), max_failures=10, window_seconds=15 * MINUTE, clock=clock, free_attempts=10
    )
    results: list[Outcome] = []
    lock = threading.Lock()

    def run() -> None:
        decision = attempt(throttle, limit=100)
        with lock:
            results.append(decision.outcome)

    threads = [threading.Thread(target=run) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(Outcome.ALLOWED) == 10  # the account's limit, not one more


def test_b05_the_read_along_key_comes_back_whatever_the_verdict(throttle: Throttle) -> None:
    # Issue 3: the sign-in POST reads its pending sign-in in this round trip. The value comes
    # back for allowed, locked and IP-limited attempts alike, and a missing key is None.
    get_store().set("signin:abc", "pending")

    def read(limit: int, key: str = "signin:abc") -> tuple[Outcome, object]:
        decision, value = throttle.check_after_limit_reading(
            ACCOUNT,
            Kind.PASSWORD,
            limit_key=IP,
            limit=limit,
            window_seconds=15 * MINUTE,
            read_key=key,
        )
        return decision.outcome, value

    assert read(100) == (Outcome.ALLOWED, b"pending")
    assert read(100, key="signin:missing") == (Outcome.ALLOWED, None)
    for _ in range(10):
        throttle.record_failure(ACCOUNT, Kind.PASSWORD)
    assert read(100) == (Outcome.LOCKED, b"pending")
    assert read(1) == (Outcome.LIMITED, b"pending")
