"""The API's per-service rate limit (idp.api.limits; docs/api.md §5).

With the limit set low in the test app: the call after the limit is a 429 problem with
Retry-After, another service is not affected, the window slides, and the first refusal is
audited once.
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent, User
from idp.services.throttle import get_rate_limiter
from tests.api.conftest import ApiCaller, give_access
from tests.clock import Clock

LIMIT = 3


@pytest.fixture
def clock(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The test app with a limit of three calls a minute, on a clock the test moves."""
    monkeypatch.setattr(app.extensions["settings"], "api_rate_limit_per_minute", LIMIT)
    clock = Clock()
    monkeypatch.setattr(get_rate_limiter(), "clock", clock)
    return clock


def _limited_events() -> list[AuditEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.event == "api.rate_limited"))
    )


def test_the_call_after_the_limit_is_a_429_problem_with_retry_after(
    clock: Clock, caller: ApiCaller, other_caller: ApiCaller, teacher: User, school
) -> None:
    token = caller.token()
    for _ in range(LIMIT):
        assert caller.get(f"/users/{teacher.sub}", token).status_code == 200
    clock.now += 20

    refused = caller.get(f"/users/{teacher.sub}", token)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "40"  # the oldest call leaves the window then
    assert refused.headers["Cache-Control"] == "no-store"
    body = refused.get_json(force=True)
    assert body["type"] == "about:blank"
    assert body["title"] == "Too Many Requests"
    assert body["status"] == 429
    assert body["code"] == "too_many_requests"
    assert "more than 3 calls in a minute" in body["detail"]
    # Every route counts, and the refused call did not (still 40 s to wait).
    again = caller.invite({"email": "x@hill-school.example"}, token)
    assert again.status_code == 429
    assert again.headers["Retry-After"] == "40"

    # Another service has its own allowance.
    give_access(teacher, school, other_caller.service)
    assert other_caller.get(f"/users/{teacher.sub}").status_code == 200

    # One audit event for the burst, naming the service.
    [event] = _limited_events()
    assert event.actor_id == "pupil-data"
    assert event.outcome == "denied"
    assert event.details["limit"] == LIMIT

    # The window slides: once the first calls are a minute old, the service may call again.
    clock.now += 41
    assert caller.get(f"/users/{teacher.sub}", token).status_code == 200


def test_calls_refused_for_their_token_do_not_use_the_allowance(
    clock: Clock, caller: ApiCaller, teacher: User
) -> None:
    invite_only = caller.token("users:invite")
    for _ in range(LIMIT + 2):
        assert caller.get(f"/users/{teacher.sub}", invite_only).status_code == 403
    assert caller.get(f"/users/{teacher.sub}").status_code == 200
    assert _limited_events() == []
