"""Helpers for the helpdesk action tests: post a console form, read the audit log."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp.extensions import db
from idp.models import AuditEvent, Membership, MembershipRole, Organisation, StaffRole, User
from idp.models.organisation import OrganisationType
from tests.console.helpers import sign_in_staff
from tests.factories import csrf_token


def submit(client: FlaskClient, path: str, data: dict[str, str]) -> TestResponse:
    """Open the page (it must show), then post its form with ``data`` and its CSRF token."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return client.post(path, data={**data, "csrf_token": csrf_token(page)})


def audit_events(event: str, target: User | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.event == event)
    if target is not None:
        query = query.where(AuditEvent.target_id == target.sub)
    db.session.expire_all()
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def staff_client(
    app: Flask, role: StaffRole = StaffRole.HELPDESK_ADMIN, given_name: str = "Grace"
) -> tuple[FlaskClient, User]:
    """A second (third...) browser with a staff member signed in with their security key."""
    client = app.test_client()
    return client, sign_in_staff(client, role, given_name=given_name)


def make_approver(user: User, urn: str = "100001") -> Organisation:
    organisation = Organisation(
        urn=urn, name="Hill Top Primary", type=OrganisationType.ESTABLISHMENT
    )
    db.session.add(organisation)
    db.session.flush()
    db.session.add(
        Membership(user_id=user.id, organisation_id=organisation.id, role=MembershipRole.APPROVER)
    )
    db.session.commit()
    return organisation


def reload(user: User) -> User:
    db.session.expire_all()
    fresh = db.session.get(User, user.id)
    assert fresh is not None
    return fresh
