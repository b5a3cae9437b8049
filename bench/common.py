"""What the benchmarks in bench/ share: the app they measure, the sign-in baseline, the child
processes the import benchmarks time, and how figures are summarised and written.

Two kinds of benchmark use it:

* **In-process** (bench_staff_list, bench_choose_organisation, and the shape of bench_sign_in):
  :func:`bench_app` builds the app with production argon2id parameters (DESIGN.md §8 compares
  against one password verification at those parameters), on PostgreSQL + Redis when
  ``IDP_BENCH_DATABASE_URL`` / ``IDP_BENCH_REDIS_URL`` are set, else SQLite + the in-process
  store; :func:`timed_sign_in` is the password POST they measure against.
* **Whole-command** (bench_import, bench_authentix_import): :func:`fresh_import_database` and
  :func:`run` time ``flask --app idp ...`` as child processes on a scratch PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "paper lantern orchard ribbon"  # a demo credential, not a secret


# --- in-process benchmarks ---------------------------------------------------------------


def on_server() -> bool:
    """Whether this run is against PostgreSQL + Redis (``make bench``) rather than embedded."""
    return bool(os.environ.get("IDP_BENCH_DATABASE_URL"))


def backend() -> str:
    """The back end named in the figures."""
    return "postgresql+redis" if on_server() else "sqlite+in-process"


def bench_app(prefix: str) -> Flask:
    """The app under test, migrated, with production argon2id parameters (OWASP minimum),
    unlike the cheap test ones, so sign-in costs what it costs in production."""
    from flask_migrate import upgrade

    from idp import create_app

    instance = tempfile.mkdtemp(prefix=prefix)
    app = create_app(
        env="test",
        instance_path=instance,
        public_base_url="http://localhost",
        database_url=os.environ.get("IDP_BENCH_DATABASE_URL") or f"sqlite:///{instance}/b.db",
        redis_url=os.environ.get("IDP_BENCH_REDIS_URL") or None,
        log_level="ERROR",
        argon2_time_cost=2,
        argon2_memory_cost=19456,
        argon2_parallelism=1,
    )
    with app.app_context():
        upgrade()
    return app


def argon2_figures(app: Flask) -> dict[str, int]:
    """The argon2id parameters the run used, for the figures."""
    settings = app.extensions["settings"]
    return {
        "m_kib": settings.argon2_memory_cost,
        "t": settings.argon2_time_cost,
        "p": settings.argon2_parallelism,
    }


def timed_sign_in(
    client: Any, email: str, i: int, *, subnet: int = 0, finish: bool = False
) -> float:
    """Seconds for one password POST to ``/sign-in`` (the CSRF-token GET before it untimed).

    Each ``i`` comes from its own address (``10.<subnet>.x.y``) so the per-address throttle
    never slows the baseline. ``finish`` follows the redirect to finish signing in, so the
    client is left signed in.
    """
    from bs4 import BeautifulSoup

    page = client.get("/sign-in?prompt=login")
    token = BeautifulSoup(page.data, "html.parser").find("input", {"name": "csrf_token"})
    assert token is not None, page.status_code
    started = time.perf_counter()
    response = client.post(
        "/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": token["value"]},
        environ_base={"REMOTE_ADDR": f"10.{subnet}.{i // 250}.{i % 250}"},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 303, response.status_code
    if finish:
        assert client.get(response.headers["Location"]).status_code == 303
    return elapsed


def median_ms(samples: Iterable[float]) -> float:
    """The median of samples in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def write_figures(name: str, figures: dict[str, Any], markdown: str | None = None) -> None:
    """Write ``bench/results/<name>.json`` (and ``.md`` when given) and print the summary."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    if markdown is None:
        print(json.dumps(figures, indent=2))
    else:
        (RESULTS / f"{name}.md").write_text(markdown)
        print(markdown)


# --- whole-command (child process) benchmarks ----------------------------------------------


@dataclass
class Run:
    """One run of the CLI command: its wall time, the child's peak memory and what it said."""

    wall_seconds: float
    peak_rss_mb: float
    exit_code: int
    stdout: str
    stderr_tail: str


