"""K01, E04: helpdesk staff's SSO sessions end sooner (idle 15 minutes, absolute 12 hours).

The limits are written into the session when a staff member signs in, so the clock is moved
through the store's injected clock; nothing sleeps.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError

from idp.config import Settings
from idp.extensions import db
from idp.models import StaffRole
from idp.services.sso_sessions import SsoSessions, get_sso_sessions
from idp.store import get_store
from tests.clock import Clock
from tests.console.helpers import sign_in_staff
from tests.factories import SignIn, make_user

MINUTE = 60
HOUR = 3600
STAFF = "0b5e6f00-0000-4000-8000-00000000057a"
TEACHER = "0b5e6f00-0000-4000-8000-0000000000te"


@pytest.fixture
def clock() -> Clock:
    return Clock(1_780_000_000.0)


@pytest.fixture
def sessions(app: Flask, clock: Clock) -> SsoSessions:
    return SsoSessions(
        get_store(),
        idle_seconds=HOUR,
        absolute_seconds=24 * HOUR,
        staff_idle_seconds=15 * MINUTE,
        staff_absolute_seconds=12 * HOUR,
        clock=clock,
    )


def test_staff_session_ends_after_15_idle_minutes(sessions, clock):
    staff_cookie, _ = sessions.create(STAFF, amr=["pwd", "hwk"], staff=True)
    teacher_cookie, _ = sessions.create(TEACHER, amr=["pwd"])
    clock.now += 14 * MINUTE
    assert sessions.get(staff_cookie) is not None  # activity: the idle timer restarts
    clock.now += 14 * MINUTE
    assert sessions.get(staff_cookie) is not None
    clock.now += 15 * MINUTE
    assert sessions.get(staff_cookie) is None
    assert sessions.get(teacher_cookie) is not None  # 43 minutes idle is fine for others
    assert sessions.list_for_user(STAFF) == []


def test_staff_session_ends_after_12_hours_whatever_the_activity(sessions, clock):
    staff_cookie, _ = sessions.create(STAFF, amr=["pwd", "hwk"], staff=True)
    teacher_cookie, _ = sessions.create(TEACHER, amr=["pwd"])
    for _ in range(12 * 6 - 1):  # busy all day: a request every 10 minutes
        clock.now += 10 * MINUTE
        assert sessions.get(staff_cookie) is not None
        assert sessions.get(teacher_cookie) is not None
    clock.now += 10 * MINUTE  # 12 hours since sign-in
    assert sessions.get(staff_cookie) is None
    assert sessions.get(teacher_cookie) is not None


def test_expired_staff_session_is_found_by_the_sweep(sessions, clock):
    """I04: the worker announces sessions that expired silently; staff ones included."""
    sessions.create(STAFF, amr=["pwd", "hwk"], staff=True)
    clock.now += 16 * MINUTE
    expired = sessions.expired_sessions()
    assert [s.sub for _, s in expired] == [STAFF]


def test_staff_limits_survive_rotation_and_can_be_added_on_reauthentication(sessions, clock):
    cookie, _ = sessions.create(STAFF, amr=["pwd"])
    cookie = sessions.rotate(cookie)
    cookie, session = sessions.reauthenticate(cookie, amr=["pwd", "hwk"], staff=True)
    assert (session.idle_limit, session.absolute_limit) == (15 * MINUTE, 12 * HOUR)
    cookie = sessions.rotate(cookie)
    clock.now += 16 * MINUTE
    assert sessions.get(cookie) is None


def test_staff_limits_never_lengthen_a_session(app, clock):
    store = SsoSessions(
        get_store(),
        idle_seconds=10 * MINUTE,
        absolute_seconds=HOUR,
        staff_idle_seconds=15 * MINUTE,
        staff_absolute_seconds=12 * HOUR,
        clock=clock,
    )
    cookie, session = store.create(STAFF, amr=["hwk"], staff=True)
    assert session.expires_at(store.idle, store.absolute) == int(clock.now) + 10 * MINUTE
    clock.now += 10 * MINUTE
    assert store.get(cookie) is None


def test_signing_in_as_helpdesk_records_the_staff_limits(client: FlaskClient, app) -> None:
    agent = sign_in_staff(client, StaffRole.HELPDESK)
    teacher = make_user()
    SignIn(app.test_client()).completed(teacher.email)
    store = get_sso_sessions()
    (staff_session,) = store.list_for_user(agent.sub)
    (teacher_session,) = store.list_for_user(teacher.sub)
    settings = app.extensions["settings"]
    assert staff_session.idle_limit == settings.helpdesk_session_idle_seconds == 15 * MINUTE
    assert staff_session.absolute_limit == settings.helpdesk_session_absolute_seconds
    assert settings.helpdesk_session_absolute_seconds == 12 * HOUR
    assert teacher_session.idle_limit is None


def test_console_refuses_a_session_from_before_the_person_became_staff(
    client: FlaskClient, app
) -> None:
    person = make_user()
    SignIn(client).completed(person.email)
    person.staff_role = StaffRole.HELPDESK
    db.session.commit()
    response = client.get("/helpdesk/")
    assert response.status_code == 403
    assert "Sign in again with your security key" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("helpdesk_session_idle_seconds", 16 * MINUTE),
        ("helpdesk_session_absolute_seconds", 13 * HOUR),
    ],
)
def test_staff_timeouts_cannot_be_configured_longer_than_k01_allows(setting, value):
    with pytest.raises(ValidationError, match=setting):
        Settings(_env_file=None, **{setting: value})  # type: ignore[call-arg]
