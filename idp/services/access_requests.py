"""Asking for access to a service, and an approver deciding (issue 7; DESIGN §4 "No access").

The rules, wherever the request comes from (the no-access page, "Your services", a test):

- A person asks for one service at one of *their* organisations, with an optional reason. There
  is at most one pending request per person x organisation x service: asking again while one is
  pending raises :class:`AlreadyRequested` (the page says "already requested").
- Every active approver of that organisation is emailed. An organisation with no approver
  cannot decide, so the helpdesk is emailed at once instead (DfE Sign-in sends requests without
  approvers to support: reference/dfe-signin.md §2 row 23).
- Only an approver *of that organisation* may see, approve or reject it. The check is here, not
  in the page: :func:`for_approver` answers :class:`RequestNotFound` (a 404, never "forbidden",
  so forged ids reveal nothing) for an organisation they do not approve for or a request that is
  not that organisation's. Approving creates the grant through
  :func:`idp.services.access.set_access` with roles allowed for the organisation's type; either
  decision emails the requester.
- A request left pending for ``access_request_escalation_days`` is escalated to the helpdesk by
  the worker (:func:`escalate_overdue`), exactly once: ``escalated_at`` is set by a conditional
  UPDATE, so two workers racing cannot both send it.

Every step is audited (K03). Functions add and flush; the caller commits
(:func:`idp.services.transaction.transaction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from idp.config import Settings
from idp.extensions import db
from idp.models import (
    AccessPolicy,
    Organisation,
    Service,
    ServiceStatus,
    User,
)
from idp.models.base import utcnow
from idp.models.requests import AccessRequest, RequestStatus
from idp.services import access, audit, outbox
from idp.services.links import public_url
from idp.services.transaction import transaction
from idp.store import get_store

#: The longest reason or rejection note kept (a few sentences).
MAX_REASON_LENGTH = 1000


class AccessRequestError(ValueError):
    """A request the rules refuse; the message is plain English, fit to show."""


class AlreadyRequested(AccessRequestError):
    """A request for the same service at the same organisation is still waiting."""


class RequestNotFound(LookupError):
    """No such request for this approver: unknown, or another organisation's (shown as 404)."""


@dataclass(frozen=True)
class RequestView:
    """One request with the people and things it names, for pages and emails."""

    request: AccessRequest
    requester: User
    organisation: Organisation
    service: Service


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _clean(text: str | None) -> str:
    return (text or "").strip()[:MAX_REASON_LENGTH]


def pending_for(user: User, organisation: Organisation, service: Service) -> AccessRequest | None:
    """The person's waiting request for ``service`` at ``organisation``, if any."""
    return db.session.scalar(
        select(AccessRequest).where(
            AccessRequest.user_id == user.id,
            AccessRequest.organisation_id == organisation.id,
            AccessRequest.service_id == service.id,
            AccessRequest.status == RequestStatus.PENDING,
        )
    )


def can_request(user: User, organisation: Organisation, service: Service) -> bool:
    """Could ``user`` ask for ``service`` at ``organisation`` (member, no access yet)?"""
    return (
        service.status is ServiceStatus.ACTIVE
        and service.access_policy is AccessPolicy.GRANTED
        and access.membership(user, organisation) is not None
        and not access.has_access(user, service, organisation)
    )


