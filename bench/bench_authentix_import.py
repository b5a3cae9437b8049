"""Benchmark: import 100,000 Authentix staff rows across ~5,000 schools (issue 8).

    python -m bench.bench_authentix_import [--rows 100000] [--schools 5000] [--keep-database]

What it measures, and why this way (the shape of :mod:`bench.bench_import`):

* **The whole command, as an operator runs it**: ``flask --app idp import-authentix FILE`` as a
  child process on PostgreSQL (``IDP_BENCH_DATABASE_URL``, default a database this script
  creates and drops), so start-up, reading, checking, planning, writing, the audit trail and
  the invitations are all in the wall time. Peak RSS is the child's own (``os.wait4``).
* **Mail is queued, not sent**: invitations go to the outbox table (no worker runs), which is
  what the import itself does; sending is the worker's job and is measured elsewhere.
* **Re-running** the same file must change nothing, send nothing and say so; its time is the
  cost of checking a file that is already imported.
* **Start-up cost**: the same command on a header-only file, so the per-row cost is visible.
* **The floor**: psycopg ``COPY`` of the same people and memberships into scratch copies of
  the tables (same indexes), timed in this process. The import/COPY ratio is the price of
  validation, matching, audit events, invitation links and email payload encryption.

The schools come from :mod:`bench.generate_gias` via ``import-organisations`` (set-up, not
timed). Writes ``bench/results/authentix_import.{json,md}``. Exits 1 if a check fails.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from bench import common
from bench.generate_authentix import HEADER, generate, urns_from_gias
from bench.generate_gias import generate as generate_gias

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench_authentix"
#: The services the generated file names (bench.generate_authentix.SERVICE_CHOICES).
SEED_SERVICES = """
from idp import create_app
from idp.extensions import db
from idp.models import Service, ServiceRole
app = create_app()
with app.app_context():
    for client_id, name, roles in [
        ("school-census", "School census", ["submitter"]),
        ("pupil-data", "Pupil data", ["viewer", "editor"]),
        ("teacher-pensions", "Teacher pensions", []),
    ]:
        service = Service(client_id=client_id, name=name)
        service.roles = [ServiceRole(code=r, name=r.title()) for r in roles]
        db.session.add(service)
    db.session.commit()
"""


def count(url: URL, table: str, where: str = "TRUE") -> int:
    with psycopg.connect(common.libpq(url)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
    return int(row[0]) if row else 0


def copy_baseline(url: URL, path: Path) -> tuple[float, int]:
    """COPY the file's people and memberships into scratch tables; return (seconds, rows)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    users: dict[str, tuple[Any, ...]] = {}
    memberships = []
    with path.open(encoding="cp1252", newline="") as f:
        for i, r in enumerate(csv.DictReader(f)):
            email = r["Email"].strip().lower()
            if email not in users:
                users[email] = (
                    str(uuid.uuid4()), email, r["Given name"], r["Family name"], "invited",
                    False, now, now,
                )  # fmt: skip
            memberships.append((i, int(r["URN"]) % 2_000_000_000, "member", now, now))
    with psycopg.connect(common.libpq(url)) as conn:
        for table in ("users", "memberships"):
            conn.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
            conn.execute(f"CREATE TABLE bench_copy_{table} (LIKE {table} INCLUDING ALL)")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(
                "COPY bench_copy_users (sub, email, given_name, family_name, status,"
                " password_compromised, created_at, updated_at) FROM STDIN"
            ) as copy:
                for row in users.values():
                    copy.write_row(row)
            with cur.copy(
                "COPY bench_copy_memberships (user_id, organisation_id, role, created_at,"
                " updated_at) FROM STDIN"
            ) as copy:
                for row in memberships:
                    copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - start
        for table in ("users", "memberships"):
            conn.execute(f"DROP TABLE bench_copy_{table}")
        conn.commit()
    return seconds, len(memberships)


