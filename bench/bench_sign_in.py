"""Sign-in cost: the password step's POST against one raw argon2id verification.

Target (DESIGN.md §8): the POST costs at most 1.2x one argon2id verification at the same
parameters, i.e. everything besides hashing is noise. Both are measured in this run, on this
machine, interleaved so that drift affects both alike. Runs against PostgreSQL + Redis when
IDP_BENCH_DATABASE_URL / IDP_BENCH_REDIS_URL are set (as `make bench` does), else embedded.

    .venv/bin/python -m bench.bench_sign_in [--rounds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from argon2 import PasswordHasher, Type
from bs4 import BeautifulSoup

from bench.common import bench_app
from idp.extensions import db
from idp.models import User, UserStatus
from idp.services.passwords import get_passwords

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "paper lantern orchard ribbon"  # a demo credential, not a secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    app = bench_app("bench-sign-in-")  # migrated, production argon2id parameters
    settings = app.extensions["settings"]
    with app.app_context():
        db.session.query(User).delete()
        stored = get_passwords().hash(PASSWORD)
        db.session.add(
            User(
                email="bench@school.example",
                given_name="Bench",
                family_name="Mark",
                status=UserStatus.ACTIVE,
                password_hash=stored,
            )
        )
        db.session.commit()

    raw = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_cost,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )
    raw_hash = raw.hash(PASSWORD)
    client = app.test_client()
    posts: list[float] = []
    hashes: list[float] = []

    def sign_in_post(i: int) -> float:
        page = client.get("/sign-in?prompt=login")
        token = BeautifulSoup(page.data, "html.parser").find("input", {"name": "csrf_token"})
        started = time.perf_counter()
        response = client.post(
            "/sign-in",
            data={
                "email": "bench@school.example",
                "password": PASSWORD,
                "csrf_token": token["value"],
            },
            environ_base={"REMOTE_ADDR": f"10.0.{i // 250}.{i % 250}"},
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 303, response.status_code
        return elapsed

    def raw_verify() -> float:
        started = time.perf_counter()
        raw.verify(raw_hash, PASSWORD)
        return time.perf_counter() - started

    # Alternate blocks of ten, so machine drift and allocator state affect both alike.
    for _ in range(5):  # warm-up, discarded
        sign_in_post(0)
        raw_verify()
    block = 10
    for b in range(max(1, args.rounds // block)):
        posts += [sign_in_post(b * block + i) for i in range(block)]
        hashes += [raw_verify() for _ in range(block)]

    post_ms = statistics.median(posts) * 1000
    hash_ms = statistics.median(hashes) * 1000
    figures = {
        "benchmark": "sign-in POST vs one argon2id verify",
        "backend": "postgresql+redis"
        if os.environ.get("IDP_BENCH_DATABASE_URL")
        else "sqlite+in-process",
        "argon2": {
            "m_kib": settings.argon2_memory_cost,
            "t": settings.argon2_time_cost,
            "p": settings.argon2_parallelism,
        },
        "rounds": args.rounds,
        "sign_in_post_median_ms": round(post_ms, 2),
        "raw_argon2_verify_median_ms": round(hash_ms, 2),
        "ratio": round(post_ms / hash_ms, 3),
        "target_ratio": 1.2,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "sign_in_" + ("server" if os.environ.get("IDP_BENCH_DATABASE_URL") else "embedded")
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
