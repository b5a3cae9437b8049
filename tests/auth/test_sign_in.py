"""Signing in and out with the test client: state machine, session cookie, vague errors."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from idp.auth.sso_cookie import COOKIE_NAME
from idp.extensions import db
from idp.models import AuditEvent, UserStatus
from tests.factories import DEFAULT_PASSWORD, SignIn, csrf_token, make_user, page_text


def events() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.event).order_by(AuditEvent.id)))


def test_sign_in_lands_on_your_services_with_a_session_cookie(client):
    user = make_user(email="ada@school.example")
    finish = SignIn(client).completed("ADA@school.example ")
    assert finish.headers["Location"] == "/services"  # issue 7: "Your services"
    cookie = finish.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie
    account = client.get("/account")
    assert account.status_code == 200
    assert user.email in page_text(account)
    assert "sign_in.succeeded" in events()


def test_E02_session_cookie_has_at_least_128_bits(client):
    make_user(email="ada@school.example")
    finish = SignIn(client).completed("ada@school.example")
    value = re.match(rf"{COOKIE_NAME}=([^;]+)", finish.headers["Set-Cookie"]).group(1)
    assert len(value) >= 43  # 32 random bytes, URL-safe base64


def test_E01_cookie_changes_at_every_sign_in(client):
    make_user(email="ada@school.example")
    first = SignIn(client).completed("ada@school.example").headers["Set-Cookie"]
    second = SignIn(client).completed("ada@school.example").headers["Set-Cookie"]
    assert first.split(";")[0] != second.split(";")[0]


@pytest.mark.parametrize(
    ("email", "password", "status"),
    [
        ("ada@school.example", "wrong password entirely", UserStatus.ACTIVE),
        ("nobody@school.example", DEFAULT_PASSWORD, UserStatus.ACTIVE),
        ("ada@school.example", DEFAULT_PASSWORD, UserStatus.DEACTIVATED),
        ("ada@school.example", DEFAULT_PASSWORD, UserStatus.INVITED),
    ],
)
def test_every_failure_gets_the_same_vague_message(client, email, password, status):
    make_user(email="ada@school.example", status=status)
    response = SignIn(client).with_password(email, password)
    assert response.status_code == 400
    assert "Enter a correct email address and password" in page_text(response)
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")
    assert client.get("/account").status_code == 302


def test_blank_fields_get_specific_errors(client):
    page = client.get("/sign-in")
    response = client.post("/sign-in", data={"csrf_token": csrf_token(page)})
    text = page_text(response)
    assert "Enter your email address" in text
    assert "Enter your password" in text
    assert text.startswith("Error: Sign in") or "Error: Sign in" in response.get_data(as_text=True)


def test_E07_sign_in_without_csrf_token_is_refused(client):
    make_user(email="ada@school.example")
    response = client.post(
        "/sign-in", data={"email": "ada@school.example", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/account").status_code == 302


def test_forced_browsing_to_finish_without_password_goes_to_sign_in(client):
    response = client.get("/sign-in/finish")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/sign-in")


def test_account_page_needs_sign_in_and_comes_back_after(client):
    make_user(email="ada@school.example")
    response = client.get("/account/sessions")
    assert response.status_code == 302
    assert "next=/account/sessions" in response.headers["Location"]
    client.get(response.headers["Location"])
    finish = SignIn(client).completed("ada@school.example")
    assert finish.headers["Location"] == "/account/sessions"


def test_return_to_is_never_an_absolute_url(client):
    make_user(email="ada@school.example")
    client.get("/sign-in?next=//evil.example/x")
    page = client.get("/sign-in")
    response = client.post(
        "/sign-in",
        data={
            "email": "ada@school.example",
            "password": DEFAULT_PASSWORD,
            "csrf_token": csrf_token(page),
        },
    )
    finish = client.get(response.headers["Location"])
    assert finish.headers["Location"] == "/services"  # issue 7: "Your services"


def test_sign_out_needs_a_post_with_csrf_and_ends_the_session(client):
    make_user(email="ada@school.example")
    SignIn(client).completed("ada@school.example")
    confirm = client.get("/sign-out")
    assert client.get("/account").status_code == 200
    assert client.post("/sign-out", data={}).status_code == 400
    assert client.get("/account").status_code == 200
    done = client.post("/sign-out", data={"csrf_token": csrf_token(confirm)})
    assert "You have signed out" in page_text(done)
    assert client.get("/account").status_code == 302
    assert "sign_out" in events()