def main(argv: list[str] | None = None) -> int:
    parser = common.import_parser(__doc__, rows=100_000)
    parser.add_argument("--schools", type=int, default=5_000)
    args = parser.parse_args(argv)
    checks: dict[str, bool] = {}

    with common.import_workspace(DEFAULT_URL, "bench_authentix_") as (url, env, flask, work):
        gias, staff, empty = work / "gias.csv", work / "staff.csv", work / "empty.csv"
        generate_gias(gias, args.schools, seed=args.seed)
        schools = common.run([*flask, "import-organisations", str(gias)], env, work)
        seeded = subprocess.run(
            [sys.executable, "-c", SEED_SERVICES], env=env, cwd=common.ROOT, check=False,
            capture_output=True, text=True,
        )  # fmt: skip
        if schools.exit_code or seeded.returncode:
            sys.exit(f"set-up failed:\n{schools.stderr_tail}\n{seeded.stderr[-2000:]}")
        urns = urns_from_gias(gias)
        start = time.perf_counter()
        generated = generate(staff, args.rows, urns, seed=args.seed)
        generate_seconds = time.perf_counter() - start
        empty.write_text(",".join(HEADER) + "\r\n", encoding="cp1252")
        file_bytes = staff.stat().st_size
        print(f"Generated {generated.rows} rows for {len(urns)} schools", flush=True)

        startup = common.run([*flask, "import-authentix", str(empty)], env, work)
        first = common.run([*flask, "import-authentix", str(staff)], env, work)
        print(f"First import: {first.wall_seconds:.2f} s", flush=True)
        outbox_after_first = count(url, "outbox_messages")
        second = common.run([*flask, "import-authentix", str(staff)], env, work)
        print(f"Re-run: {second.wall_seconds:.2f} s", flush=True)
        users = count(url, "users")
        memberships = count(url, "memberships")
        approvers = count(url, "memberships", "role = 'approver'")
        grants = count(url, "access_grants")
        outbox = count(url, "outbox_messages")
        copy_seconds, copy_rows = copy_baseline(url, staff)
        print(f"COPY baseline: {copy_seconds:.2f} s", flush=True)
        if not args.keep_database:
            common.drop_database(url)

    rows = generated.rows
    checks["first run exits 0"] = first.exit_code == 0
    checks["first run imports every row"] = (
        f"Rows: {rows} read, {generated.good} imported, 0 unchanged" in first.stdout
    )
    checks["one account per person"] = users == generated.people
    checks["one membership per row"] = memberships == generated.good
    checks["approvers as in the file"] = approvers == generated.approvers
    checks["one grant per service per row"] = grants == generated.grants
    checks["one invitation per person, queued in the outbox"] = outbox_after_first == users
    checks["re-run reports no changes"] = (
        f"Rows: {rows} read, 0 imported, {generated.good} unchanged" in second.stdout
    )
    checks["re-run sends nothing"] = outbox == outbox_after_first
    checks["the password column is ignored with a warning"] = (
        "password column was ignored" in first.stdout
    )

    excluding = first.wall_seconds - startup.wall_seconds
    figures = {
        **common.machine_figures(),
        "rows": rows,
        "schools": len(urns),
        "people": generated.people,
        "file_megabytes": round(file_bytes / 1e6, 1),
        "generate_seconds": round(generate_seconds, 3),
        **common.run_figures(rows, startup, first, second, copy_seconds, copy_rows),
        "first_run_rows_per_second_excluding_startup": round(rows / excluding),
        "checks": checks,
        "passed": all(checks.values()),
    }
    common.write_figures("authentix_import", figures, report(figures))
    return 0 if figures["passed"] else 1


def report(f: dict[str, Any]) -> str:
    """The short Markdown summary, also printed to the terminal."""
    first, rerun, machine = f["first_run"], f["rerun"], f["machine"]
    intro = (
        f"`python -m bench.bench_authentix_import --rows {f['rows']}` ({f['file_megabytes']} MB,"
        f" {f['schools']:,} schools, {f['people']:,} people) on {f['when']}, PostgreSQL, "
        f"Python {machine['python']}, {machine['cpus']} CPUs."
    )
    rows = [
        f"| First import, whole process | {first['wall_seconds']:.2f} s "
        f"({f['first_run_rows_per_second']:,} rows/s; "
        f"{f['first_run_rows_per_second_excluding_startup']:,} rows/s excluding start-up) |",
        f"| Re-run (no changes, nothing sent), whole process | {rerun['wall_seconds']:.2f} s "
        f"({f['rerun_rows_per_second']:,} rows/s) |",
        *common.floor_rows(f, "the same people and memberships"),
    ]
    return common.import_report("Authentix staff import benchmark", intro, rows, f, said_lines=8)


if __name__ == "__main__":
    sys.exit(main())
