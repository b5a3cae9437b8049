"""The server-side session stores: files (the default) and Redis (J06 needs server-side
sessions: a Logout Token arrives without the person's browser).

The Redis tests use the real Redis the provider's tests use (``IDP_TEST_BACKEND=server``),
in this test slot's and worker's own database, under a key prefix of their own.
"""

from __future__ import annotations

import os
import re
import secrets
import stat

import pytest
from rp_helpers import Journey, make_rp_app, signed_in

from secure_access_client.sessions import FileSessionStore, RedisSessionStore, digest

REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL")


def redis_url(worker_id: str) -> str:
    assert REDIS_URL
    slot = int(os.environ.get("IDP_TEST_SLOT", "0"))
    number = re.search(r"\d+", worker_id)
    worker = int(number.group()) if number else 0
    return re.sub(r"/\d*$", "", REDIS_URL.rstrip("/")) + f"/{1 + slot * 2 + worker}"


@pytest.fixture(params=["files", "redis"])
def store(request, tmp_path, clock):
    if request.param == "files":
        yield FileSessionStore(str(tmp_path / "s"), clock=clock)
        return
    if not REDIS_URL:
        pytest.skip("IDP_TEST_REDIS_URL is not set (the Redis store runs on the server back end)")
    import redis

    client = redis.Redis.from_url(redis_url(request.getfixturevalue("worker_id")))
    prefix = f"sa-test-{secrets.token_hex(6)}:"
    yield RedisSessionStore(client, prefix=prefix)
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()


def test_a_saved_session_loads_until_it_is_deleted(store):
    key = digest("cookie-value")
    store.save(key, {"auth": {"sub": "s"}}, 60)

    assert store.load(key) == {"auth": {"sub": "s"}}
    store.delete(key)
    assert store.load(key) is None


def test_indexes_list_their_sessions_until_dropped(store):
    a, b = digest("a"), digest("b")
    index = digest("sid", "iss", "sid-1")
    store.add_to_index(index, a, 60)
    store.add_to_index(index, b, 60)

    assert store.index_members(index) == sorted([a, b])
    store.drop_index(index)
    assert store.index_members(index) == []


def test_remember_once_is_true_only_the_first_time(store):
    marker = digest("jti", "iss", "j-1")

    assert store.remember_once(marker, 60) is True
    assert store.remember_once(marker, 60) is False


def test_file_sessions_expire_by_the_clock(tmp_path, clock):
    store = FileSessionStore(str(tmp_path / "s"), clock=clock)
    key = digest("c")
    store.save(key, {"x": 1}, 60)
    store.remember_once(digest("m"), 60)
    clock.advance(61)

    assert store.load(key) is None
    assert store.remember_once(digest("m"), 60) is True  # an expired marker may be reused


def test_file_sessions_are_private_and_named_by_hash_only(tmp_path, clock):
    store = FileSessionStore(str(tmp_path / "s"), clock=clock)
    store.save(digest("the-cookie"), {"x": 1}, 60)

    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700
    names = [p.name for p in (tmp_path / "s" / "sessions").iterdir()]
    assert names == [digest("the-cookie")]
    assert "the-cookie" not in (tmp_path / "s" / "sessions" / names[0]).read_text()


def test_the_sweep_removes_expired_sessions_and_stale_index_entries(tmp_path, clock):
    store = FileSessionStore(str(tmp_path / "s"), clock=clock)
    old, new = digest("old"), digest("new")
    store.save(old, {}, 10)
    store.save(new, {}, 100)
    store.add_to_index(digest("i"), old, 100)
    clock.advance(11)
    store.sweep()

    assert [p.name for p in (tmp_path / "s" / "sessions").iterdir()] == [new]
    assert store.index_members(digest("i")) == []


def test_store_keys_must_be_digests(tmp_path, clock):
    store = FileSessionStore(str(tmp_path / "s"), clock=clock)

    with pytest.raises(ValueError, match="hex digests"):
        store.load("../../etc/passwd")


@pytest.mark.skipif(not REDIS_URL, reason="IDP_TEST_REDIS_URL is not set (server back end only)")
def test_a_service_on_redis_signs_in_and_is_signed_out_by_back_channel(
    op, tmp_path, clock, worker_id
):
    app = make_rp_app(op, tmp_path, clock, REDIS_URL=redis_url(worker_id))
    rp = app.extensions["secure_access"][1]
    assert isinstance(rp.store, RedisSessionStore)
    browser = app.test_client()
    Journey(browser, op).sign_in(sid=f"sid-{secrets.token_hex(4)}")
    sid = browser.get("/whoami").json["sid"]
    token = op.logout_token(sid=sid)

    try:
        assert signed_in(browser)
        assert (
            app.test_client()
            .post("/auth/backchannel-logout", data={"logout_token": token})
            .status_code
            == 200
        )
        assert not signed_in(browser)
        again = app.test_client().post("/auth/backchannel-logout", data={"logout_token": token})
        assert again.json["error_description"] == "replayed-jti"
    finally:
        for key in rp.store.redis.scan_iter(rp.store.prefix + "*"):
            rp.store.redis.delete(key)