def libpq(url: URL, database: str | None = None) -> str:
    """A psycopg connection string for the SQLAlchemy URL (optionally another database)."""
    url = url.set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def recreate_database(url: URL) -> None:
    import psycopg

    name = url.database
    if not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):  # it goes into DROP DATABASE
        sys.exit(f"refusing an unusual database name: {name!r}")
    with psycopg.connect(libpq(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: URL) -> None:
    import psycopg

    with psycopg.connect(libpq(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def flask_command() -> list[str]:
    local = ROOT / ".venv" / "bin" / "flask"
    exe = str(local) if local.exists() else shutil.which("flask")
    if not exe:
        sys.exit("flask not found: run `make install` first")
    return [exe, "--app", "idp"]


def run(args: list[str], env: dict[str, str], workdir: Path) -> Run:
    """Run one child to completion; time it and read its own peak RSS from wait4."""
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        child = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    stderr = err_path.read_text(errors="replace")
    return Run(
        wall_seconds=round(wall, 3),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        exit_code=child.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr_tail="\n".join(stderr.strip().splitlines()[-5:]),
    )


def import_environment(default_url: str) -> tuple[URL, dict[str, str], list[str]]:
    """(database URL, child environment, flask command) for a whole-command import run.

    The database is ``IDP_BENCH_DATABASE_URL`` or ``default_url``; the import does not touch
    Redis, so the child gets none.
    """
    from sqlalchemy.engine import make_url

    url = make_url(os.environ.get("IDP_BENCH_DATABASE_URL", default_url))
    env = {**os.environ, "IDP_DATABASE_URL": url.render_as_string(hide_password=False)}
    env.pop("IDP_REDIS_URL", None)
    return url, env, flask_command()


def fresh_import_database(url: URL, env: dict[str, str], flask: list[str], work: Path) -> None:
    """Drop and create the scratch database, then migrate it (exits if migrations fail)."""
    recreate_database(url)
    migrate = run([*flask, "db", "upgrade"], env, work)
    if migrate.exit_code:
        sys.exit(f"migrations failed:\n{migrate.stderr_tail}")


def import_parser(doc: str, rows: int) -> argparse.ArgumentParser:
    """The options every import benchmark takes: --rows, --seed, --keep-database."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=rows)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--keep-database", action="store_true", help="leave it for inspection")
    return parser


@contextmanager
def import_workspace(
    default_url: str, prefix: str
) -> Iterator[tuple[URL, dict[str, str], list[str], Path]]:
    """(database URL, child environment, flask command, scratch folder) for one import
    benchmark: a fresh, migrated database (see :func:`import_environment`) and a temporary
    folder for the files and the children's output, removed afterwards."""
    url, env, flask = import_environment(default_url)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        fresh_import_database(url, env, flask, work)
        yield url, env, flask, work


def machine_figures() -> dict[str, Any]:
    """When and on what the run happened, for the figures."""
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }


def run_figures(
    rows: int, startup: Run, first: Run, rerun: Run, copy_seconds: float, copy_rows: int
) -> dict[str, Any]:
    """The figures every import benchmark reports: the runs, rows per second, and the ratio
    to the COPY floor (whole process, and without the start-up a header-only file costs)."""
    excluding = first.wall_seconds - startup.wall_seconds
    return {
        "startup_run": asdict(startup),
        "first_run": asdict(first),
        "rerun": asdict(rerun),
        "first_run_rows_per_second": round(rows / first.wall_seconds),
        "rerun_rows_per_second": round(rows / rerun.wall_seconds),
        "copy_baseline_seconds": round(copy_seconds, 3),
        "copy_baseline_rows": copy_rows,
        "ratio_first_run_to_copy": round(first.wall_seconds / copy_seconds, 1),
        "ratio_first_run_excluding_startup_to_copy": round(excluding / copy_seconds, 1),
    }


def floor_rows(f: dict[str, Any], copied: str) -> list[str]:
    """Markdown table rows for :func:`run_figures`' start-up, memory and COPY floor;
    ``copied`` says what the COPY wrote ("the same rows")."""
    startup, first, rerun = f["startup_run"], f["first_run"], f["rerun"]
    rss = f"{startup['peak_rss_mb']} / {first['peak_rss_mb']} / {rerun['peak_rss_mb']} MB"
    return [
        f"| Start-up (header-only file) | {startup['wall_seconds']:.2f} s |",
        f"| Peak RSS: start-up / first import / re-run | {rss} |",
        f"| COPY of {copied} (floor) | {f['copy_baseline_seconds']:.2f} s |",
        f"| Import / COPY | {f['ratio_first_run_to_copy']}x "
        f"({f['ratio_first_run_excluding_startup_to_copy']}x excluding start-up) |",
    ]


def import_report(
    title: str, intro: str, rows: list[str], f: dict[str, Any], said_lines: int
) -> str:
    """An import benchmark's Markdown summary: ``intro``, a table of ``rows``, what the first
    run (its first ``said_lines`` lines) and the re-run printed, and the checks."""
    return "\n".join(
        [
            f"# {title}",
            "",
            intro,
            "",
            "| Measure | Value |",
            "|---|---|",
            *rows,
            "",
            *said("First import said:", f["first_run"], said_lines),
            *said("Re-run said:", f["rerun"], 3),
            checks_line(f["checks"]),
            "",
        ]
    )


def said(title: str, run: dict[str, Any], lines: int) -> list[str]:
    """A Markdown block quoting the first ``lines`` of what a run printed."""
    return [title, "", *[f"    {line}" for line in str(run["stdout"]).splitlines()[:lines]], ""]


def checks_line(checks: dict[str, bool]) -> str:
    """One Markdown line: every check, ok or FAILED."""
    return "Checks: " + ", ".join(
        f"{name}: {'ok' if ok else 'FAILED'}" for name, ok in checks.items()
    )