def create(
    user: User,
    organisation: Organisation,
    service: Service,
    *,
    reason: str | None = None,
    requested_roles: Sequence[str] = (),
) -> AccessRequest:
    """Record ``user``'s request and email the organisation's approvers (or the helpdesk)."""
    if access.membership(user, organisation) is None:
        raise AccessRequestError(f"You are not a member of {organisation.name}.")
    if service.status is not ServiceStatus.ACTIVE:
        raise AccessRequestError(f"{service.name} is not available.")
    if access.has_access(user, service, organisation):
        raise AccessRequestError(
            f"You already have access to {service.name} for {organisation.name}."
        )
    if pending_for(user, organisation, service) is not None:
        raise AlreadyRequested(
            f"You have already asked for access to {service.name} for {organisation.name}."
        )
    known = {role.code for role in access.roles_allowed(service, organisation)}
    created = AccessRequest(
        user_id=user.id,
        organisation_id=organisation.id,
        service_id=service.id,
        requested_roles=sorted(set(requested_roles) & known),
        reason=_clean(reason),
        status=RequestStatus.PENDING,
    )
    already = f"You have already asked for access to {service.name} for {organisation.name}."
    db.session.add(created)
    try:
        db.session.flush()
    except IntegrityError as error:
        # Another request for the same access committed a moment ago (the partial unique
        # index uq_access_requests_one_pending); the caller's unit of work rolls back.
        raise AlreadyRequested(already) from error
    approvers = access.approvers_of(organisation)
    audit.record(
        "access_request.created",
        actor=user.sub,
        target=user.sub,
        target_type="user",
        organisation=organisation.public_id,
        service=service.client_id,
        request=created.public_id,
        approvers=len(approvers),
    )
    link = public_url(
        "approver.request_detail",
        organisation_id=organisation.public_id,
        request_id=created.public_id,
    )
    for approver in approvers:
        outbox.enqueue_email(
            approver.email,
            "access_requested",
            requester_name=user.name,
            requester_email=user.email,
            service_name=service.name,
            organisation_name=organisation.name,
            link=link,
            reason=created.reason or None,
        )
    if not approvers:
        _tell_helpdesk(RequestView(created, user, organisation, service), why="no_approver")
    return created


def _tell_helpdesk(view: RequestView, *, why: str) -> None:
    outbox.enqueue_email(
        _settings().helpdesk_email,
        "access_request_escalated",
        why=why,
        requester_name=view.requester.name,
        requester_email=view.requester.email,
        service_name=view.service.name,
        organisation_name=view.organisation.name,
        requested_at=view.request.created_at,
        reason=view.request.reason or None,
        days=str(_settings().access_request_escalation_days) if why == "overdue" else None,
    )


def _view(request: AccessRequest) -> RequestView:
    requester = db.session.get(User, request.user_id)
    organisation = db.session.get(Organisation, request.organisation_id)
    service = db.session.get(Service, request.service_id)
    if requester is None or organisation is None or service is None:  # cascades make this rare
        raise RequestNotFound(request.public_id)
    return RequestView(request, requester, organisation, service)


def organisation_for_approver(approver: User, organisation_public_id: str) -> Organisation:
    """The organisation ``approver`` approves for, by public id; else :class:`RequestNotFound`."""
    organisation = db.session.scalar(
        select(Organisation).where(Organisation.public_id == organisation_public_id)
    )
    if organisation is None or not access.is_approver(approver, organisation):
        raise RequestNotFound(organisation_public_id)
    return organisation


def pending(approver: User, organisation: Organisation) -> list[RequestView]:
    """The organisation's waiting requests, oldest first; approvers of it only."""
    if not access.is_approver(approver, organisation):
        raise RequestNotFound(organisation.public_id)
    rows = db.session.scalars(
        select(AccessRequest)
        .where(
            AccessRequest.organisation_id == organisation.id,
            AccessRequest.status == RequestStatus.PENDING,
        )
        .order_by(AccessRequest.created_at, AccessRequest.id)
    )
    return [_view(row) for row in rows]


def for_approver(
    approver: User, organisation_public_id: str, request_public_id: str
) -> RequestView:
    """One request of an organisation ``approver`` approves for; else :class:`RequestNotFound`."""
    organisation = organisation_for_approver(approver, organisation_public_id)
    found = db.session.scalar(
        select(AccessRequest).where(
            AccessRequest.public_id == request_public_id,
            AccessRequest.organisation_id == organisation.id,
        )
    )
    if found is None:
        raise RequestNotFound(request_public_id)
    return _view(found)


def _decidable(approver: User, view: RequestView) -> None:
    if not access.is_approver(approver, view.organisation):
        raise RequestNotFound(view.request.public_id)
    if view.request.status is not RequestStatus.PENDING:
        raise AccessRequestError("This request has already been decided.")


