"""SSO sessions in Redis: E01, E02, E04 and E06 of the security checklist.

Time moves through an injected clock (and once through time_machine); no test sleeps. The
memory test needs MEMORY USAGE, so it runs on real Redis only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading

import fakeredis
import pytest
import time_machine
from flask import Flask

from idp.config import Settings
from idp.services.sso_sessions import (
    EXPIRED_GRACE_SECONDS,
    INDEX_PRUNE_AT,
    SESSION_PREFIX,
    USER_AGENT_MAX,
    USER_INDEX_PREFIX,
    SessionNotFound,
    SsoSession,
    SsoSessions,
    get_sso_sessions,
    init_app,
)
from idp.store import get_store

IDLE = 3600  # E04: at most 1 h idle (NIST AAL2)
ABSOLUTE = 12 * 3600  # our absolute lifetime (E04 allows up to 24 h at AAL2)
MINUTE = 60
ALICE = "6f1c2b9e-0000-4000-8000-00000000a11c"
BOB = "6f1c2b9e-0000-4000-8000-000000000b0b"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"
)


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
def sessions(app: Flask, clock: FakeClock) -> SsoSessions:
    return SsoSessions(get_store(), idle_seconds=IDLE, absolute_seconds=ABSOLUTE, clock=clock)


def sign_in(sessions: SsoSessions, sub: str = ALICE) -> tuple[str, SsoSession]:
    return sessions.create(sub, amr=["pwd"], ip="192.0.2.10", user_agent=CHROME)


def every_stored_byte() -> bytes:
    store = get_store()
    dump = b""
    for key in store.scan_iter():
        dump += key
        kind = store.type(key)
        if kind == b"string":
            dump += store.get(key) or b""
        elif kind == b"hash":
            for field, value in store.hgetall(key).items():
                dump += field + value
    return dump


# -- E02: the cookie value -------------------------------------------------------------------


def test_e02_cookie_value_has_at_least_128_bits(sessions: SsoSessions) -> None:
    values = {sign_in(sessions)[0] for _ in range(200)}
    assert len(values) == 200
    for value in values:
        assert len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) >= 16


def test_e02_cookie_value_is_never_stored_only_its_hash(sessions: SsoSessions) -> None:
    cookie, session = sign_in(sessions)
    dump = every_stored_byte()
    assert cookie.encode() not in dump
    assert session.sid.encode() in dump  # the public id is stored; the secret is not
    assert session.sid != cookie
    digest = base64.urlsafe_b64encode(hashlib.sha256(cookie.encode()).digest())
    assert get_store().exists(SESSION_PREFIX + digest.rstrip(b"=").decode())


@pytest.mark.parametrize("value", [None, "", "not-a-session", "x" * 10_000])
def test_e02_unknown_or_malformed_cookie_is_no_session(sessions: SsoSessions, value: str) -> None:
    sign_in(sessions)
    assert sessions.get(value) is None
    assert sessions.end(value or "") is None


def test_e02_session_id_is_validated_server_side(sessions: SsoSessions) -> None:
    cookie, session = sign_in(sessions)
    found = sessions.get(cookie)
    assert found is not None
    assert (found.sid, found.sub, found.amr, found.auth_time) == (
        session.sid,
        ALICE,
        ["pwd"],
        session.auth_time,
    )
    assert sessions.get(cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None


# -- E04: idle and absolute lifetimes ----------------------------------------------------


def test_e04_idle_61_minutes_ends_the_session(sessions: SsoSessions, clock: FakeClock) -> None:
    cookie, _ = sign_in(sessions)
    clock.advance(59 * MINUTE)
    assert sessions.get(cookie) is not None
    clock.advance(61 * MINUTE)
    assert sessions.get(cookie) is None
    assert sessions.list_for_user(ALICE) == []
    assert not get_store().exists(USER_INDEX_PREFIX + ALICE)  # cleaned, not left to rot


def test_e04_activity_resets_idle_but_not_absolute(sessions: SsoSessions, clock: FakeClock) -> None:
    cookie, session = sign_in(sessions)
    # Active every 50 minutes: never idle for an hour, so alive until the absolute limit.
    while clock.now + 50 * MINUTE < session.auth_time + ABSOLUTE:
        clock.advance(50 * MINUTE)
        assert sessions.get(cookie) is not None, "activity must reset the idle timer"
    clock.now = session.auth_time + ABSOLUTE + MINUTE  # 12 h 1 min, last activity < 1 h ago
    assert sessions.get(cookie) is None


def test_e04_reauthentication_resets_both_timers(sessions: SsoSessions, clock: FakeClock) -> None:
    cookie, session = sign_in(sessions)
    for _ in range(14):  # active until 11 h 40 min
        clock.advance(50 * MINUTE)
        assert sessions.get(cookie) is not None
    new_cookie, renewed = sessions.reauthenticate(cookie, ["pwd", "otp"], "urn:sa:acr:mfa")
    assert new_cookie != cookie
    assert sessions.get(cookie) is None  # E01: a new id at reauthentication
    assert renewed.sid == session.sid
    assert renewed.auth_time == int(clock.now) > session.auth_time
    assert (renewed.amr, renewed.acr) == (["pwd", "otp"], "urn:sa:acr:mfa")
    clock.now = session.auth_time + ABSOLUTE + MINUTE
    assert sessions.get(new_cookie) is not None  # 12 h 1 min after the first sign-in


def test_e04_last_seen_writes_are_throttled(sessions: SsoSessions, clock: FakeClock) -> None:
    cookie, session = sign_in(sessions)
    key = next(get_store().scan_iter(SESSION_PREFIX + "*"))
    before = get_store().get(key)
    clock.advance(30)
    seen = sessions.get(cookie)
    assert seen is not None
    assert seen.last_seen == session.last_seen
    assert get_store().get(key) == before  # no write for a request 30 s later
    clock.advance(31)
    seen = sessions.get(cookie)
    assert seen is not None
    assert seen.last_seen == int(clock.now)


def test_e04_redis_ttl_is_the_smaller_of_idle_and_remaining_lifetime(
    sessions: SsoSessions, clock: FakeClock
) -> None:
    cookie, session = sign_in(sessions)
    key = next(get_store().scan_iter(SESSION_PREFIX + "*"))
    assert IDLE - 5 <= get_store().ttl(key) - EXPIRED_GRACE_SECONDS <= IDLE
    for _ in range(14):  # active until 11 h 40 min: 20 minutes of lifetime left
        clock.advance(50 * MINUTE)
        assert sessions.get(cookie) is not None
    remaining = session.auth_time + ABSOLUTE - int(clock.now)
    assert remaining < IDLE
    assert remaining - 5 <= get_store().ttl(key) - EXPIRED_GRACE_SECONDS <= remaining


def test_e04_expiry_follows_the_wall_clock_by_default(app: Flask) -> None:
    with time_machine.travel(1_750_000_000, tick=False) as traveller:
        sessions = SsoSessions(get_store(), idle_seconds=IDLE, absolute_seconds=ABSOLUTE)
        cookie, _ = sign_in(sessions)
        traveller.shift(59 * MINUTE)
        assert sessions.get(cookie) is not None
        traveller.shift(61 * MINUTE)
        assert sessions.get(cookie) is None


# -- E01: rotation --------------------------------------------------------------------------


def test_e01_rotate_gives_a_new_value_and_kills_the_old(
    sessions: SsoSessions, clock: FakeClock
) -> None:
    cookie, session = sign_in(sessions)
    sessions.add_service(cookie, "pupil-records")
    clock.advance(5)
    new_cookie = sessions.rotate(cookie)
    assert new_cookie != cookie
    assert sessions.get(cookie) is None
    moved = sessions.get(new_cookie)
    assert moved is not None
    assert (moved.sid, moved.sub, moved.auth_time, moved.services) == (
        session.sid,
        ALICE,
        session.auth_time,
        ["pupil-records"],
    )
    assert [s.sid for s in sessions.list_for_user(ALICE)] == [session.sid]
    with pytest.raises(SessionNotFound):
        sessions.rotate(cookie)


def test_e01_concurrent_rotations_leave_exactly_one_live_value(sessions: SsoSessions) -> None:
    cookie, _ = sign_in(sessions)
    barrier = threading.Barrier(8)
    winners: list[str] = []

    def rotate() -> None:
        barrier.wait()
        with contextlib.suppress(SessionNotFound):
            winners.append(sessions.rotate(cookie))

    threads = [threading.Thread(target=rotate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert sessions.get(winners[0]) is not None
    assert len(sessions.list_for_user(ALICE)) == 1


def test_e01_rotating_an_expired_session_fails(sessions: SsoSessions, clock: FakeClock) -> None:
    cookie, _ = sign_in(sessions)
    clock.advance(IDLE + 1)
    with pytest.raises(SessionNotFound):
        sessions.rotate(cookie)
    with pytest.raises(SessionNotFound):
        sessions.reauthenticate(cookie, ["pwd"])


# -- E06: listing and ending ------------------------------------------------------------------


def test_e06_end_all_for_user_ends_every_session_and_returns_them(
    sessions: SsoSessions,
) -> None:
    alice = [sign_in(sessions, ALICE) for _ in range(3)]
    bob_cookie, _ = sign_in(sessions, BOB)
    ended = sessions.end_all_for_user(ALICE)
    assert sorted(s.sid for s in ended) == sorted(s.sid for _, s in alice)
    for cookie, _ in alice:
        assert sessions.get(cookie) is None
    assert sessions.get(bob_cookie) is not None
    assert sessions.list_for_user(ALICE) == []
    assert not get_store().exists(USER_INDEX_PREFIX + ALICE)
    assert sessions.end_all_for_user(ALICE) == []


def test_e06_list_and_end_by_sid_cannot_touch_another_users_session(
    sessions: SsoSessions, clock: FakeClock
) -> None:
    a1, s1 = sign_in(sessions, ALICE)
    clock.advance(120)
    a2, s2 = sign_in(sessions, ALICE)
    bob_cookie, bob = sign_in(sessions, BOB)
    assert [s.sid for s in sessions.list_for_user(ALICE)] == [s2.sid, s1.sid]  # newest first
    assert [s.sid for s in sessions.list_for_user(BOB)] == [bob.sid]

    assert sessions.end_by_sid(ALICE, bob.sid) is None
    assert sessions.get(bob_cookie) is not None

    ended = sessions.end_by_sid(ALICE, s1.sid)
    assert ended is not None
    assert ended.sid == s1.sid
    assert sessions.get(a1) is None
    assert sessions.get(a2) is not None
    assert sessions.end_by_sid(ALICE, s1.sid) is None


def test_the_user_index_is_pruned_at_sign_in(sessions: SsoSessions, clock: FakeClock) -> None:
    for _ in range(INDEX_PRUNE_AT - 1):
        sign_in(sessions)
    clock.advance(IDLE)  # all of them idle out; nobody lists them
    sign_in(sessions)
    assert get_store().hlen(USER_INDEX_PREFIX + ALICE) == INDEX_PRUNE_AT
    sign_in(sessions)
    assert get_store().hlen(USER_INDEX_PREFIX + ALICE) == 2


def test_end_signs_out_one_browser(sessions: SsoSessions) -> None:
    cookie, session = sign_in(sessions)
    other, _ = sign_in(sessions)
    ended = sessions.end(cookie)
    assert ended is not None
    assert ended.sid == session.sid
    assert sessions.get(cookie) is None
    assert sessions.end(cookie) is None
    assert [s.sid for s in sessions.list_for_user(ALICE)] != [session.sid]
    assert sessions.get(other) is not None


def test_end_does_not_accept_a_public_sid(sessions: SsoSessions) -> None:
    cookie, session = sign_in(sessions)
    assert sessions.end(session.sid) is None
    assert sessions.get(cookie) is not None


# -- contents ------------------------------------------------------------------------------------


def test_add_service_records_each_client_once(sessions: SsoSessions) -> None:
    cookie, _ = sign_in(sessions)
    sessions.add_service(cookie, "pupil-records")
    sessions.add_service(cookie, "school-census")
    updated = sessions.add_service(cookie, "pupil-records")
    assert updated.services == ["pupil-records", "school-census"]
    found = sessions.get(cookie)
    assert found is not None
    assert found.services == ["pupil-records", "school-census"]
    with pytest.raises(ValueError, match="client_id"):
        sessions.add_service(cookie, "bad id")
    sessions.end(cookie)
    with pytest.raises(SessionNotFound):
        sessions.add_service(cookie, "pupil-records")


def test_request_text_is_sanitised_and_truncated(sessions: SsoSessions) -> None:
    cookie, session = sessions.create(
        ALICE, amr=["pwd"], ip="2001:db8::1", user_agent="A\x1fB\nC" + "x" * 1000
    )
    assert session.user_agent is not None
    assert session.user_agent.startswith("A?B?C")
    assert len(session.user_agent) == USER_AGENT_MAX
    found = sessions.get(cookie)
    assert found is not None
    assert (found.user_agent, found.ip, found.acr) == (session.user_agent, "2001:db8::1", None)
    with pytest.raises(ValueError, match="amr"):
        sessions.create(ALICE, amr=["pwd otp"])


def test_is_expired_and_expires_at() -> None:
    s = SsoSession(
        sid="s", sub=ALICE, auth_time=1000, amr=[], acr=None, created_at=1000, last_seen=5000
    )
    assert not s.is_expired(5000 + IDLE - 1, IDLE, ABSOLUTE)
    assert s.is_expired(5000 + IDLE, IDLE, ABSOLUTE)
    assert s.is_expired(1000 + 4 * 3600, IDLE, 4 * 3600)
    assert s.expires_at(IDLE, ABSOLUTE) == 5000 + IDLE
    assert s.expires_at(IDLE, 2 * 3600) == 1000 + 2 * 3600


def test_init_app_reads_the_session_settings(app: Flask, settings: Settings) -> None:
    other = Flask(__name__)
    other.extensions["store"] = get_store()
    init_app(other, settings)
    with other.app_context():
        sessions = get_sso_sessions()
    assert (sessions.idle, sessions.absolute) == (
        settings.session_idle_seconds,
        settings.session_absolute_seconds,
    )


# -- DESIGN.md §8: an idle session costs under 1 KB ---------------------------------------------


def test_an_idle_session_fits_in_1_kb_of_redis(sessions: SsoSessions) -> None:
    store = get_store()
    if isinstance(store, fakeredis.FakeRedis):
        pytest.skip("MEMORY USAGE needs real Redis (IDP_TEST_BACKEND=server)")
    cookie, _ = sessions.create(
        ALICE,
        amr=["pwd", "otp"],
        acr="urn:secure-access:acr:mfa",
        ip="2001:db8:85a3:8d3:1319:8a2e:370:7348",
        user_agent="M" * USER_AGENT_MAX,  # the longest user agent we keep
    )
    for client_id in ("pupil-records", "school-census", "teacher-pensions", "get-help"):
        sessions.add_service(cookie, client_id)
    session_key = next(store.scan_iter(SESSION_PREFIX + "*"))
    session_bytes = store.memory_usage(session_key, samples=0)
    index_bytes = store.memory_usage(USER_INDEX_PREFIX + ALICE, samples=0)
    assert session_bytes + index_bytes < 1024, (session_bytes, index_bytes)
