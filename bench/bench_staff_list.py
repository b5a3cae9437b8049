"""Approver's people page: a school of 300 staff, each with 2-3 service grants (issue 7).

Measures a GET of ``/organisations/<id>/people`` (the first page of 50, with every person's
services and roles) through the test client, against the plain sign-in POST (one argon2id
verification at production parameters) in the same run, interleaved in blocks so that drift
affects both alike. Also measured: a name search and the last page. The page loads grants in
bulk, so its cost should not grow with the number of staff or grants. Runs against
PostgreSQL + Redis when IDP_BENCH_DATABASE_URL / IDP_BENCH_REDIS_URL are set, else embedded.

    .venv/bin/python -m bench.bench_staff_list [--rounds 40] [--staff 300]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete

from bench.common import (
    PASSWORD,
    backend,
    bench_app,
    median_ms,
    on_server,
    timed_sign_in,
    write_figures,
)
from idp.extensions import db
from idp.models.organisation import Membership, MembershipRole, Organisation, OrganisationType
from idp.models.service import AccessGrant, Service, ServiceRole
from idp.models.user import User, UserStatus
from idp.services.passwords import get_passwords


def seed(staff: int) -> tuple[str, str]:
    """A school with ``staff`` people (one approver) and four services; returns (org id, email)."""
    for model in (AccessGrant, Membership, ServiceRole, Service, Organisation, User):
        db.session.execute(delete(model))
    services = []
    for n, name in enumerate(("Pupil data", "School census", "Teacher pensions", "Exams")):
        service = Service(client_id=f"bench-{n}", name=name)
        service.roles = [
            ServiceRole(code="viewer", name="Viewer"),
            ServiceRole(code="editor", name="Editor"),
            ServiceRole(code="submitter", name="Submitter"),
        ]
        services.append(service)
    school = Organisation(name="Bench Hill Primary", type=OrganisationType.ESTABLISHMENT)
    db.session.add_all([*services, school])
    stored = get_passwords().hash(PASSWORD)
    people = [
        User(
            email=f"staff{i:04d}@bench-hill.example",
            given_name=f"Given{i:04d}",
            family_name=f"Family{(i * 7919) % staff:04d}",
            status=UserStatus.ACTIVE,
            password_hash=stored if i == 0 else None,
        )
        for i in range(staff)
    ]
    db.session.add_all(people)
    db.session.flush()
    for i, person in enumerate(people):
        role = MembershipRole.APPROVER if i == 0 else MembershipRole.MEMBER
        db.session.add(Membership(user_id=person.id, organisation_id=school.id, role=role))
        for k in range(2 + i % 2):  # 2 or 3 grants each, one or two roles per grant
            service = services[(i + k) % len(services)]
            grant = AccessGrant(user_id=person.id, organisation_id=school.id, service_id=service.id)
            grant.roles = service.roles[: 1 + (i + k) % 2]
            db.session.add(grant)
    db.session.commit()
    return school.public_id, people[0].email


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--staff", type=int, default=300)
    args = parser.parse_args()

    app = bench_app("bench-staff-list-")
    with app.app_context():
        org_id, approver = seed(args.staff)

    approver_client = app.test_client()
    sign_in_client = app.test_client()

    def sign_in_post(client: Any, i: int, *, finish: bool = False) -> float:
        return timed_sign_in(client, approver, i, subnet=1, finish=finish)

    sign_in_post(approver_client, 0, finish=True)
    people_url = f"/organisations/{org_id}/people"
    first = approver_client.get(people_url)
    assert first.status_code == 200, first.status_code
    rows = first.get_data(as_text=True).count('class="govuk-table__row"') - 1
    assert rows == 50, rows
    last_page = -(-args.staff // 50)

    def get(url: str) -> Callable[[], float]:
        def measure() -> float:
            started = time.perf_counter()
            response = approver_client.get(url)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.status_code
            return elapsed

        return measure

    timed = {
        "people_page": get(people_url),
        "search": get(people_url + "?q=family01"),
        "last_page": get(f"{people_url}?page={last_page}"),
    }
    samples: dict[str, list[float]] = {name: [] for name in timed}
    posts: list[float] = []
    for _ in range(3):  # warm-up, discarded
        sign_in_post(sign_in_client, 0)
        for measure in timed.values():
            measure()
    block = 10
    for b in range(max(1, args.rounds // block)):
        posts += [sign_in_post(sign_in_client, b * block + i) for i in range(block)]
        for name, measure in timed.items():
            samples[name] += [measure() for _ in range(block)]

    post_ms = median_ms(posts)
    medians = {name: median_ms(values) for name, values in samples.items()}
    figures = {
        "benchmark": "approver people page (300 staff, 2-3 grants each) vs sign-in POST",
        "backend": backend(),
        "staff": args.staff,
        "rows_per_page": 50,
        "rounds": args.rounds,
        "sign_in_post_median_ms": round(post_ms, 2),
        "people_page_median_ms": round(medians["people_page"], 2),
        "search_median_ms": round(medians["search"], 2),
        "last_page_median_ms": round(medians["last_page"], 2),
        "ratio_people_page_to_sign_in": round(medians["people_page"] / post_ms, 3),
        "ratio_search_to_sign_in": round(medians["search"] / post_ms, 3),
    }
    write_figures("staff_list" + ("_server" if on_server() else ""), figures)


if __name__ == "__main__":
    main()