def _decide(view: RequestView, approver: User, status: RequestStatus, note: str | None) -> None:
    view.request.status = status
    view.request.decided_by_id = approver.id
    view.request.decided_at = utcnow()
    view.request.decision_note = note
    db.session.flush()


def approve(approver: User, view: RequestView, role_codes: Sequence[str]) -> None:
    """Give the requester access with ``role_codes`` and tell them; approvers of the org only."""
    _decidable(approver, view)
    allowed = access.roles_allowed(view.service, view.organisation)
    if allowed and not role_codes:
        raise AccessRequestError(f"Select at least one {view.service.name} role.")
    try:
        grant = access.set_access(
            view.requester,
            view.organisation,
            view.service,
            role_codes,
            actor=approver.sub,
            reason=f"access request {view.request.public_id}",
        )
    except access.AccessError as error:
        raise AccessRequestError(str(error)) from error
    _decide(view, approver, RequestStatus.APPROVED, None)
    audit.record(
        "access_request.approved",
        actor=approver.sub,
        target=view.requester.sub,
        target_type="user",
        organisation=view.organisation.public_id,
        service=view.service.client_id,
        request=view.request.public_id,
        roles=sorted(role.code for role in grant.roles),
    )
    outbox.enqueue_email(
        view.requester.email,
        "access_request_approved",
        service_name=view.service.name,
        organisation_name=view.organisation.name,
        roles=", ".join(role.name for role in grant.roles) or None,
        link=view.service.start_url or None,
        approver_name=approver.name,
    )


def reject(approver: User, view: RequestView, reason: str) -> None:
    """Turn the request down with a reason and tell the requester; approvers of the org only."""
    _decidable(approver, view)
    reason = _clean(reason)
    if not reason:
        raise AccessRequestError("Enter a reason for rejecting the request.")
    _decide(view, approver, RequestStatus.REJECTED, reason)
    audit.record(
        "access_request.rejected",
        actor=approver.sub,
        target=view.requester.sub,
        target_type="user",
        reason=reason,
        organisation=view.organisation.public_id,
        service=view.service.client_id,
        request=view.request.public_id,
    )
    outbox.enqueue_email(
        view.requester.email,
        "access_request_rejected",
        service_name=view.service.name,
        organisation_name=view.organisation.name,
        reason=reason,
        approver_name=approver.name,
    )


def escalate_overdue(*, now: datetime | None = None) -> int:
    """Pass requests pending longer than the setting to the helpdesk, each once; return how many.

    Run by the worker. ``escalated_at`` is claimed with ``UPDATE ... WHERE escalated_at IS
    NULL``, so a request is escalated once however many workers run this at the same moment.
    """
    now = now or utcnow()
    cutoff = now - timedelta(days=_settings().access_request_escalation_days)
    due = list(
        db.session.scalars(
            select(AccessRequest).where(
                AccessRequest.status == RequestStatus.PENDING,
                AccessRequest.escalated_at.is_(None),
                AccessRequest.created_at <= cutoff,
            )
        )
    )
    escalated = 0
    for row in due:
        claimed = db.session.execute(
            update(AccessRequest)
            .where(AccessRequest.id == row.id, AccessRequest.escalated_at.is_(None))
            .values(escalated_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        db.session.refresh(row)
        view = _view(row)
        _tell_helpdesk(view, why="overdue")
        audit.record(
            "access_request.escalated",
            actor="system",
            target=view.requester.sub,
            target_type="user",
            organisation=view.organisation.public_id,
            service=view.service.client_id,
            request=row.public_id,
        )
        escalated += 1
    return escalated


#: How often the worker looks for overdue requests (they are counted in days; no need to look
#: on every batch).
ESCALATION_CHECK_SECONDS = 300
_ESCALATION_LOCK = "jobs:access-request-escalation"


def escalate_when_due(*, now: datetime | None = None) -> int:
    """The worker's hook: run :func:`escalate_overdue` at most every few minutes across all
    workers (a store key claimed with NX), in its own unit of work."""
    if not get_store().set(_ESCALATION_LOCK, "1", nx=True, ex=ESCALATION_CHECK_SECONDS):
        return 0
    with transaction():
        return escalate_overdue(now=now)
