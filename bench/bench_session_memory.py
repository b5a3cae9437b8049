"""What an idle SSO session costs in Redis (DESIGN.md §8 target: under 1 KB).

Creates 10,000 sessions through :class:`idp.services.sso_sessions.SsoSessions` on a real
Redis, one user each (the worst case: every session also pays for its own user index), and
reports bytes per session three ways:

- ``info_delta``: ``INFO memory`` ``used_memory`` after minus before, divided by the count.
  Includes allocator and dictionary overhead, but the figure is server-wide, so another client
  writing to the same server at the same time moves it.
- ``memory_usage_sum``: the sum of ``MEMORY USAGE`` over every key created, per session.
  Exact for our keys and unaffected by other clients.
- ``memory_usage_one``: ``MEMORY USAGE`` of one session key and one user index.

It compares them with a baseline: a hash key with a single one-byte field and a key name as
long as a session key's (an empty hash cannot exist in Redis). The database must be empty; the
benchmark deletes what it created.

    .venv/bin/python bench/bench_session_memory.py [--redis-url redis://127.0.0.1:6379/10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import redis

from idp.services.sso_sessions import SESSION_PREFIX, USER_INDEX_PREFIX, SsoSessions

LIMIT = 1024
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"
)
RESULTS = Path(__file__).resolve().parent / "results" / "session_memory.json"


def used_memory(store: redis.Redis) -> int:
    return int(store.info("memory")["used_memory"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
        help="an empty Redis database (default: %(default)s)",
    )
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    store = redis.Redis.from_url(args.redis_url)
    if store.dbsize():
        print(f"{args.redis_url} is not empty; point --redis-url at an empty database")
        return 2
    sessions = SsoSessions(store, idle_seconds=3600, absolute_seconds=43200)
    subs = [str(uuid.uuid4()) for _ in range(args.sessions)]
    try:
        # Baseline: a near-empty hash under a key as long as a session key.
        baseline_key = SESSION_PREFIX + "b" * 43
        store.hset(baseline_key, "x", "1")
        baseline = int(store.memory_usage(baseline_key, samples=0) or 0)
        store.delete(baseline_key)

        before = used_memory(store)
        started = time.perf_counter()
        cookies = []
        for sub in subs:
            cookie, _ = sessions.create(
                sub, amr=["pwd", "otp"], acr=None, ip="203.0.113.42", user_agent=USER_AGENT
            )
            sessions.add_service(cookie, "pupil-records")
            sessions.add_service(cookie, "school-census")
            cookies.append(cookie)
        elapsed = time.perf_counter() - started
        after = used_memory(store)

        keys = list(store.scan_iter(count=1000))
        with store.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.memory_usage(key, samples=0)
            total = sum(int(n or 0) for n in pipe.execute())
        one_session = next(store.scan_iter(SESSION_PREFIX + "*"))
        session_one = int(store.memory_usage(one_session, samples=0) or 0)
        index_one = int(store.memory_usage(USER_INDEX_PREFIX + subs[0], samples=0) or 0)
        server = store.info("server")
    finally:
        for sub in subs:
            sessions.end_all_for_user(sub)

    result = {
        "what": "Redis bytes per idle SSO session (session key + its user index)",
        "command": ".venv/bin/python bench/bench_session_memory.py --redis-url " + args.redis_url,
        "redis_version": server["redis_version"],
        "sessions": args.sessions,
        "user_agent_chars": len(USER_AGENT),
        "info_delta_bytes_per_session": round((after - before) / args.sessions, 1),
        "memory_usage_sum_bytes_per_session": round(total / args.sessions, 1),
        "memory_usage_one": {"session_key": session_one, "user_index": index_one},
        "baseline_one_field_hash_key": baseline,
        "limit_bytes": LIMIT,
        "within_limit": max((after - before) / args.sessions, total / args.sessions) < LIMIT,
        "create_seconds": round(elapsed, 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
