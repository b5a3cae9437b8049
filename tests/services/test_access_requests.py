"""Access requests in the service layer (issue 7): one pending request, approvers of that
organisation only (forged ids are "not found"), emails either way, escalation exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.models import AccessRequest, AuditEvent, RequestStatus, Service
from idp.models.base import utcnow
from idp.services import access, access_requests
from idp.services.access_requests import AccessRequestError, AlreadyRequested, RequestNotFound
from idp.services.transaction import transaction
from tests.access_helpers import TwoSchools, member, pupil_data, school, two_schools
from tests.factories import make_user
from tests.mailbox import emails_to


@pytest.fixture
def service(app) -> Service:
    return pupil_data(start_url="https://pupil-data.example/")


@pytest.fixture
def people() -> TwoSchools:
    return two_schools()


def ask(user, org, service, reason="For the census"):
    with transaction():
        return access_requests.create(user, org, service, reason=reason)


def test_a_request_emails_every_approver_and_a_repeat_is_refused(people, service):
    hilltop, _, ada, _, _ = people
    second = make_user(email="kim@hilltop.example", given_name="Kim", family_name="Li")
    member(second, hilltop, approver=True)
    made = ask(ada, hilltop, service)
    assert made.status is RequestStatus.PENDING
    for approver in ("sam@hilltop.example", "kim@hilltop.example"):
        [mail] = emails_to(approver)
        assert mail.template == "access_requested"
        assert "For the census" in mail.body
        assert f"/organisations/{hilltop.public_id}/requests/{made.public_id}" in mail.body
    with pytest.raises(AlreadyRequested):
        ask(ada, hilltop, service)
    events = db.session.scalars(
        select(AuditEvent.event).where(AuditEvent.event.like("access_request.%"))
    ).all()
    assert events == ["access_request.created"]


def test_two_requests_at_the_same_moment_leave_one_pending(people, service, monkeypatch):
    # The race: both clicks pass the friendly "already asked?" check before either commits.
    # The database's partial unique index (migration 0006) refuses the second.
    hilltop, _, ada, _, _ = people
    ask(ada, hilltop, service)
    monkeypatch.setattr(access_requests, "pending_for", lambda *args: None)
    with pytest.raises(AlreadyRequested):
        ask(ada, hilltop, service)
    statuses = db.session.scalars(select(AccessRequest.status)).all()
    assert statuses == [RequestStatus.PENDING]


def test_only_members_without_access_can_ask(people, service):
    hilltop, riverside, ada, _, _ = people
    with pytest.raises(AccessRequestError, match="not a member of Riverside Academy"):
        ask(ada, riverside, service)
    with transaction():
        access.set_access(ada, hilltop, service, ["viewer"], actor="test")
    with pytest.raises(AccessRequestError, match="already have access"):
        ask(ada, hilltop, service)


def test_an_organisation_without_approvers_goes_to_the_helpdesk(app, service):
    lonely = school("Lonely School", "100009")
    ada = make_user(email="ada@lonely.example")
    member(ada, lonely)
    ask(ada, lonely, service)
    [mail] = emails_to(app.extensions["settings"].helpdesk_email)
    assert "has no approver" in mail.body
    assert "ada@lonely.example" in mail.body


def test_the_approver_of_that_organisation_approves_with_roles(people, service):
    hilltop, _, ada, sam, _ = people
    made = ask(ada, hilltop, service)
    view = access_requests.for_approver(sam, hilltop.public_id, made.public_id)
    with pytest.raises(AccessRequestError, match="cannot hold"), transaction():
        access_requests.approve(sam, view, ["la_admin"])  # not for a school
    with transaction():
        access_requests.approve(sam, view, ["viewer"])
    assert access.has_access(ada, service, hilltop)
    assert [r.code for r in access.grant_for(ada, hilltop, service).roles] == ["viewer"]
    [mail] = emails_to("ada@hilltop.example")
    assert mail.template == "access_request_approved"
    assert "Sam Patel" in mail.body
    assert "https://pupil-data.example/" in mail.body
    with pytest.raises(AccessRequestError, match="already been decided"), transaction():
        access_requests.reject(sam, view, "changed my mind")


def test_another_schools_approver_cannot_see_or_decide_it(people, service):
    hilltop, riverside, ada, sam, rita = people
    made = ask(ada, hilltop, service)
    with pytest.raises(RequestNotFound):
        access_requests.for_approver(rita, hilltop.public_id, made.public_id)
    with pytest.raises(RequestNotFound):  # her own school's id with another school's request
        access_requests.for_approver(rita, riverside.public_id, made.public_id)
    with pytest.raises(RequestNotFound):
        access_requests.pending(rita, hilltop)
    with pytest.raises(RequestNotFound):  # a plain member is not an approver either
        access_requests.for_approver(ada, hilltop.public_id, made.public_id)
    view = access_requests.for_approver(sam, hilltop.public_id, made.public_id)
    with pytest.raises(RequestNotFound):  # the service re-checks whoever decides
        access_requests.approve(rita, view, ["viewer"])
    with pytest.raises(RequestNotFound):
        access_requests.reject(rita, view, "no")
    assert not access.has_access(ada, service, hilltop)


def test_rejecting_needs_a_reason_and_tells_the_requester(people, service):
    hilltop, _, ada, sam, _ = people
    made = ask(ada, hilltop, service)
    view = access_requests.for_approver(sam, hilltop.public_id, made.public_id)
    with pytest.raises(AccessRequestError, match="Enter a reason"):
        access_requests.reject(sam, view, "  ")
    with transaction():
        access_requests.reject(sam, view, "Ask the office manager instead")
    assert made.status is RequestStatus.REJECTED
    [mail] = emails_to("ada@hilltop.example")
    assert mail.template == "access_request_rejected"
    assert "Ask the office manager instead" in mail.body
    assert access_requests.pending(sam, hilltop) == []
    # Decided, so a new request may be made.
    ask(ada, hilltop, service)


def test_escalation_happens_once_after_the_configured_days(app, people, service):
    hilltop, _, ada, _, _ = people
    made = ask(ada, hilltop, service)
    helpdesk = app.extensions["settings"].helpdesk_email
    with transaction():
        assert access_requests.escalate_overdue(now=utcnow() + timedelta(days=13)) == 0
    later = utcnow() + timedelta(days=15)
    with transaction():
        assert access_requests.escalate_overdue(now=later) == 1
    with transaction():
        assert access_requests.escalate_overdue(now=later + timedelta(days=30)) == 0
    db.session.refresh(made)
    assert made.escalated_at is not None
    [mail] = emails_to(helpdesk)
    assert mail.template == "access_request_escalated"
    assert "No approver at Hill Top Primary has decided this request in 14 days" in mail.body
    assert made.status is RequestStatus.PENDING  # still the approvers' to decide


def test_the_worker_escalates_through_its_batch(app, people, service):
    from idp.cli.worker import run

    hilltop, _, ada, _, _ = people
    made = ask(ada, hilltop, service)
    with transaction():
        made.created_at = utcnow() - timedelta(days=20)
    run(threading.Event(), interval=0, once=True)
    run(threading.Event(), interval=0, once=True)
    assert len(emails_to(app.extensions["settings"].helpdesk_email)) == 1
