"""Failure counters and rate limits: B01, B02, B03, B06, B07 and C01 of the security checklist.

Time moves through an injected clock (and once through time_machine); no test sleeps. The
parallel tests run against whichever store the back end provides: real Redis with
IDP_TEST_BACKEND=server, fakeredis (which serialises commands and scripts) otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import time_machine
from flask import Flask

from idp.config import Settings
from idp.services.throttle import (
    Decision,
    Kind,
    Outcome,
    RateLimiter,
    Throttle,
    account_key_for,
    get_rate_limiter,
    get_throttle,
    init_app,
    ip_key,
)
from idp.store import get_store

ALICE_SUB = "6f1c2b9e-0000-4000-8000-00000000a11c"
MINUTE = 60


class FakeClock:
    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(app: Flask, clock: FakeClock) -> Throttle:
    return Throttle(get_store(), max_failures=10, window_seconds=15 * MINUTE, clock=clock)


@pytest.fixture
def limiter(app: Flask, clock: FakeClock) -> RateLimiter:
    return RateLimiter(get_store(), clock=clock)


class Verifier:
    """Stands in for a credential check and counts how often it was really evaluated."""

    def __init__(self, correct: bool = False) -> None:
        self.correct = correct
        self.evaluated = 0

    def __call__(self) -> bool:
        self.evaluated += 1
        return self.correct


def attempt(
    throttle: Throttle,
    clock: FakeClock,
    key: str,
    kind: str,
    verify: Callable[[], bool],
) -> Decision:
    """One sign-in step as a view does it, waiting out any progressive delay like a person."""
    decision = throttle.check(key, kind)
    if decision.outcome is Outcome.DELAYED:
        clock.advance(decision.retry_after)
        decision = throttle.check(key, kind)
    if not decision.allowed:
        return decision
    if verify():
        throttle.record_success(key, kind)
        return decision
    return throttle.record_failure(key, kind)


# -- B01: the cap, the lock and the delay ------------------------------------------------------


def test_b01_eleventh_attempt_is_refused_without_evaluation(
    throttle: Throttle, clock: FakeClock
) -> None:
    key = account_key_for("alice@school.uk", sub=ALICE_SUB)
    wrong = Verifier()
    started = clock.now
    decisions = [attempt(throttle, clock, key, Kind.PASSWORD, wrong) for _ in range(10)]
    assert clock.now - started < 5 * MINUTE  # 10 guesses fit in 5 minutes, as in the test
    assert wrong.evaluated == 10
    assert [d.newly_locked for d in decisions] == [False] * 9 + [True]  # audited once

    eleventh = throttle.check(key, Kind.PASSWORD)
    assert eleventh.outcome is Outcome.LOCKED
    assert not eleventh.allowed
    assert 14 * MINUTE < eleventh.retry_after <= 15 * MINUTE
    right = Verifier(correct=True)
    assert not attempt(throttle, clock, key, Kind.PASSWORD, right).allowed
    assert right.evaluated == 0  # even the right password is not looked at while locked
    assert throttle.is_locked(key)


def test_b01_the_lock_lasts_one_window(throttle: Throttle, clock: FakeClock) -> None:
    key = account_key_for("x", sub=ALICE_SUB)
    for _ in range(10):
        attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    clock.advance(15 * MINUTE - 1)
    assert throttle.check(key, Kind.PASSWORD).outcome is Outcome.LOCKED
    for _ in range(20):  # refusals are not failures: hammering does not extend the lock
        throttle.check(key, Kind.PASSWORD)
    clock.advance(1)
    assert not throttle.is_locked(key)
    right = Verifier(correct=True)
    assert attempt(throttle, clock, key, Kind.PASSWORD, right).allowed
    assert right.evaluated == 1
    assert throttle.lock_state(key) == {}


def test_b01_also_password_success_does_not_reset_totp(
    throttle: Throttle, clock: FakeClock
) -> None:
    key = account_key_for("alice@school.uk", sub=ALICE_SUB)
    for _ in range(9):
        attempt(throttle, clock, key, Kind.TOTP, Verifier())
    assert attempt(throttle, clock, key, Kind.PASSWORD, Verifier(correct=True)).allowed
    tenth = attempt(throttle, clock, key, Kind.TOTP, Verifier())
    assert tenth.newly_locked
    bad_totp = Verifier()
    eleventh = attempt(throttle, clock, key, Kind.TOTP, bad_totp)
    assert eleventh.outcome is Outcome.LOCKED
    assert bad_totp.evaluated == 0
    state = throttle.lock_state(key)
    assert state["totp"].locked
    assert "password" not in state  # the password's own counter was cleared by its success


def test_b01_success_resets_only_the_kind_used(throttle: Throttle, clock: FakeClock) -> None:
    key = account_key_for("x", sub=ALICE_SUB)
    for _ in range(9):
        attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    attempt(throttle, clock, key, Kind.RECOVERY_CODE, Verifier())
    attempt(throttle, clock, key, Kind.PASSWORD, Verifier(correct=True))
    assert set(throttle.lock_state(key)) == {"recovery_code"}
    wrong = Verifier()
    for _ in range(9):
        assert not attempt(throttle, clock, key, Kind.PASSWORD, wrong).locked
    assert wrong.evaluated == 9  # a fresh count of ten after the success


def test_b01_progressive_delay_grows_and_is_capped(app: Flask, clock: FakeClock) -> None:
    throttle = Throttle(
        get_store(),
        max_failures=50,
        window_seconds=24 * 3600,
        clock=clock,
        free_attempts=5,
        max_delay_seconds=60,
    )
    key = account_key_for("x", sub=ALICE_SUB)
    for _ in range(5):
        assert throttle.check(key, Kind.PASSWORD).allowed
        throttle.record_failure(key, Kind.PASSWORD)
    waits = []
    for _ in range(8):
        decision = throttle.check(key, Kind.PASSWORD)
        assert decision.outcome is Outcome.DELAYED
        assert not decision.locked
        waits.append(decision.retry_after)
        clock.advance(decision.retry_after - 0.5)
        assert throttle.check(key, Kind.PASSWORD).outcome is Outcome.DELAYED  # not yet
        clock.advance(0.5)
        assert throttle.check(key, Kind.PASSWORD).allowed
        throttle.record_failure(key, Kind.PASSWORD)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]


def test_b01_nist_hard_cap_locks_until_unlocked(app: Flask, clock: FakeClock) -> None:
    throttle = Throttle(
        get_store(),
        max_failures=10,
        window_seconds=15 * MINUTE,
        clock=clock,
        free_attempts=100,
        hard_limit=12,
    )
    key = account_key_for("x", sub=ALICE_SUB)
    for _ in range(10):
        attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    clock.advance(15 * MINUTE)
    attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    last = attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    assert last.outcome is Outcome.LOCKED_UNTIL_UNLOCKED
    assert last.newly_locked
    clock.advance(7 * 24 * 3600)
    decision = throttle.check(key, Kind.PASSWORD)
    assert decision.outcome is Outcome.LOCKED_UNTIL_UNLOCKED
    assert decision.locked
    state = throttle.lock_state(key)["password"]
    assert (state.until_unlocked, state.locked_until, state.consecutive) == (True, None, 12)
    throttle.unlock(key)
    assert throttle.check(key, Kind.PASSWORD).allowed


def test_record_failure_without_check_still_counts(throttle: Throttle, clock: FakeClock) -> None:
    key = account_key_for("x", sub=ALICE_SUB)
    decisions = [throttle.record_failure(key, Kind.RESET_TOKEN) for _ in range(10)]
    assert [d.newly_locked for d in decisions] == [False] * 9 + [True]
    assert throttle.record_failure(key, Kind.RESET_TOKEN).newly_locked is False
    assert throttle.check(key, Kind.RESET_TOKEN).outcome is Outcome.LOCKED
    assert throttle.lock_state(key)["reset_token"].failures == 10


def test_unknown_kinds_are_refused(throttle: Throttle) -> None:
    with pytest.raises(ValueError, match="kind"):
        throttle.check("sub:x", "Password:1")


# -- B02: one counter per account -------------------------------------------------------------


def test_b02_every_spelling_shares_one_counter(throttle: Throttle, clock: FakeClock) -> None:
    # What the sign-in view does: resolve whatever was typed to the account, then key by sub.
    accounts = {"alice": ALICE_SUB, "alice@school.uk": ALICE_SUB}

    def key_for(typed: str) -> str:
        canonical = typed.strip().lower()
        return account_key_for(typed, sub=accounts.get(canonical))

    spellings = ["Alice", "alice", "alice@school.uk", "ALICE@School.UK", " alice@school.uk "]
    assert len({key_for(s) for s in spellings}) == 1
    for i in range(10):
        attempt(throttle, clock, key_for(spellings[i % len(spellings)]), Kind.PASSWORD, Verifier())
    for spelling in spellings:
        assert throttle.check(key_for(spelling), Kind.PASSWORD).outcome is Outcome.LOCKED


def test_b02_unknown_accounts_are_canonicalised_and_lock_alike(
    throttle: Throttle, clock: FakeClock
) -> None:
    key = account_key_for("Nobody@School.UK")
    assert key == account_key_for("  nobody@school.uk")
    assert "nobody" not in key  # the address itself is not kept in Redis
    assert key != account_key_for("nobody@school.uk", sub=ALICE_SUB)
    assert account_key_for("not an email") == account_key_for("NOT AN EMAIL ")
    decisions = [attempt(throttle, clock, key, Kind.PASSWORD, Verifier()) for _ in range(10)]
    assert decisions[-1].newly_locked
    assert throttle.check(key, Kind.PASSWORD).outcome is Outcome.LOCKED


# -- B03: atomic under concurrency -------------------------------------------------------------


def run_in_parallel(count: int, work: Callable[[], None]) -> None:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # surfaced below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_b03_fifty_parallel_attempts_let_at_most_ten_through(app: Flask, clock: FakeClock) -> None:
    # No progressive delay here, so exactly the cap gets through, not fewer.
    throttle = Throttle(
        get_store(), max_failures=10, window_seconds=15 * MINUTE, clock=clock, free_attempts=10
    )
    key = account_key_for("alice@school.uk", sub=ALICE_SUB)
    lock = threading.Lock()
    evaluated: list[int] = []
    newly_locked: list[bool] = []

    def one_attempt() -> None:
        if throttle.check(key, Kind.PASSWORD).allowed:
            with lock:
                evaluated.append(1)
            result = throttle.record_failure(key, Kind.PASSWORD)
            with lock:
                newly_locked.append(result.newly_locked)

    run_in_parallel(50, one_attempt)
    assert len(evaluated) == 10
    assert newly_locked.count(True) == 1
    assert throttle.check(key, Kind.PASSWORD).outcome is Outcome.LOCKED


def test_b03_fifty_parallel_failures_announce_the_lock_once(
    throttle: Throttle, clock: FakeClock
) -> None:
    key = account_key_for("x", sub=ALICE_SUB)
    results: list[Decision] = []
    run_in_parallel(50, lambda: results.append(throttle.record_failure(key, Kind.TOTP)))
    assert [d.newly_locked for d in results].count(True) == 1
    assert throttle.lock_state(key)["totp"].failures == 10


# -- B07: a lock is never permanent denial of service ---------------------------------------------


def test_b07_unlock_after_lock(throttle: Throttle, clock: FakeClock) -> None:
    key = account_key_for("x", sub=ALICE_SUB)
    for kind in (Kind.PASSWORD, Kind.TOTP):
        for _ in range(10):
            attempt(throttle, clock, key, kind, Verifier())
    assert throttle.is_locked(key)
    assert set(throttle.lock_state(key)) == {"password", "totp"}
    assert throttle.unlock(key) is True  # e.g. a completed email reset, or the helpdesk
    assert not throttle.is_locked(key)
    assert throttle.lock_state(key) == {}
    right = Verifier(correct=True)
    assert attempt(throttle, clock, key, Kind.PASSWORD, right).allowed
    assert right.evaluated == 1
    assert throttle.unlock(key) is False


def test_lock_state_for_the_helpdesk(throttle: Throttle, clock: FakeClock) -> None:
    key = account_key_for("x", sub=ALICE_SUB)
    for _ in range(3):
        attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    state = throttle.lock_state(key)["password"]
    assert (state.failures, state.consecutive, state.locked) == (3, 3, False)
    assert state.last_attempt == int(clock.now)
    for _ in range(7):
        attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    state = throttle.lock_state(key)["password"]
    assert state.locked
    assert state.locked_until == int(clock.now) + 15 * MINUTE
    assert not state.until_unlocked
    clock.advance(15 * MINUTE)
    state = throttle.lock_state(key)["password"]
    assert (state.failures, state.consecutive, state.locked) == (0, 10, False)


def test_failures_outside_the_window_are_forgotten(throttle: Throttle, clock: FakeClock) -> None:
    key = account_key_for("x", sub=ALICE_SUB)
    for _ in range(5):
        attempt(throttle, clock, key, Kind.PASSWORD, Verifier())
    clock.advance(15 * MINUTE)
    for _ in range(5):
        assert not attempt(throttle, clock, key, Kind.PASSWORD, Verifier()).locked
    assert not throttle.is_locked(key)
    assert throttle.lock_state(key)["password"].failures == 5


def test_the_lock_expires_on_the_wall_clock_by_default(app: Flask) -> None:
    with time_machine.travel(1_750_000_000, tick=False) as traveller:
        throttle = Throttle(
            get_store(), max_failures=10, window_seconds=15 * MINUTE, free_attempts=10
        )
        for _ in range(10):
            throttle.check("sub:x", Kind.PASSWORD)
            throttle.record_failure("sub:x", Kind.PASSWORD)
        assert throttle.check("sub:x", Kind.PASSWORD).locked
        traveller.shift(15 * MINUTE)
        assert throttle.check("sub:x", Kind.PASSWORD).allowed


# -- C01 and B06: rate limits -----------------------------------------------------------------


def test_c01_sixth_reset_request_in_15_minutes_is_refused(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    key = "forgot:" + account_key_for("alice@school.uk")
    for _ in range(5):
        assert limiter.hit(key, 5, 15 * MINUTE).allowed
        clock.advance(MINUTE)
    clock.advance(9 * MINUTE)  # 14 minutes after the first
    sixth = limiter.hit(key, 5, 15 * MINUTE)
    assert sixth.outcome is Outcome.LIMITED
    assert sixth.retry_after == MINUTE
    assert sixth.count == 5
    clock.advance(MINUTE)  # the first request leaves the window
    assert limiter.hit(key, 5, 15 * MINUTE).allowed
    assert not limiter.hit(key, 5, 15 * MINUTE).allowed


def test_rate_limit_clears_after_the_window(limiter: RateLimiter, clock: FakeClock) -> None:
    key = "signin:" + ip_key("198.51.100.7")
    decisions = [limiter.hit(key, 3, 60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.count for d in decisions] == [1, 2, 3, 3, 3]
    clock.advance(59.9)
    assert not limiter.hit(key, 3, 60).allowed
    clock.advance(0.1)
    assert [limiter.hit(key, 3, 60).allowed for _ in range(4)] == [True, True, True, False]
    limiter.reset(key)
    assert limiter.hit(key, 3, 60).allowed


def test_rate_limits_are_separate_per_key(limiter: RateLimiter) -> None:
    assert limiter.hit("forgot:a", 1, 900).allowed
    assert not limiter.hit("forgot:a", 1, 900).allowed
    assert limiter.hit("forgot:b", 1, 900).allowed
    with pytest.raises(ValueError, match="never skip"):
        limiter.hit("", 1, 900)


def test_b06_unparsable_or_rotating_addresses_are_still_limited(
    limiter: RateLimiter,
) -> None:
    assert ip_key("a") == ip_key("") == ip_key(None) == ip_key("1.2.3.4, 5.6.7.8")
    assert ip_key("2001:db8:1:2::1") == ip_key("2001:db8:1:2:ffff::9")  # one /64
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:192.0.2.1") == ip_key("192.0.2.1")
    garbage = ["a", "", "not-an-ip", "1.2.3", "999.1.1.1"]
    decisions = [limiter.hit("signin:" + ip_key(value), 3, 300) for value in garbage]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]


# -- wiring ----------------------------------------------------------------------------------


def test_init_app_reads_the_lockout_settings(app: Flask, settings: Settings) -> None:
    other = Flask(__name__)
    other.extensions["store"] = get_store()
    init_app(other, settings)
    with other.app_context():
        throttle = get_throttle()
        assert isinstance(get_rate_limiter(), RateLimiter)
    assert (throttle.max_failures, throttle.window_seconds) == (
        settings.login_max_failures,
        settings.login_failure_window_seconds,
    )
