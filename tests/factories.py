"""Test data that speaks the domain: ``make_user(password=...)``, ``SignIn(client)...``."""

from __future__ import annotations

import itertools
import re

from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import StaffRole, User, UserStatus
from idp.models.base import utcnow
from idp.services.passwords import get_passwords

DEFAULT_PASSWORD = "correct horse battery staple river"
_counter = itertools.count(1)


def make_user(
    *,
    email: str | None = None,
    password: str | None = DEFAULT_PASSWORD,
    status: UserStatus = UserStatus.ACTIVE,
    given_name: str = "Ada",
    family_name: str = "Lovelace",
    staff_role: StaffRole | None = None,
) -> User:
    user = User(
        email=email or f"person{next(_counter)}@school.example",
        given_name=given_name,
        family_name=family_name,
        status=status,
        staff_role=staff_role,
        password_hash=get_passwords().hash(password) if password else None,
        password_changed_at=utcnow() if password else None,
    )
    db.session.add(user)
    db.session.commit()
    return user


def csrf_token(response: TestResponse) -> str:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    field = soup.find("input", attrs={"name": "csrf_token"})
    assert field is not None, "page has no CSRF field"
    return str(field["value"])


def page_text(response: TestResponse) -> str:
    return re.sub(
        r"\s+", " ", BeautifulSoup(response.get_data(as_text=True), "html.parser").get_text()
    )


class SignIn:
    """Drive the sign-in journey with the test client: ``SignIn(client).with_password(...)``."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def with_password(self, email: str, password: str = DEFAULT_PASSWORD) -> TestResponse:
        page = self.client.get("/sign-in?prompt=login")
        return self.client.post(
            "/sign-in",
            data={"email": email, "password": password, "csrf_token": csrf_token(page)},
        )

    def completed(self, email: str, password: str = DEFAULT_PASSWORD) -> TestResponse:
        response = self.with_password(email, password)
        assert response.status_code == 303, page_text(response)[:500]
        finish = self.client.get(response.headers["Location"])
        assert finish.status_code == 303, page_text(finish)[:500]
        return finish
