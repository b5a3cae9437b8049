"""Sign staff into the console with the test client: ``sign_in_staff(client, role)``."""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.models import StaffRole, User
from tests.factories import make_user
from tests.mfa.journeys import MfaSignIn, add_key
from tests.mfa.softkey import SoftKey


def sign_in_staff(
    client: FlaskClient,
    role: StaffRole | None = StaffRole.HELPDESK,
    *,
    email: str | None = None,
    given_name: str = "Grace",
    family_name: str = "Hopper",
) -> User:
    """Make a person with ``role`` and a security key, and sign them in with the key."""
    user = make_user(email=email, given_name=given_name, family_name=family_name, staff_role=role)
    journey = MfaSignIn(client)
    key = SoftKey()
    add_key(user, key)
    journey.password(user.email)
    response = journey.key(key)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    finish = journey.finish()
    assert finish.status_code == 303, finish.get_data(as_text=True)[:300]
    return user
