"""Fixtures that speak the domain: a person, a person with an app, helpdesk staff."""

from __future__ import annotations

import pytest

from idp.models import StaffRole, User
from tests.factories import make_user
from tests.mfa.journeys import add_totp
from tests.mfa.softkey import SoftKey


@pytest.fixture
def user() -> User:
    return make_user(email="ada@school.example")


@pytest.fixture
def totp_user(user: User) -> tuple[User, str]:
    """Ada, with a confirmed authenticator app: (user, secret)."""
    return user, add_totp(user)


@pytest.fixture
def helpdesk_user() -> User:
    return make_user(
        email="grace@helpdesk.example",
        given_name="Grace",
        family_name="Hopper",
        staff_role=StaffRole.HELPDESK,
    )


@pytest.fixture
def softkey() -> SoftKey:
    return SoftKey()
