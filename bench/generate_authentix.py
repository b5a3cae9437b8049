"""Write an Authentix-style staff CSV for given school URNs, for benchmarks and tests.

    python -m bench.generate_authentix --gias /tmp/gias.csv --rows 100000 --out /tmp/staff.csv

Realistic where it matters to the importer (:mod:`idp.services.authentix_import`): about 20
staff per school, about one in ten an approver, a few people at two schools (one account, two
memberships, one invitation), names with apostrophes and accents, mixed services with roles,
the legacy ``Password`` column that must be ignored, cp1252 with CRLF line ends by default.
The URNs come from a GIAS file (:mod:`bench.generate_gias`), so the schools exist once that
file is imported. ``--bad-fraction`` mixes in rows the importer must reject (bad email, role
mailbox, unknown service, unknown URN), counted in :class:`Generated`.

Deterministic for a given seed, so a benchmark run is repeatable.
"""

from __future__ import annotations

import argparse
import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from bench.generate_gias import FIRST_NAMES, LAST_NAMES

HEADER = ["URN", "Email", "Given name", "Family name", "Approver", "Services", "Password"]
#: Services the benchmark registers, with roles (bench_authentix_import.SERVICES).
SERVICE_CHOICES = [
    ("", 20),
    ("school-census:submitter", 25),
    ("pupil-data:viewer", 25),
    ("pupil-data:viewer+editor", 10),
    ("school-census:submitter;pupil-data:viewer", 15),
    ("teacher-pensions", 5),
]
MORE_GIVEN = ["Zoë", "Siân", "Aoife", "Chloé", "Mohammed", "Priya", "Tomás", "Olu", "Ewa"]
MORE_FAMILY = ["O\u2019Brien", "Côté", "Ahmed", "Nowak", "Okafor", "D'Souza", "Müller", "Evans"]
BAD_KINDS = ("bad_email", "role_mailbox", "unknown_service", "unknown_urn")
MOVER_FRACTION = 0.05  # people who also work at a second school


@dataclass
class Generated:
    """What was written, so a benchmark can predict the import's counts exactly."""

    rows: int = 0
    good: int = 0
    bad: int = 0
    people: int = 0  # distinct accounts the good rows create
    approvers: int = 0
    grants: int = 0
    bad_by_kind: dict[str, int] = field(default_factory=dict)


def urns_from_gias(path: Path) -> list[str]:
    """The URNs of the establishments in a GIAS file (the ones the GIAS import keeps)."""
    with path.open(encoding="cp1252", newline="") as f:
        return [r["URN"] for r in csv.DictReader(f) if r["URN"].isdigit()]


def generate(
    out: Path,
    rows: int,
    urns: list[str],
    *,
    seed: int = 2024,
    bad_fraction: float = 0.0,
    encoding: str = "cp1252",
) -> Generated:
    """Write ``rows`` staff rows spread over ``urns`` (about 20 per school) to ``out``."""
    rng = random.Random(seed)
    given_names, family_names = FIRST_NAMES + MORE_GIVEN, LAST_NAMES + MORE_FAMILY
    services, weights = zip(*SERVICE_CHOICES, strict=True)
    stats = Generated(bad_by_kind=dict.fromkeys(BAD_KINDS, 0))
    earlier: list[tuple[str, str, str, str]] = []  # (urn, email, given, family), a sample
    moved: set[tuple[str, str]] = set()
    with out.open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(HEADER)
        for i in range(rows):
            urn = urns[(i * len(urns)) // max(rows, 1)]  # ~rows/len(urns) per school, in order
            mover = earlier and rng.random() < MOVER_FRACTION
            if mover:
                home, email, given, family = rng.choice(earlier)
                if home == urn or (email, urn) in moved:  # one row per person per school
                    mover = False
                else:
                    moved.add((email, urn))
            if not mover:
                given, family = rng.choice(given_names), rng.choice(family_names)
                local = "".join(c for c in f"{given}.{family}".lower() if c.isascii() and c != "'")
                email = f"{local}.{i}@school{urn}.sch.uk"
            approver = "Yes" if rng.random() < 0.1 else "No"
            service = rng.choices(services, weights)[0]
            row = [urn, email, given, family, approver, service, "Summer2019!"]
            if rng.random() < bad_fraction:
                kind = BAD_KINDS[stats.bad % len(BAD_KINDS)]
                if kind == "bad_email":
                    row[1] = email.replace("@", " at ")
                elif kind == "role_mailbox":
                    row[1] = f"office@school{urn}.sch.uk"
                elif kind == "unknown_service":
                    row[5] = "timetabling"
                else:
                    row[0] = "9" + urn  # a URN no school has
                stats.bad += 1
                stats.bad_by_kind[kind] += 1
            else:
                stats.good += 1
                stats.people += 0 if mover else 1
                stats.approvers += approver == "Yes"
                stats.grants += len([s for s in service.split(";") if s])
                if not mover and len(earlier) < 5000:
                    earlier.append((urn, email, given, family))
            writer.writerow(row)
            stats.rows += 1
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gias", type=Path, required=True, help="GIAS file with the schools")
    parser.add_argument("--rows", type=int, default=100_000, help="staff rows (default 100000)")
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--bad-fraction", type=float, default=0.0)
    parser.add_argument("--encoding", default="cp1252", help="cp1252 (default) or utf-8-sig")
    args = parser.parse_args(argv)
    stats = generate(
        args.out,
        args.rows,
        urns_from_gias(args.gias),
        seed=args.seed,
        bad_fraction=args.bad_fraction,
        encoding=args.encoding,
    )
    print(f"Wrote {stats.rows} rows ({stats.good} good, {stats.bad} bad, {stats.people} people)")


if __name__ == "__main__":
    main()
