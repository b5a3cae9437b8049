"""K01: the helpdesk console is for helpdesk staff signed in with WebAuthn only."""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.extensions import db
from idp.models import StaffRole
from tests.console.helpers import sign_in_staff
from tests.factories import SignIn, make_user


def test_helpdesk_with_security_key_opens_console(client: FlaskClient) -> None:
    sign_in_staff(client, StaffRole.HELPDESK)
    response = client.get("/helpdesk/")
    assert response.status_code == 200
    assert "Helpdesk console" in response.get_data(as_text=True)


def test_helpdesk_session_without_security_key_is_refused(client: FlaskClient) -> None:
    # Signed in with a password only, then made helpdesk staff: the session proves no key.
    user = make_user()
    SignIn(client).completed(user.email)
    user.staff_role = StaffRole.HELPDESK
    db.session.commit()
    response = client.get("/helpdesk/")
    assert response.status_code == 403
    assert "security key" in response.get_data(as_text=True)


def test_plain_user_is_refused(client: FlaskClient) -> None:
    user = make_user()
    SignIn(client).completed(user.email)
    assert client.get("/helpdesk/").status_code == 403


def test_signed_out_goes_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/helpdesk/")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]
