"""Command-line tools used at set-up and by support staff."""

from __future__ import annotations

from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent, StaffRole, User, UserStatus


def test_create_user(app):
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--email",
            " Ada.Lovelace@School.example ",
            "--given-name",
            "Ada",
            "--family-name",
            "Lovelace",
            "--staff-role",
            "helpdesk",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User))
    assert user.email == "ada.lovelace@school.example"
    assert user.status is UserStatus.INVITED
    assert user.staff_role is StaffRole.HELPDESK
    assert user.password_hash is None
    assert db.session.scalar(select(AuditEvent.event)) == "user.created"


def test_create_user_refuses_a_role_mailbox(app):
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--email",
            "office@school.example",
            "--given-name",
            "School",
            "--family-name",
            "Office",
        ]
    )
    assert result.exit_code != 0
    assert "own email address" in result.output
    assert db.session.scalar(select(User)) is None


def test_create_user_refuses_a_duplicate_whatever_the_case(app):
    runner = app.test_cli_runner()
    args = ["--given-name", "A", "--family-name", "B"]
    assert (
        runner.invoke(args=["create-user", "--email", "a.b@school.example", *args]).exit_code == 0
    )
    again = runner.invoke(args=["create-user", "--email", "A.B@SCHOOL.example", *args])
    assert again.exit_code != 0
    assert "already exists" in again.output
