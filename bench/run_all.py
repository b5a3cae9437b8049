"""Run every benchmark in bench/ against the local PostgreSQL and Redis (`make bench`).

Each benchmark measures its own baseline in the same run and writes its figures to
bench/results/. This only runs them in turn and prints where the figures went; a benchmark
that fails is reported and the rest still run. Benchmarks are never part of `make test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("IDP_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def fresh_database(name: str) -> str:
    subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-qc",
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            "-c",
            f'CREATE DATABASE "{name}"',
        ],
        check=True,
    )
    return f"{PG}/{name}"


def main() -> int:
    python = sys.executable
    runs: list[tuple[str, list[str], dict[str, str]]] = [
        ("GIAS import (50,000 rows)", [python, "-m", "bench.bench_import"], {}),
        (
            "Authentix staff import (100,000 rows, PostgreSQL)",
            [python, "-m", "bench.bench_authentix_import"],
            {},
        ),
        ("sign-in vs argon2id (embedded)", [python, "-m", "bench.bench_sign_in"], {}),
        (
            "sign-in vs argon2id (PostgreSQL + Redis)",
            [python, "-m", "bench.bench_sign_in"],
            {
                "IDP_BENCH_DATABASE_URL": fresh_database("idp_bench_signin"),
                "IDP_BENCH_REDIS_URL": "redis://127.0.0.1:6379/14",
            },
        ),
        ("SSO session memory in Redis", [python, "bench/bench_session_memory.py"], {}),
        (
            "sign-in + choose organisation (20) vs plain sign-in (embedded)",
            [python, "-m", "bench.bench_choose_organisation"],
            {},
        ),
        (
            "sign-in + choose organisation (20) vs plain sign-in (PostgreSQL + Redis)",
            [python, "-m", "bench.bench_choose_organisation"],
            {
                "IDP_BENCH_DATABASE_URL": fresh_database("idp_bench_choose_org"),
                "IDP_BENCH_REDIS_URL": "redis://127.0.0.1:6379/11",
            },
        ),
        (
            "approver people page, 300 staff (embedded)",
            [python, "-m", "bench.bench_staff_list"],
            {},
        ),
        (
            "approver people page, 300 staff (PostgreSQL + Redis)",
            [python, "-m", "bench.bench_staff_list"],
            {
                "IDP_BENCH_DATABASE_URL": fresh_database("idp_bench_staff_list"),
                "IDP_BENCH_REDIS_URL": "redis://127.0.0.1:6379/15",
            },
        ),
        (
            # Loads 1,000,000 people into its own database once, then reuses it (--rebuild).
            "helpdesk search, 1,000,000 people (PostgreSQL)",
            [python, "-m", "bench.bench_helpdesk_search"],
            {},
        ),
    ]
    runs.append(
        ("HTTP server floor: granian vs gunicorn", [python, "-m", "bench.bench_server"], {})
    )
    runs.append(("token endpoint vs node-oidc-provider", [python, "-m", "bench.bench_token"], {}))
    runs.append(
        (
            "client_credentials: the grant itself vs our whole path",
            [python, "-m", "bench.bench_grant_overhead"],
            {},
        )
    )
    runs.append(
        (
            "code redemption and refresh: each step inside the machine lane",
            [python, "-m", "bench.bench_grant_steps"],
            {},
        )
    )
    failed = []
    for title, command, env in runs:
        print(f"\n== {title} ==", flush=True)
        result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=False)
        if result.returncode != 0:
            failed.append(title)
    print("\nFigures are in bench/results/.")
    if failed:
        print("Failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
